"""Operator configuration from the environment (12-factor: the chart and `make operator` set variables).

| variable | meaning |
|---|---|
| BOSUN_MODEL | LiteLLM model (``provider/name``); unset: the offline planner |
| BOSUN_API_BASE, BOSUN_API_KEY | OpenAI-compatible endpoint and key (provider keys also work as usual) |
| BOSUN_MODEL_TIMEOUT, BOSUN_MODEL_RETRIES | per model call, seconds / retries with backoff |
| BOSUN_TOOLS_URL, BOSUN_TOOLS_TOKEN | the tool server over Streamable HTTP; unset: in-process tools |
| BOSUN_NAMESPACES | comma-separated namespaces to watch, exact names; unset: all (one shard of |
| | several: docs/scaling.md) |
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
| BOSUN_PRIVILEGED_GROUPS | requesters in these groups are never impersonated (default system:masters) |
| BOSUN_PROTECTED_NAMESPACES | their ServiceAccounts are never impersonated (default kube-system) |
| BOSUN_ALLOW_CLUSTER_SCOPE | ``true``: tasks that ask (spec.clusterScope) may change cluster-scoped objects |
| BOSUN_TOOL_TIMEOUT_SECONDS | upper bound of one tool call |
| BOSUN_PARALLEL_TASKS | tasks reconciled at once (default 20); more wait for a free slot. A task executing |
| | or verifying holds its slot until done: raise it when many long changes run together |
| BOSUN_LEADER_ELECTION | ``true``: act only while holding a coordination.k8s.io Lease (several replicas); |
| | default ``false`` (the chart turns it on when ``operator.replicas`` > 1) |
| BOSUN_LEADER_ELECTION_NAMESPACE | the Lease's namespace (default: the operator's, ``operator_namespace``) |
| BOSUN_LEADER_ELECTION_NAME | the Lease's name (default ``bosun-operator``) |
| BOSUN_LEASE_DURATION_SECONDS | a standby takes over after seeing no renewal this long (15, as client-go) |
| BOSUN_RENEW_DEADLINE_SECONDS | a leader that could not renew this long stops acting and exits (10) |
| BOSUN_RETRY_PERIOD_SECONDS | the pause between attempts to take or renew the Lease (2) |
| BOSUN_HEALTH_PORT | serve ``/healthz`` (liveness) and ``/readyz`` (readiness) on this port; unset: none |
| BOSUN_METRICS_PORT, BOSUN_METRICS_ADDRESS | serve Prometheus ``/metrics`` there (``bosun.metrics``); unset |
| | port: none; address default 127.0.0.1 (the chart sets 0.0.0.0) |
| BOSUN_LOG_LEVEL | debug, info (default), warning or error |
| BOSUN_LOG_FORMAT | ``text`` (default) or ``json`` (one object per line; lines about a task carry it) |
| BOSUN_NOTIFY_* | notifications of proposals awaiting approval and of ends: ``bosun.notify.settings`` |

The approval variables are defaults: a Namespace object's annotations ``bosun.dev/four-eyes``,
``bosun.dev/required-approvals``, ``bosun.dev/destructive-approver-groups``,
``bosun.dev/annotation-approvals`` and ``bosun.dev/max-grant-age-seconds`` override them for tasks in or
targeting that namespace (the strictest of all namespaces a task touches applies:
``bosun.core.approval_policy``).
Only cluster admins can annotate namespaces, so users who may edit tasks and grants cannot weaken it.
Likewise ``bosun.dev/execution-service-account`` overrides ``BOSUN_EXECUTION_SERVICE_ACCOUNT`` (the account
is used only when every namespace a task touches agrees; see ``bosun.core.identity.execution_identity``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from bosun_tools.logs import LOG_FORMATS
from bosun_tools.metrics import MetricsEndpoint

from bosun.core.approval_policy import ApprovalPolicy
from bosun.core.identity import (
    DEFAULT_PRIVILEGED_GROUPS,
    DEFAULT_PROTECTED_NAMESPACES,
    service_account_setting,
)
from bosun.core.words import names, parse_bool
from bosun.notify.settings import NotifySettings
from bosun.planner import ModelSettings
from bosun.ports.gateway import operator_namespace


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number; set it to seconds, e.g. {default:g}") from None


def _names(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list; unset keeps the default, an empty value means none."""
    if key not in env:
        return default
    return names(env[key])


NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _namespaces(env: Mapping[str, str]) -> tuple[str, ...]:
    """``BOSUN_NAMESPACES``: exact namespace names. kopf would read ``*`` or ``!`` as patterns and watch
    whatever they match, but the sweep lists each entry by name, so a pattern's tasks would be handled once
    and never looked at again (no retries, expiry or TTL); a shard must name its namespaces."""
    namespaces = _names(env, "BOSUN_NAMESPACES", ())
    wrong = [name for name in namespaces if not NAMESPACE_NAME.match(name)]
    if wrong:
        raise ValueError(
            f"BOSUN_NAMESPACES: {', '.join(map(repr, wrong))} is not a namespace name; list each namespace "
            "by its exact name, comma-separated (patterns are not supported)"
        )
    return namespaces


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """Unset or empty keeps the default; anything but a yes or no word stops the operator at start."""
    raw = env.get(key, "")
    return parse_bool(raw, key) if raw.strip() else default


@dataclass(frozen=True)
class LeaderElection:
    """Where the Lease is and client-go's timings (``k8s.io/client-go/tools/leaderelection``): a leader
    that has not renewed for ``renew_deadline`` stops acting; a standby takes over once it has seen no
    renewal for ``lease_duration``. ``lease_duration > renew_deadline`` is the margin that keeps the two
    from acting at once, so it is enforced; each attempt is ``retry_period`` apart."""

    namespace: str
    name: str = "bosun-operator"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError(
                f"BOSUN_LEASE_DURATION_SECONDS ({self.lease_duration:g}) must be greater than "
                f"BOSUN_RENEW_DEADLINE_SECONDS ({self.renew_deadline:g}), or a standby could take over "
                "while the leader still acts; e.g. 15 and 10"
            )
        if not self.renew_deadline > 1.2 * self.retry_period:
            raise ValueError(
                f"BOSUN_RENEW_DEADLINE_SECONDS ({self.renew_deadline:g}) must be greater than 1.2 times "
                f"BOSUN_RETRY_PERIOD_SECONDS ({self.retry_period:g}), or a leader gets no second attempt to "
                "renew; e.g. 10 and 2"
            )
        if self.retry_period <= 0:
            raise ValueError("BOSUN_RETRY_PERIOD_SECONDS must be positive; e.g. 2")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], own_namespace: Callable[[], str | None]
    ) -> LeaderElection | None:
        """None when ``BOSUN_LEADER_ELECTION`` is off; ``own_namespace`` reads the pod's namespace."""
        if not _bool(env, "BOSUN_LEADER_ELECTION", False):
            return None
        namespace = env.get("BOSUN_LEADER_ELECTION_NAMESPACE") or own_namespace()
        if not namespace:
            raise ValueError(
                "BOSUN_LEADER_ELECTION is on but the Lease's namespace is unknown (not in a pod); set "
                "BOSUN_LEADER_ELECTION_NAMESPACE to the namespace the operator runs in"
            )
        return cls(
            namespace=namespace,
            name=env.get("BOSUN_LEADER_ELECTION_NAME") or "bosun-operator",
            lease_duration=_float(env, "BOSUN_LEASE_DURATION_SECONDS", 15.0),
            renew_deadline=_float(env, "BOSUN_RENEW_DEADLINE_SECONDS", 10.0),
            retry_period=_float(env, "BOSUN_RETRY_PERIOD_SECONDS", 2.0),
        )


