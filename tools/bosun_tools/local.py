"""Bosun's tools called in the operator's own process, without MCP: the operator's default.

The operator is a trusted caller: it names the identity a call runs as and the task it is for, and may
call mutating tools, as a client holding the operator token may over MCP (``bosun_tools.server``). A call
here goes through exactly what a served call goes through: its arguments are validated by pydantic
against the tool's signature (what FastMCP does before it calls a tool), the same ``registry.servable``
wrapper runs it (context, timeout, sealing of secret values, error wording, metrics), and the schemas
offered are the same ``registry.input_schema``. An error a tool did not mean to show is masked as the
MCP server masks it, and logged.

What is left out is the protocol itself: no MCP session, no JSON-RPC message per call through in-memory
streams, and no import of FastMCP and the MCP SDK, which cost every operator start about half a second
and 30 MiB (``make bench``; ``tests/unit/test_startup_imports.py`` keeps them out).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bosun_tools.client.kube import KubeClient
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.output import ToolOutput
from bosun_tools.registry import (
    INTERNAL,
    OwnKube,
    ToolContext,
    ToolSpec,
    call_adapter,
    servable,
    served,
)
from bosun_tools.sealing import TaskRef
from bosun_tools.settings import ToolSettings

log = logging.getLogger("bosun_tools")


@dataclass(frozen=True)
class _Caller:
    identity: Identity | None
    preview: bool
    task: TaskRef | None


def prepare(settings: ToolSettings) -> None:
    """Do now what the first call would: import every toolset (about 20 ms of CPU). The operator runs it in
    a thread while its startup checks wait for the API server, so the first task does not pay for it. A
    tool's schema is left to its first use: building all of them would double the thread's work, and that
    work slows the checks it overlaps."""
    served(settings)


class LocalTools:
    """The tools of ``settings`` (plus the internal toolset), called directly. ``kube`` (optional) is the
    tools' own client, the caller's to close; without one it is made from ``settings`` on first use."""

    def __init__(self, settings: ToolSettings, kube: KubeClient | None = None) -> None:
        self._settings = settings
        self._own = OwnKube(settings, kube)
        self._specs = {spec.name: spec for spec in served(settings)}
        self._caller: ContextVar[_Caller] = ContextVar("bosun_local_caller")
        self._runs: dict[str, TypeAdapter[Any]] = {}

    def offered(self) -> list[ToolSpec]:
        """The tools a model may be offered: every served one but Bosun's internal toolset."""
        return [spec for spec in self._specs.values() if spec.safety.toolset != INTERNAL]

    def _context(self, spec: ToolSpec) -> ToolContext:
        caller = self._caller.get()
        return ToolContext.for_call(
            spec,
            self._settings,
            self._own.get(),
            identity=caller.identity,
            preview=caller.preview,
            task=caller.task,
            trusted=True,
        )

    def _run(self, spec: ToolSpec) -> TypeAdapter[Any]:
        """The served tool as pydantic calls it: validating its arguments, then calling it (one adapter per
        tool, built on first use; building one costs about as much as a call)."""
        run = self._runs.get(spec.name)
        if run is None:
            run = self._runs[spec.name] = call_adapter(servable(spec, self._context))
        return run

    async def call(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity | None,
        preview: bool,
        task: TaskRef | None = None,
    ) -> ToolOutput:
        """Run ``tool`` as ``identity`` (None: as the tools' own identity), in preview or for real. Raises
        ``ToolError`` with words for the caller: unknown tool, invalid arguments, or the tool's failure."""
        spec = self._specs.get(tool)
        if spec is None:
            raise ToolError(f"unknown tool {tool!r}; served: {', '.join(sorted(self._specs))}")
        token = self._caller.set(_Caller(identity, preview, task))
        try:
            try:
                running = self._run(spec).validate_python(args)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in error['loc']) or '(arguments)'}: {error['msg']}"
                    for error in exc.errors(include_url=False, include_input=False)
                )
                raise ToolError(f"invalid arguments for {tool}: {problems}") from None
            output: ToolOutput = await running
            return output
        except ToolError:
            raise
        except Exception:
            log.exception("Error calling tool %r", tool)
            raise ToolError(f"Error calling tool {tool!r}") from None
        finally:
            self._caller.reset(token)

    async def aclose(self) -> None:
        await self._own.aclose()
