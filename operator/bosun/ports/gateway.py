"""The operator's side of the tools: where they run, the checks before a call, calls as someone.

Everything the operator does to the world goes through here, so every call is checked here first: whether a
tool mutates is decided by the operator's own registry (``bosun_tools.registry.safety_of``; MCP hints are
informative only and unknown tools count as mutating), ``ToolGateway.validation_error`` checks arguments
against the tool's full schema, undeclared ones included, and ``ToolGateway.scope_error`` refuses, before
anything is run or proposed, calls that reach outside the task (the rules: ``bosun.core.scope``). Whether
an object is namespaced is asked of the API server's discovery (``KubeDiscovery``), never read from the
call's arguments. What the model sees of the tools (lean schemas, toolsets) is the planner's business:
``bosun.planner.toolsets``.

The operator's own namespace, which the agent never touches, is ``BOSUN_OPERATOR_NAMESPACE``, else
``POD_NAMESPACE``, else the namespace of the pod's ServiceAccount (see ``operator_namespace``).

Secret values in writes: a proposal is stored in the task's status and shown to the approver, so it must
never hold a secret value. A preview therefore names the task it is for, so the tool server can keep the
call's new secret values in a holding Secret of the task and return the call's arguments with placeholders
(``ToolCallOutcome.sealed_args``, see ``bosun_tools.sealing``); those, never the values, are proposed and
hashed. Bosun's internal tools (deleting a finished task's holding Secrets, confirming a sealed value by
digest for verification) are called here but never listed, offered or validated for a model.

The tools run in this process by default (``InProcessTools``: direct calls, no MCP stack loaded), or in a
separate tool server reached over MCP with the operator token (``bosun.ports.mcp_tools``); every check
here is the same for both.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import jsonschema
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.local import LocalTools
from bosun_tools.registry import ToolSpec, defaults_of, input_schema, safety_of
from bosun_tools.sealing import TaskRef
from bosun_tools.settings import ToolSettings

from bosun import tracing
from bosun.core import scope
from bosun.metrics import record_tool_call

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where Kubernetes tells a pod its namespace, next to its ServiceAccount token."""


class ToolServerUnavailable(Exception):
    """The tool server cannot be reached (or refuses the operator); retry later, nothing ran."""


@dataclass(frozen=True)
class ToolCallOutcome:
    ok: bool
    text: str
    diff: str | None
    data: dict[str, Any] | None
    error: str | None
    truncated: bool
    sealed_args: dict[str, Any] | None = None
    """A preview's arguments with each secret value replaced by a placeholder (None: it carried none)."""

    @classmethod
    def failed(cls, message: str) -> ToolCallOutcome:
        return cls(False, message, None, None, message, False)

    @classmethod
    def of(cls, result: Mapping[str, Any], texts: list[str] | None = None) -> ToolCallOutcome:
        """A tool's answer (``bosun_tools.output.ToolOutput`` as JSON), however it travelled; ``texts``: the
        answer's text blocks, when it came as MCP content."""
        text = result.get("text")
        if not isinstance(text, str):
            text = "\n".join(texts) if texts else json.dumps(result)
        data, diff, sealed = result.get("data"), result.get("diff"), result.get("sealed_args")
        return cls(
            ok=True,
            text=text,
            diff=diff if isinstance(diff, str) else None,
            data=data if isinstance(data, dict) else None,
            error=None,
            truncated=bool(result.get("truncated", False)),
            sealed_args=sealed if isinstance(sealed, dict) else None,
        )


Mode = Literal["read", "preview", "execute"]


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str
    input_schema: Mapping[str, Any]


