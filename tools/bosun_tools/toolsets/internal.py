"""Bosun's internal toolset: what the operator does through the tool server, never a model.

Only the tool server acts as the requester, so what must happen as the requester around sealed values
(``bosun_tools.sealing``) is a tool: deleting a finished task's holding Secrets, and confirming, for
verification, that a Secret holds a sealed value without showing it. The toolset is served to the
operator whatever toolsets are configured, refused to every other client, and left out of everything the
gateway offers or validates for a model.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bosun_tools.errors import ToolError
from bosun_tools.output import ToolOutput
from bosun_tools.registry import K8sName, Namespace, ToolContext, bosun_tool, current
from bosun_tools.sealing import CLEANUP_TOOL, COMPARE_TOOL, compare, delete_holders

TaskUid = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", max_length=63)]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
DataKey = Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


def _operator_only(tool: str) -> ToolContext:
    """The call's context, if the caller is the operator (in process, or with the operator token)."""
    ctx = current()
    if not ctx.trusted:
        raise ToolError(f"{tool} is Bosun's own; only the operator may call it")
    return ctx


@bosun_tool(toolset="internal", destructive=True, idempotent=True, timeout=30, name=CLEANUP_TOOL)
async def bosun_delete_sealed(namespace: Namespace, task_uid: TaskUid) -> ToolOutput:
    """Delete the Secrets holding a task's sealed values once the task is finished."""
    ctx = _operator_only(CLEANUP_TOOL)
    who = ctx.identity.user if ctx.identity else "the tool server's own identity"
    names = await delete_holders(ctx.kube, namespace, task_uid, who=who)
    verb = "Would delete" if ctx.preview else "Deleted"
    text = f"{verb} {len(names)} holding Secret(s) of task {task_uid} in namespace {namespace}" + (
        f": {', '.join(names)}." if names else "."
    )
    return ToolOutput(text=text, data={"namespace": namespace, "deleted": names, "dry_run": ctx.preview})


@bosun_tool(toolset="internal", read_only=True, timeout=30, name=COMPARE_TOOL)
async def bosun_compare_sealed(
    namespace: Namespace, name: K8sName, digests: dict[DataKey, Digest]
) -> ToolOutput:
    """Whether a Secret holds sealed values (data key to SHA-256 digest), compared by digest, never shown."""
    ctx = _operator_only(COMPARE_TOOL)
    secret = await ctx.kube.get(await ctx.kube.resolve("secrets", "v1"), name, namespace)
    states = compare(secret, digests)
    text = f"Secret {name} in namespace {namespace}: " + ", ".join(f"{k} {v}" for k, v in states.items())
    return ToolOutput(text=text, data={"namespace": namespace, "name": name, "keys": states})
