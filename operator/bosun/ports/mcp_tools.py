"""A separate tool server, reached over MCP (Streamable HTTP) with the operator token.

Used when ``BOSUN_TOOLS_URL`` is set; the identity a call runs as, whether it is a preview, and the task
it is for travel in each request's ``_meta``, which the tool server trusts only from a client presenting
the operator token (``bosun_tools.server``). Imported only then, so an operator with in-process tools
never loads FastMCP. One session is kept open and made again after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from bosun_tools.identity import Identity
from bosun_tools.registry import INTERNAL, safety_of
from bosun_tools.sealing import TASK_META, TaskRef
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from bosun.ports.gateway import (
    Discover,
    KubeDiscovery,
    ListedTool,
    Mode,
    ToolCallOutcome,
    ToolGateway,
    ToolServerUnavailable,
    operator_namespace,
)


def over_http(url: str, token: str, *, discover: Discover | None = None) -> ToolGateway:
    """A gateway to the tool server at ``url``; discovery (unless given) through the operator's own
    credentials (``$KUBECONFIG``, else its ServiceAccount), which every authenticated user may read
    discovery with."""
    return ToolGateway(
        McpTools(Client(url, auth=token), f"the tool server at {url}", url=url, token=token),
        discover=discover or KubeDiscovery(),
        operator_namespace=operator_namespace(),
    )


def call_meta(identity: Identity, mode: Mode, task: TaskRef | None) -> dict[str, Any]:
    """What a call tells a trusting tool server in ``_meta``: as whom, whether a preview, for which task."""
    meta: dict[str, Any] = {
        "bosun.dev/identity": {"user": identity.user, "groups": list(identity.groups)},
        "bosun.dev/mode": "preview" if mode == "preview" else "execute",
    }
    if task is not None:
        meta[TASK_META] = task.as_meta()
    return meta


class McpTools:
    """Tools behind an MCP client (``fastmcp.Client``: over HTTP, or any transport a test gives it)."""

    def __init__(self, client: Client[Any], where: str, *, url: str | None = None, token: str | None = None):
        self._where = where
        self._client = client
        self._url = url
        self._token = token
        self._session_stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def _session(self) -> Client[Any]:
        async with self._lock:
            if self._session_stack is None:
                stack = contextlib.AsyncExitStack()
                try:
                    await stack.enter_async_context(self._client)
                except Exception as exc:
                    raise ToolServerUnavailable(await self._why_unreachable(exc)) from exc
                self._session_stack = stack
        return self._client

    async def _why_unreachable(self, exc: Exception) -> str:
        """MCP reports a refused token as a bare "error response"; one plain request tells which it was."""
        if self._url is not None:
            headers = {
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/json, text/event-stream",
            }
            try:
                async with httpx.AsyncClient(timeout=5) as http:
                    status = (await http.post(self._url, headers=headers, json={})).status_code
            except httpx.HTTPError:
                status = None
            if status in (401, 403):
                return (
                    f"{self._where} refused the operator's token (HTTP {status}); give the operator the same "
                    "value as the tool server's BOSUN_TOOLS_OPERATOR_TOKEN"
                )
        return f"cannot reach {self._where}: {exc}; check that it is running"

    async def _drop_session(self) -> None:
        async with self._lock:
            stack, self._session_stack = self._session_stack, None
            if stack is not None:
                # The session is already broken or being shut down; closing it is best effort.
                with contextlib.suppress(Exception):
                    await stack.aclose()

    async def listed(self) -> list[ListedTool]:
        """The tools planning may use: Bosun's internal tools are left out, so a model naming one is told
        it does not exist."""
        client = await self._session()
        try:
            tools = await client.list_tools()
        except (RuntimeError, MCPError, OSError) as exc:
            await self._drop_session()
            raise ToolServerUnavailable(f"{self._where} did not list its tools: {exc}") from exc
        return [
            ListedTool(tool.name, tool.description or "", dict(tool.input_schema))
            for tool in tools
            if safety_of(tool.name).toolset != INTERNAL
        ]

    async def call(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        mode: Mode,
        task: TaskRef | None,
        timeout: float,  # noqa: ASYNC109 - handed to the MCP request, which enforces it
    ) -> ToolCallOutcome:
        client = await self._session()
        try:
            result = await client.call_tool_mcp(
                tool, args, timeout=timeout, meta=call_meta(identity, mode, task)
            )
        except MCPError as exc:
            if "timed out" in str(exc):
                return ToolCallOutcome.failed(f"{tool} did not answer within {timeout:g}s")
            await self._drop_session()
            raise ToolServerUnavailable(f"{self._where} failed while running {tool}: {exc}") from exc
        except (RuntimeError, OSError) as exc:
            await self._drop_session()
            raise ToolServerUnavailable(f"{self._where} failed while running {tool}: {exc}") from exc
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        if result.is_error:
            return ToolCallOutcome.failed("\n".join(texts) or f"{tool} failed without a message")
        structured = result.structured_content or {}
        if set(structured) == {"result"} and isinstance(structured["result"], dict):
            structured = structured["result"]
        return ToolCallOutcome.of(structured, texts)

    async def aclose(self) -> None:
        await self._drop_session()
