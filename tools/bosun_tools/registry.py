"""The one safety registry of Bosun's tools, and how tools are served.

The operator's approval gate asks ``safety_of(name)`` whether a call needs approval: the facts live next to
the tool's code, recorded by the ``bosun_tool`` decorator, and MCP annotations are derived from the same
facts so hints and policy cannot drift apart. Anything not registered here is treated as mutating, so a
tool nobody described can never run unapproved.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, cast

from pydantic import Field, TypeAdapter

from bosun_tools import metrics
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.output import ToolOutput
from bosun_tools.sealing import CallSecrets, TaskRef, run_sealed
from bosun_tools.settings import TOOLSETS, Toolset, ToolSettings

INTERNAL: Toolset = "internal"
"""Bosun's own housekeeping (deleting a finished task's holding Secrets): always served to the operator,
never a configurable toolset, never offered to a model (``bosun.ports.gateway`` leaves it out)."""
# Modules (or packages, every module of which is imported) that register tools when imported. safety_of()
# imports them first so that a gate asking about e.g. a helm tool never gets "unknown, hence mutating" just
# because nothing imported helm yet.
TOOLSET_MODULES: tuple[str, ...] = tuple(f"bosun_tools.toolsets.{name}" for name in (*TOOLSETS, INTERNAL))
READ_ONLY_TAG = "read-only"
MUTATING_TAG = "mutating"

# ----- argument types shared by every toolset --------------------------------------------------------------
# Patterns are deliberately short (they are sent to the model with every schema) yet exclude spaces,
# leading dashes and anything but DNS characters, so no value can ever become a flag or a second word.

K8sName = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", max_length=253)]
Namespace = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", max_length=63)]
DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", max_length=63)]
Kind = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9.-]*$", max_length=120)]
Selector = Annotated[str, Field(pattern=r"^[A-Za-z0-9 ._/=!,()-]*$", max_length=512)]
Image = Annotated[str, Field(pattern=r"^[a-z0-9][a-zA-Z0-9._/:@-]*$", max_length=512)]


@dataclass(frozen=True)
class ToolSafety:
    read_only: bool
    destructive: bool
    idempotent: bool
    toolset: str


UNKNOWN_TOOL = ToolSafety(read_only=False, destructive=True, idempotent=False, toolset="unknown")


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use during one call; built by the server from the request.

    ``kube`` impersonates the caller's identity and is the only client a tool may use for work a person
    asked for. ``server_kube`` is the server's own identity, for reading configuration the model must never
    choose (e.g. the Jenkins credentials Secret named in settings) and for asking the API server what the
    requester may do where Kubernetes RBAC does not apply by itself (Jenkins). In a ``preview`` both are
    previewing clients (``KubeClient.previewing``): every write they send is a server-side dry run, so a
    tool needs no preview branch to change nothing, only to word its answer. ``sealing_kube`` is the
    caller's client that writes for real even in a preview, for the call wrapper alone: a preview keeps the
    call's new secret values in a holding Secret (``bosun_tools.sealing``) that must exist when the approved
    call runs; no tool uses it. ``task`` is the AgentTask a trusted caller (the operator) makes the call
    for, ``trusted`` whether the caller is the operator, and ``secrets`` the call's secret values: a tool
    marks there what only it can tell is secret.
    """

    kube: KubeClient
    server_kube: KubeClient
    identity: Identity | None
    preview: bool
    settings: ToolSettings
    tool: str
    sealing_kube: KubeClient
    task: TaskRef | None = None
    trusted: bool = False
    secrets: CallSecrets = field(default_factory=CallSecrets)

    @classmethod
    def for_call(
        cls,
        spec: ToolSpec,
        settings: ToolSettings,
        own: KubeClient,
        *,
        identity: Identity | None,
        preview: bool,
        task: TaskRef | None,
        trusted: bool,
    ) -> ToolContext:
        """The context of one call of ``spec`` as ``identity`` (None: as the server itself), built from
        the serving process's own client ``own``, previewing in a preview."""
        server_kube = own.previewing() if preview else own
        return cls(
            kube=server_kube.impersonating(identity),
            server_kube=server_kube,
            identity=identity,
            preview=preview,
            settings=settings,
            tool=spec.name,
            sealing_kube=own.impersonating(identity),
            task=task,
            trusted=trusted,
        )


_current: ContextVar[ToolContext] = ContextVar("bosun_tool_context")


def current() -> ToolContext:
    """The context of the tool call in progress."""
    try:
        return _current.get()
    except LookupError:
        raise ToolError("internal: tool called outside a Bosun tool server request") from None


ToolFn = Callable[..., Awaitable[ToolOutput]]
F = TypeVar("F", bound=ToolFn)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: ToolFn
    safety: ToolSafety
    timeout: float
    description: str
    group: str
    """The tools a model is offered together (``bosun.planner.toolsets``): every tool definition costs
    tokens on every model turn, so a model loads only the group its request needs."""


class ToolRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, ToolSpec] = {}

    def tool(
        self,
        *,
        toolset: Toolset,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        timeout: float = 30.0,
        name: str | None = None,
        group: str | None = None,
    ) -> Callable[[F], F]:
        """Record a tool's safety facts and make it servable; the docstring's first paragraph is the
        description sent to models, so keep it to one short sentence. ``group`` names the tools a model
        loads together (default: the toolset)."""

        def decorate(fn: F) -> F:
            tool_name = name or fn.__name__
            if tool_name in self._specs and self._specs[tool_name].fn is not fn:
                raise ValueError(f"tool {tool_name} is registered twice; tool names must be unique")
            doc = inspect.getdoc(fn) or tool_name
            safety = ToolSafety(
                read_only=read_only,
                destructive=destructive and not read_only,
                idempotent=idempotent or read_only,
                toolset=toolset,
            )
            description = doc.split("\n\n")[0].strip()
            self._specs[tool_name] = ToolSpec(tool_name, fn, safety, timeout, description, group or toolset)
            return fn

        return decorate

    def specs(self, toolset: str | None = None) -> list[ToolSpec]:
        """The tools of ``toolset``; without one, of every toolset a model may use, so the internal
        toolset (never a model's) is listed only when named."""
        if toolset is None:
            return [s for s in self._specs.values() if s.safety.toolset != INTERNAL]
        return [s for s in self._specs.values() if s.safety.toolset == toolset]

    def get(self, name: str) -> ToolSpec | None:
        return self._specs.get(name)

    def safety_of(self, tool_name: str) -> ToolSafety:
        spec = self._specs.get(tool_name)
        return spec.safety if spec is not None else UNKNOWN_TOOL


REGISTRY = ToolRegistry()
bosun_tool = REGISTRY.tool


@functools.cache
def load_toolsets() -> tuple[str, ...]:
    """Import every toolset module that exists, and every module of a toolset that is a package (once per
    process); returns the names of the toolsets loaded."""
    loaded = []
    for module in TOOLSET_MODULES:
        if importlib.util.find_spec(module) is None:
            continue
        toolset = importlib.import_module(module)
        for part in pkgutil.iter_modules(getattr(toolset, "__path__", ())):
            importlib.import_module(f"{module}.{part.name}")
        loaded.append(module.rsplit(".", 1)[1])
    return tuple(loaded)


def safety_of(tool_name: str) -> ToolSafety:
    """Safety facts of a tool; unknown names are mutating, destructive and not idempotent."""
    load_toolsets()
    return REGISTRY.safety_of(tool_name)


def tool_label(tool_name: str) -> str:
    """A metric label for a tool: its name when registered, else ``unknown`` (whatever a model named)."""
    return tool_name if safety_of(tool_name) is not UNKNOWN_TOOL else UNKNOWN_TOOL.toolset


def group_of(tool_name: str) -> str:
    """The group a model is offered a tool in (``ToolRegistry.tool``); an unknown tool's is its toolset's,
    ``unknown``."""
    load_toolsets()
    spec = REGISTRY.get(tool_name)
    return spec.group if spec is not None else UNKNOWN_TOOL.toolset


def is_registered(tool_name: str) -> bool:
    load_toolsets()
    return REGISTRY.get(tool_name) is not None


def defaults_of(tool_name: str) -> dict[str, Any]:
    """The arguments a tool fills in when a call leaves them out (``None`` defaults left out), so that a
    check of the call (the operator's scope check) sees the objects the tool will act on."""
    load_toolsets()
    spec = REGISTRY.get(tool_name)
    if spec is None:
        return {}
    parameters = inspect.signature(spec.fn).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not p.empty and p.default is not None}


def tags_of(spec: ToolSpec) -> set[str]:
    """Tags clients filter on to load toolsets on demand: the toolset name plus read-only/mutating."""
    return {spec.safety.toolset, READ_ONLY_TAG if spec.safety.read_only else MUTATING_TAG}


# ----- serving ---------------------------------------------------------------------------------------------

ContextFactory = Callable[[ToolSpec], ToolContext]


def describe_kube_error(exc: KubeError, tool: str, args: dict[str, Any], identity: Identity | None) -> str:
    """Turn an API error into a message that names the object, who asked, and what to do next."""
    namespace = args.get("namespace")
    where = f" in namespace {namespace}" if namespace else ""
    who = identity.user if identity else "the tool server's own identity"
    if exc.status == 404 and exc.reason == "NotFound":
        message = exc.message if "namespace" in exc.message or not where else f"{exc.message}{where}"
        return f"NotFound: {message}; check the name and namespace (list them with k8s_get without a name)"
    if exc.status == 403:
        return (
            f"Forbidden: {exc.message} (as {who}); "
            "the requester needs an RBAC role granting this, or a different request"
        )
    if exc.status == 409 and exc.reason == "AlreadyExists":
        return f"AlreadyExists: {exc.message}; choose another name or change the existing object"
    if exc.status == 409 and "Apply failed" in exc.message:
        return f"Conflict: {exc.message}; pass force=true to take over these fields from their manager"
    if exc.status == 409:
        return f"Conflict: {exc.message}; read the object again and retry"
    if exc.status == 422 or exc.reason in ("Invalid", "BadRequest"):
        return f"{exc.reason}: {exc.message}; fix the arguments of {tool}"
    return f"{exc.reason}: {exc.message}"