def _port(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{key}={raw!r} is not a TCP port; set it to e.g. 8080, or unset it")
    return int(raw)


def _count(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"{key}={raw!r} is not a positive whole number; set it to e.g. {default}, or unset it"
        )
    return int(raw)


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(key, "").strip().lower() or default
    if raw not in choices:
        raise ValueError(f"{key}={env[key]!r} is not one of {', '.join(choices)}")
    return raw


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
    parallel_tasks: int = 20
    """Reconciles at once (``Deps.slots``). Unbounded, 500 tasks created at once were 500 reconciles at once,
    and the process kept that peak of memory for good; bounded, the same tasks take as long (the API server
    sets the pace) in less memory. (kopf's own ``worker_limit`` does not fit: its per-object workers stay
    for seconds after their last event and keep their slot meanwhile.)"""
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    execution_service_account: str = ""
    """"": approved calls run as the requester (the default: Bosun acts with the rights of whoever asked,
    so RBAC decides every call)."""
    privileged_groups: tuple[str, ...] = DEFAULT_PRIVILEGED_GROUPS
    """Requesters in these groups are never impersonated (``bosun.core.identity.impersonation_refusal``)."""
    protected_namespaces: tuple[str, ...] = DEFAULT_PROTECTED_NAMESPACES
    """ServiceAccounts of these namespaces are never impersonated (the cluster's own controllers)."""
    allow_cluster_scope: bool = False
    """Whether tasks may change cluster-scoped objects at all (each task must also ask, spec.clusterScope)."""
    leader_election: LeaderElection | None = None
    """None: this process acts alone (one replica); see ``bosun.leader``."""
    health_port: int | None = None
    """Where ``/healthz`` and ``/readyz`` are served (see ``bosun.health``); None: not served."""
    metrics: MetricsEndpoint | None = None
    """Where Prometheus ``/metrics`` is served (see ``bosun.metrics``); None: not served."""
    log_level: str = "info"
    log_format: str = "text"
    notify: NotifySettings = field(default_factory=NotifySettings)
    """Sinks notified of phase changes (``bosun.notify``); none by default."""

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
            namespaces=_namespaces(env),
            verify_seconds=_float(env, "BOSUN_VERIFY_SECONDS", 180.0),
            approval_timeout_seconds=_float(env, "BOSUN_APPROVAL_TIMEOUT_SECONDS", 7 * 24 * 3600.0),
            sweep_seconds=_float(env, "BOSUN_SWEEP_SECONDS", 10.0),
            tool_timeout_seconds=_float(env, "BOSUN_TOOL_TIMEOUT_SECONDS", 120.0),
            parallel_tasks=_count(env, "BOSUN_PARALLEL_TASKS", 20),
            approval=ApprovalPolicy.from_env(env),
            execution_service_account=service_account_setting(
                env.get("BOSUN_EXECUTION_SERVICE_ACCOUNT", ""), "BOSUN_EXECUTION_SERVICE_ACCOUNT"
            ),
            privileged_groups=_names(env, "BOSUN_PRIVILEGED_GROUPS", DEFAULT_PRIVILEGED_GROUPS),
            protected_namespaces=_names(env, "BOSUN_PROTECTED_NAMESPACES", DEFAULT_PROTECTED_NAMESPACES),
            allow_cluster_scope=_bool(env, "BOSUN_ALLOW_CLUSTER_SCOPE", False),
            leader_election=LeaderElection.from_env(env, lambda: operator_namespace(env)),
            health_port=_port(env, "BOSUN_HEALTH_PORT"),
            metrics=MetricsEndpoint.from_env(env),
            log_level=_choice(env, "BOSUN_LOG_LEVEL", ("debug", "info", "warning", "error"), "info"),
            log_format=_choice(env, "BOSUN_LOG_FORMAT", LOG_FORMATS, "text"),
            notify=NotifySettings.from_env(env),
        )

    def model_for(self, override: str | None) -> ModelSettings | None:
        """The task's ``spec.model`` overrides the model name; endpoint and key stay the operator's."""
        if override is None:
            return self.model
        if self.model is None:
            return ModelSettings(model=override)
        return replace(self.model, model=override)