class DeferredSchema(Mapping[str, Any]):
    """An in-process tool's input schema, built (``registry.input_schema``) the first time it is read.

    Building one costs about a millisecond of CPU (pydantic reads the tool's signature), and a reconcile
    reads the schemas of the few tools it calls; building all of them at start cost the operator's start
    about 45 ms, spent while the startup checks waited for the API server and slowing them down."""

    def __init__(self, spec: ToolSpec) -> None:
        self._spec = spec
        self._schema: dict[str, Any] | None = None

    def _built(self) -> dict[str, Any]:
        if self._schema is None:
            self._schema = input_schema(self._spec)
        return self._schema

    def __getitem__(self, key: str) -> Any:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


class ToolServer(Protocol):
    """Where the tools run: in this process (``InProcessTools``) or behind MCP
    (``bosun.ports.mcp_tools``). Tool failures come back as ``ok=False``; ``ToolServerUnavailable`` means
    the call was not made."""

    async def listed(self) -> list[ListedTool]: ...

    async def call(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        mode: Mode,
        task: TaskRef | None,
        timeout: float,  # noqa: ASYNC109 - the call's deadline, enforced by the server
    ) -> ToolCallOutcome: ...

    async def aclose(self) -> None: ...


class InProcessTools:
    """The tools called in this process (``bosun_tools.local``), the operator's default."""

    def __init__(self, tools: LocalTools) -> None:
        self._tools = tools

    async def listed(self) -> list[ListedTool]:
        return [ListedTool(s.name, s.description, DeferredSchema(s)) for s in self._tools.offered()]

    async def call(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        mode: Mode,
        task: TaskRef | None,
        timeout: float,  # noqa: ASYNC109 - the call's deadline, enforced here
    ) -> ToolCallOutcome:
        try:
            async with asyncio.timeout(timeout):
                output = await self._tools.call(
                    tool, args, identity=identity, preview=mode == "preview", task=task
                )
        except TimeoutError:
            return ToolCallOutcome.failed(f"{tool} did not answer within {timeout:g}s")
        except ToolError as exc:
            return ToolCallOutcome.failed(str(exc))
        return ToolCallOutcome.of(output.model_dump(mode="json"))

    async def aclose(self) -> None:
        await self._tools.aclose()


class Discover(Protocol):
    """API discovery as the scope check needs it: the resource a kind (and apiVersion) names, or None when
    the API server serves no such kind. Raises ``ToolServerUnavailable`` when it cannot tell."""

    async def __call__(self, kind: str, api_version: str | None) -> scope.Resource | None: ...


class KubeDiscovery:
    """Discovery through a ``KubeClient``: cached per client, and a kind it does not know re-reads
    discovery once, so a CRD created a moment ago is found (``KubeClient.resolve``, the same matching the
    tools use). Without a client, one is made on first use from ``kubeconfig`` (None: ``$KUBECONFIG``, else
    the pod's ServiceAccount), so a gateway can be built and its schemas listed without cluster
    credentials; only a client made here is closed by ``aclose``."""

    def __init__(
        self, kube: KubeClient | None = None, *, kubeconfig: str | None = None, context: str | None = None
    ) -> None:
        self._kube = kube
        self._owned: KubeClient | None = None
        self._kubeconfig = kubeconfig
        self._context = context

    def _client(self) -> KubeClient:
        if self._kube is None:
            try:
                self._kube = self._owned = KubeClient.from_kubeconfig(self._kubeconfig, context=self._context)
            except Exception as exc:  # kubernetes.config raises several unrelated types for bad configs
                raise ToolServerUnavailable(
                    f"cannot load Kubernetes credentials to read API discovery ({exc}), so no call's scope "
                    "can be checked; set KUBECONFIG or run in a pod with a ServiceAccount"
                ) from exc
        return self._kube

    async def __call__(self, kind: str, api_version: str | None) -> scope.Resource | None:
        try:
            info = await self._client().resolve(kind, api_version)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise ToolServerUnavailable(
                f"cannot read API discovery to decide whether {kind} is namespaced ({exc}); nothing ran, "
                "the task retries when the API server answers"
            ) from exc
        return scope.Resource(info.group, info.version, info.kind, info.plural, info.namespaced)

    async def aclose(self) -> None:
        if self._owned is not None:
            await self._owned.aclose()
            self._kube = self._owned = None


