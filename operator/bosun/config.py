"""Operator configuration from the environment (12-factor: the chart and `make operator` set variables).

| variable | meaning |
|---|---|
| BOSUN_MODEL | LiteLLM model (``provider/name``); unset: the offline planner |
| BOSUN_API_BASE, BOSUN_API_KEY | OpenAI-compatible endpoint and key (provider keys also work as usual) |
| BOSUN_MODEL_TIMEOUT, BOSUN_MODEL_RETRIES | per model call, seconds / retries with backoff |
| BOSUN_TOOLS_URL, BOSUN_TOOLS_TOKEN | the tool server over Streamable HTTP; unset: in-process tools |
| BOSUN_NAMESPACES | comma-separated namespaces to watch; unset: all |
| BOSUN_VERIFY_SECONDS | deadline of the objective checks after execution |
| BOSUN_APPROVAL_TIMEOUT_SECONDS | a proposal nobody decides within this ends the task Expired |
| BOSUN_SWEEP_SECONDS | how often waiting tasks are re-checked (retries, expiry, TTL) |
| BOSUN_FOUR_EYES | ``true`` (default): a requester may not approve their own proposal (Deny still works) |
| BOSUN_REQUIRED_APPROVALS | distinct approvers a proposal needs (1-8, default 1) |
| BOSUN_DESTRUCTIVE_APPROVER_GROUPS | comma-separated groups; a grant approving a destructive step must come |
| | from a member of one of them (default: any approver) |
| BOSUN_ANNOTATION_APPROVALS | ``true`` (default): ``kubectl annotate agenttask X approve=true`` is accepted |
| BOSUN_MAX_GRANT_AGE_SECONDS | a grant older than this approves nothing, even without ``expiresAt`` |
| | (default 86400; 0 = no limit) |
| BOSUN_EXECUTION_SERVICE_ACCOUNT | a ServiceAccount name: approved calls run as that account of the task's |
| | namespace instead of the requester (default empty: as the requester) |

The approval variables are defaults: a Namespace object's annotations ``bosun.dev/four-eyes``,
``bosun.dev/required-approvals``, ``bosun.dev/destructive-approver-groups``,
``bosun.dev/annotation-approvals`` and ``bosun.dev/max-grant-age-seconds`` override them for tasks in or
targeting that namespace (the strictest of all namespaces a task touches applies; see ``bosun.approval``).
Only cluster admins can annotate namespaces, so users who may edit tasks and grants cannot weaken it.
Likewise ``bosun.dev/execution-service-account`` overrides ``BOSUN_EXECUTION_SERVICE_ACCOUNT`` (the account
is used only when every namespace a task touches agrees; see ``bosun.identity.execution_identity``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from bosun.approval import ApprovalPolicy
from bosun.identity import service_account_setting
from bosun.planner import ModelSettings


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number; set it to seconds, e.g. {default:g}") from None


@dataclass(frozen=True)
class OperatorConfig:
    model: ModelSettings | None = None
    tools_url: str | None = None
    tools_token: str | None = None
    namespaces: tuple[str, ...] = ()
    verify_seconds: float = 180.0
    approval_timeout_seconds: float = 7 * 24 * 3600.0
    sweep_seconds: float = 10.0
    tool_timeout_seconds: float = 120.0
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    execution_service_account: str = ""
    """"": approved calls run as the requester (the default, safety rule 3)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        model_name = env.get("BOSUN_MODEL") or None
        model = None
        if model_name:
            model = ModelSettings(
                model=model_name,
                api_base=env.get("BOSUN_API_BASE") or None,
                api_key=env.get("BOSUN_API_KEY") or None,
                timeout=_float(env, "BOSUN_MODEL_TIMEOUT", 60.0),
                max_retries=int(_float(env, "BOSUN_MODEL_RETRIES", 3)),
            )
        url = env.get("BOSUN_TOOLS_URL") or None
        token = env.get("BOSUN_TOOLS_TOKEN") or None
        if url and not token:
            raise ValueError("BOSUN_TOOLS_URL is set but BOSUN_TOOLS_TOKEN is not; set the operator token")
        return cls(
            model=model,
            tools_url=url,
            tools_token=token,
            namespaces=tuple(n.strip() for n in env.get("BOSUN_NAMESPACES", "").split(",") if n.strip()),
            verify_seconds=_float(env, "BOSUN_VERIFY_SECONDS", 180.0),
            approval_timeout_seconds=_float(env, "BOSUN_APPROVAL_TIMEOUT_SECONDS", 7 * 24 * 3600.0),
            sweep_seconds=_float(env, "BOSUN_SWEEP_SECONDS", 10.0),
            tool_timeout_seconds=_float(env, "BOSUN_TOOL_TIMEOUT_SECONDS", 120.0),
            approval=ApprovalPolicy.from_env(env),
            execution_service_account=service_account_setting(
                env.get("BOSUN_EXECUTION_SERVICE_ACCOUNT", ""), "BOSUN_EXECUTION_SERVICE_ACCOUNT"
            ),
        )

    def model_for(self, override: str | None) -> ModelSettings | None:
        """The task's ``spec.model`` overrides the model name; endpoint and key stay the operator's."""
        if override is None:
            return self.model
        if self.model is None:
            return ModelSettings(model=override)
        return replace(self.model, model=override)
