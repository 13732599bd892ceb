"""One model call through LiteLLM, with our own bounded retry, and its usage.

The retry loop is ours rather than LiteLLM's ``num_retries`` because LiteLLM's wrapper retries 5xx without
backoff and resets the process-wide ``litellm.num_retries``; here every transient failure (429, 5xx,
timeouts, connection errors) waits exponentially longer (a provider's Retry-After wins), and the final
error says what the operator's admin should fix.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bosun import tracing
from bosun.metrics import record_model_call
from bosun.planner.types import ModelSettings, Usage

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_MAX_BACKOFF = 30.0
_DETAIL_CAP = 300


class ModelError(Exception):
    """The model could not be used; the message names what to fix."""


@dataclass(frozen=True)
class RawToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelReply:
    content: str
    tool_calls: list[RawToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def as_message(self) -> dict[str, Any]:
        """The assistant message to put back into the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


def _litellm() -> Any:
    """Import on first use: LiteLLM costs ~2 s and ~100 MiB, which an offline operator never needs.

    Its defaults are made an operator's: the model cost map bundled with the pinned release, not one
    fetched from the internet at import; and ``LITELLM_MODE=PRODUCTION``, since its default (``DEV``) reads a
    ``.env`` file from the working directory into the process environment at import, so a file nobody
    configured could change the operator's settings or credentials. Either can still be set explicitly."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    import litellm

    litellm.suppress_debug_info = True
    _drop_import_leftovers()
    return litellm


def _drop_import_leftovers() -> None:
    """Free what importing LiteLLM leaves behind unused; idempotent, and nothing to do once done.

    ``litellm.utils`` parses its bundled Claude tokenizer (``anthropic_tokenizer.json``, 1.7 MB) into the
    module global ``json_data`` (about 13 MiB of Python objects) only to serialise it again as
    ``claude_json_str``, the text LiteLLM's Claude token counter reads (and which stays). Nothing in
    LiteLLM 1.106.2 reads ``json_data`` after that line, yet the module keeps it alive for the life of the
    process. Dropping it lowers the operator's idle RSS with a model by about 12 MiB (``make bench``, 285 →
    272 MiB): half of it is returned at once, the rest is reused by what the first model call allocates.
    A LiteLLM without that global makes this a no-op."""
    utils = sys.modules.get("litellm.utils")
    if utils is not None:
        vars(utils).pop("json_data", None)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _is_transient(litellm: Any, exc: BaseException) -> bool:
    if isinstance(exc, litellm.Timeout | litellm.APIConnectionError):
        return True
    return _status_of(exc) in TRANSIENT_STATUSES


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _DETAIL_CAP else text[: _DETAIL_CAP - 1] + "…"


def _explain(litellm: Any, exc: BaseException, settings: ModelSettings, attempts: int) -> str:
    where = settings.api_base or "the provider's default endpoint"
    tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    detail = _detail(exc)
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        return (
            f"model {settings.model} rejected the credentials ({detail}); set the provider's API key "
            "(e.g. OPENAI_API_KEY) or BOSUN_API_KEY in the operator's environment"
        )
    if isinstance(exc, litellm.NotFoundError):
        return f"model {settings.model} was not found at {where} ({detail}); check BOSUN_MODEL/BOSUN_API_BASE"
    if isinstance(exc, litellm.Timeout):
        return (
            f"model {settings.model} did not answer within {settings.timeout:g}s {tries}; check {where} "
            "or raise the model timeout"
        )
    if isinstance(exc, litellm.APIConnectionError) or "connection error" in detail.lower():
        return f"cannot reach model {settings.model} at {where} {tries} ({detail}); check BOSUN_API_BASE"
    if _status_of(exc) == 429:
        return f"model {settings.model} is rate-limited {tries} ({detail}); retry later or raise the quota"
    status = _status_of(exc)
    if status is not None and status >= 500:
        return (
            f"model {settings.model} at {where} kept failing (HTTP {status}) {tries} ({detail}); retry later"
        )
    return (
        f"model {settings.model} refused the request ({detail}); check BOSUN_MODEL and the provider settings"
    )


def _cost(litellm: Any, response: Any) -> float:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if isinstance(cost, int | float):
        return float(cost)
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # unknown or self-hosted models have no price; they cost 0 here
        return 0.0


def _api_key(settings: ModelSettings) -> str | None:
    if settings.api_key:
        return settings.api_key
    if settings.api_base and settings.model.startswith("openai/"):
        # Local OpenAI-compatible servers ignore the key, but the OpenAI client refuses to send none.
        return os.environ.get("OPENAI_API_KEY", "unused-by-local-server")
    return None


async def complete(
    settings: ModelSettings, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> ModelReply:
    """One chat completion, retried with backoff on transient failures; raises ModelError otherwise.
    Counted once, retries included (``bosun_model_calls_total``, tokens and cost), and traced as one span
    (``bosun.tracing.model_call``)."""
    started = time.monotonic()
    with tracing.model_call(settings.model) as current:
        try:
            reply = await _complete(settings, messages, tools)
        except ModelError:
            record_model_call(settings.model, started, ok=False)
            raise
        usage = reply.usage
        prompt, completion, cost = usage.prompt_tokens, usage.completion_tokens, usage.cost_usd
        record_model_call(settings.model, started, ok=True, prompt=prompt, completion=completion, cost=cost)
        tracing.model_usage(current, prompt=prompt, completion=completion, cost=cost)
    return reply


async def _complete(
    settings: ModelSettings, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> ModelReply:
    litellm = _litellm()
    attempts = max(1, settings.max_retries + 1)
    attempt = 0
    while True:
        attempt += 1
        try:
            response = await litellm.acompletion(
                model=settings.model,
                messages=messages,
                tools=tools or None,
                api_base=settings.api_base,
                api_key=_api_key(settings),
                timeout=settings.timeout,
                num_retries=0,
                max_retries=0,
                # The tools are plain functions, never LiteLLM's MCP-gateway tools; without this, LiteLLM
                # imports its MCP gateway (the MCP SDK, Starlette, uvicorn: about 19 MiB) on the first call
                # with tools, only to find no MCP tool among them.
                _skip_mcp_handler=True,
            )
        except Exception as exc:  # every LiteLLM failure is classified below
            if attempt < attempts and _is_transient(litellm, exc):
                hinted = _retry_after(exc)
                backoff = settings.retry_backoff * 2 ** (attempt - 1)
                await asyncio.sleep(min(_MAX_BACKOFF, hinted if hinted is not None else backoff))
                continue
            raise ModelError(_explain(litellm, exc, settings, attempt)) from exc
        return _reply(litellm, response)


def _reply(litellm: Any, response: Any) -> ModelReply:
    message = response.choices[0].message
    calls = [
        RawToolCall(
            id=c.id or f"call_{i}", name=c.function.name or "", arguments=c.function.arguments or "{}"
        )
        for i, c in enumerate(getattr(message, "tool_calls", None) or [])
    ]
    usage = getattr(response, "usage", None)
    return ModelReply(
        content=message.content or "",
        tool_calls=calls,
        usage=Usage(
            calls=1,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=_cost(litellm, response),
        ),
    )