def operator_namespace(
    env: Mapping[str, str] | None = None, namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str | None:
    """The namespace the operator runs in (the agent never touches it): ``BOSUN_OPERATOR_NAMESPACE``, else
    ``POD_NAMESPACE`` (the downward API), else the pod's ServiceAccount namespace file; None outside a
    cluster with neither variable set, where there is no such namespace."""
    env = os.environ if env is None else env
    named = (env.get("BOSUN_OPERATOR_NAMESPACE") or env.get("POD_NAMESPACE") or "").strip()
    if named:
        return named
    try:
        return namespace_file.read_text().strip() or None
    except OSError:
        return None


class ToolGateway:
    """Operator-side access to the tools: the tools it offers, the checks before a call, calls as
    someone."""

    def __init__(self, server: ToolServer, *, discover: Discover, operator_namespace: str | None) -> None:
        self._server = server
        self._discover = discover
        self._operator_namespace = operator_namespace
        self._tools: dict[str, Mapping[str, Any]] | None = None
        self._descriptions: dict[str, str] = {}
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    @classmethod
    def in_process(
        cls,
        settings: ToolSettings | None = None,
        *,
        discover: Discover | None = None,
        kube: KubeClient | None = None,
    ) -> ToolGateway:
        """Tools called in this process; discovery (unless given) through the tools' own client. ``kube``
        (the caller's to close) is that client when the tools act with the caller's own credentials, so
        both share one connection pool and one discovery cache; without it one is made from ``settings``'
        kubeconfig on first use."""
        settings = settings or ToolSettings()
        return cls(
            InProcessTools(LocalTools(settings, kube)),
            discover=discover
            or KubeDiscovery(kube, kubeconfig=settings.kubeconfig, context=settings.context),
            operator_namespace=operator_namespace(),
        )

    async def input_schemas(self) -> dict[str, Mapping[str, Any]]:
        """Full input schemas by tool name, as served (used to validate arguments before anything runs):
        the tools planning may use, so Bosun's internal tools are left out and a model naming one is told
        it does not exist. An in-process tool's schema is built when first read (``DeferredSchema``)."""
        if self._tools is None:
            listed = await self._server.listed()
            self._tools = {tool.name: tool.input_schema for tool in listed}
            self._descriptions = {tool.name: tool.description for tool in listed}
        return self._tools

    async def descriptions(self) -> dict[str, str]:
        """What each tool planning may use is for, by name, in the tool server's words."""
        await self.input_schemas()
        return self._descriptions

    def is_read_only(self, tool: str) -> bool:
        return safety_of(tool).read_only

    async def scope_error(
        self,
        tool: str,
        args: Mapping[str, Any],
        target_namespaces: list[str],
        *,
        cluster_scope: bool = False,
    ) -> str | None:
        """Why this call may not run for a task scoped to ``target_namespaces`` (None: it may).

        ``cluster_scope``: the task's spec consents to cluster-scoped changes. The rules are
        ``bosun.core.scope``'s; this adds the facts: the tool's defaults, whether it is read-only, and API
        discovery for each kind it names (asked only when the arguments alone do not already refuse it).
        Raises ``ToolServerUnavailable`` when discovery cannot be read: nothing is decided then."""
        call = scope.call_of(tool, {**defaults_of(tool), **args}, read_only=safety_of(tool).read_only)
        limits = scope.Scope(tuple(target_namespaces), cluster_scope, self._operator_namespace)
        problem = scope.argument_error(call, limits)
        if problem is not None:
            return problem
        found = {lookup: await self._discover(*lookup) for lookup in call.lookups}
        return scope.resource_error(call, limits, found)

    async def cluster_scoped(self, tool: str, args: Mapping[str, Any]) -> bool:
        """Whether a call changes something beyond one namespace, from API discovery (``scope``)."""
        call = scope.call_of(tool, {**defaults_of(tool), **args}, read_only=safety_of(tool).read_only)
        if call.problem is not None:
            return False
        found = {lookup: await self._discover(*lookup) for lookup in call.lookups}
        return scope.touches_cluster(call, found)

    async def validation_error(self, tool: str, args: Any) -> str | None:
        """Why ``args`` are not a valid call of ``tool`` (None: they are), in words a model can act on."""
        schemas = await self.input_schemas()
        if tool not in schemas:
            known = ", ".join(sorted(schemas))
            return f"unknown tool {tool!r}; the tool server offers: {known}"
        if not isinstance(args, dict):
            return f"arguments of {tool} must be a JSON object, got {type(args).__name__}"
        validator = self._validators.get(tool)
        if validator is None:
            # An argument the tool does not declare would be dropped silently by the server, yet shown in
            # the proposal a human approves; refuse it instead.
            strict = {"additionalProperties": False, **schemas[tool]}
            validator = self._validators[tool] = jsonschema.Draft202012Validator(strict)
        problems = sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path))
        if not problems:
            return None
        lines = []
        for problem in problems[:5]:
            where = ".".join(str(p) for p in problem.absolute_path) or "(arguments)"
            lines.append(f"{where}: {problem.message}")
        return f"invalid arguments for {tool}: " + "; ".join(lines)

    async def read(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        timeout: float = 60,  # noqa: ASYNC109 - handed to the tool server, which enforces it
    ) -> ToolCallOutcome:
        """Run a read-only tool as ``identity``. A tool the registry does not know as read-only is not
        run at all: investigation and verification can never change anything by mistake."""
        if not self.is_read_only(tool):
            return ToolCallOutcome.failed(
                f"{tool} is not a read-only tool; it can only be previewed, or executed once approved"
            )
        return await self._call(tool, args, identity, "read", None, timeout)

    async def preview(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        task: TaskRef | None = None,
        timeout: float = 60,  # noqa: ASYNC109 - handed to the tool server, which enforces it
    ) -> ToolCallOutcome:
        """Dry-run a mutating tool as ``identity`` for ``task``: the tool server runs it in preview mode,
        where its Kubernetes client adds ``dryRun=All`` to every write and Helm and Jenkins change nothing.
        Secret values in the arguments are sealed into a holding Secret of ``task`` (without a task, a
        call carrying secret values is refused)."""
        return await self._call(tool, args, identity, "preview", task, timeout)

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        task: TaskRef | None = None,
        timeout: float = 60,  # noqa: ASYNC109 - handed to the tool server, which enforces it
    ) -> ToolCallOutcome:
        """Run an approved call (or Bosun's own cleanup) for real as ``identity``."""
        return await self._call(tool, args, identity, "execute", task, timeout)

    async def _call(
        self,
        tool: str,
        args: dict[str, Any],
        identity: Identity,
        mode: Mode,
        task: TaskRef | None,
        timeout: float,  # noqa: ASYNC109 - handed to the tool server, which enforces it
    ) -> ToolCallOutcome:
        """One call; tool failures come back as ``ok=False``, never as exceptions. Each is counted
        (``bosun_tool_calls_total``): ``unavailable`` when the tool server was not reached; and traced
        (``bosun.tracing.tool_call``)."""
        started = time.monotonic()
        with tracing.tool_call(tool, mode) as current:
            try:
                outcome = await self._server.call(
                    tool, args, identity=identity, mode=mode, task=task, timeout=timeout
                )
            except ToolServerUnavailable:
                record_tool_call(tool, mode, "unavailable", started)
                tracing.tool_outcome(current, "unavailable")
                raise
            result = "ok" if outcome.ok else "error"
            record_tool_call(tool, mode, result, started)
            tracing.tool_outcome(current, result)
        return outcome

    async def aclose(self) -> None:
        self._tools = None
        self._validators.clear()
        await self._server.aclose()
        if isinstance(self._discover, KubeDiscovery):
            await self._discover.aclose()