def servable(spec: ToolSpec, make_context: ContextFactory) -> ToolFn:
    """Wrap a tool so every call runs with its request context, its timeout, and clean errors, with its
    placeholders resolved and, in a mutating preview, its secret values sealed (``bosun_tools.sealing``);
    no output or error of the call carries a secret value it was given."""

    @functools.wraps(spec.fn)
    async def run(**kwargs: Any) -> ToolOutput:
        ctx = make_context(spec)
        token = _current.set(ctx)
        who = ctx.identity.user if ctx.identity else "the tool server's own identity"
        sealed = run_sealed(
            spec.name,
            spec.fn,
            kwargs,
            ctx.secrets,
            kube=ctx.sealing_kube,
            who=who,
            seal_for=ctx.task,
            sealing=ctx.preview and not spec.safety.read_only,
        )
        started, ok = time.monotonic(), False
        try:
            async with asyncio.timeout(spec.timeout):
                output = await sealed
            ok = True
            return output
        except TimeoutError:
            raise ToolError(
                f"{spec.name} timed out after {spec.timeout:g}s and was cancelled; "
                "narrow the request (namespace, selector, tail) or retry later"
            ) from None
        except KubeError as exc:
            message = describe_kube_error(exc, spec.name, kwargs, ctx.identity)
            raise ToolError(ctx.secrets.scrub(message)) from None
        except ToolError as exc:
            raise ToolError(ctx.secrets.scrub(str(exc))) from None
        finally:
            _current.reset(token)
            mutating = not spec.safety.read_only
            metrics.record_served(spec.name, mutating=mutating, preview=ctx.preview, ok=ok, since=started)

    return run


def served(settings: ToolSettings) -> list[ToolSpec]:
    """The tools served with ``settings``, over MCP or in the operator's process: those of the configured
    toolsets, and the internal toolset (Bosun's housekeeping) whatever is configured."""
    load_toolsets()
    for toolset in settings.toolsets:
        if toolset not in TOOLSETS:
            raise ValueError(
                f"unknown toolset {toolset!r} in settings; known toolsets: {', '.join(TOOLSETS)}"
            )
    return [spec for toolset in (*settings.toolsets, INTERNAL) for spec in REGISTRY.specs(toolset)]


def input_schema(spec: ToolSpec) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, the same for every caller: pydantic's schema of the tool's
    signature (the signature pydantic validates a call against), made lean (``_lean_schema``) and closed.
    An undeclared argument is a validation error, never silently ignored, and the schema says so: a client
    (or the operator's pre-flight check) can refuse it before anything is proposed. A copy of its own."""
    return copy.deepcopy(_input_schema(spec))


@functools.cache
def _input_schema(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "object",
        **_lean_schema(call_adapter(spec.fn).json_schema()),
        "additionalProperties": False,
    }


def call_adapter(fn: ToolFn) -> TypeAdapter[Any]:
    """pydantic's adapter of a call of ``fn``: its JSON schema is that of the arguments, and validating
    arguments with it calls ``fn`` with them converted (what FastMCP does with a tool function). pydantic
    accepts a function where a type is expected; its annotations only name types, hence the cast."""
    return TypeAdapter(cast(Any, fn))


class OwnKube:
    """The serving process's own client, created on first use so tools can be served (and their schemas
    listed) without cluster credentials. A client passed in is the caller's to close."""

    def __init__(self, settings: ToolSettings, kube: KubeClient | None = None) -> None:
        self._settings = settings
        self._kube = kube
        self._made = False

    def get(self) -> KubeClient:
        if self._kube is None:
            try:
                self._kube = KubeClient.from_kubeconfig(
                    self._settings.kubeconfig, context=self._settings.context
                )
                self._made = True
            except Exception as exc:  # kubernetes.config raises several unrelated types for bad configs
                raise ToolError(
                    f"cannot load Kubernetes credentials ({exc}); set KUBECONFIG or run in a pod "
                    "with a service account"
                ) from exc
        return self._kube

    async def aclose(self) -> None:
        """Close the client if it was made here."""
        if self._made and self._kube is not None:
            await self._kube.aclose()
            self._kube, self._made = None, False


def _lean_schema(schema: Any) -> Any:
    """Drop JSON-schema noise models do not need (titles, ``null`` defaults and alternatives, lengths of
    patterned strings): a few hundred bytes a tool. Arguments are still validated against the full
    signature."""
    if isinstance(schema, list):
        return [_lean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "maxLength" and "pattern" in schema:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {prop: _lean_schema(sub) for prop, sub in value.items()}
            continue
        out[key] = _lean_schema(value)
    if out.get("default", 0) is None:
        del out["default"]
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        # Optional parameters are simply left out by callers; "or null" only costs tokens.
        del out["anyOf"]
        out.update(next(o for o in options if o != {"type": "null"}))
    return out
