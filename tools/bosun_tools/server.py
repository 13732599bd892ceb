"""Assembles the FastMCP server: toolsets, who may call what, and as whom.

Trust model: an in-process MCP client (``fastmcp.Client(server)``, as tests use it) and an HTTP
caller presenting the operator token are trusted: they may pass the identity to impersonate and the task a
call is for in ``_meta``, and may call mutating tools. Every other token runs as the configured external
identity and sees only read-only tools, unless mutations for external clients are explicitly enabled.
The internal toolset (Bosun's housekeeping) is always served, whatever toolsets are configured. A call in
preview mode gets previewing Kubernetes clients, so whatever a tool sends is a server-side dry run.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError as McpToolError
from fastmcp.server.auth import AccessToken, AuthCheck, AuthContext, TokenVerifier
from fastmcp.server.dependencies import get_access_token, get_context
from fastmcp.tools import FunctionTool
from mcp_types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bosun_tools.client.kube import KubeClient
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.output import ToolOutput
from bosun_tools.registry import (
    ContextFactory,
    OwnKube,
    ToolContext,
    ToolFn,
    ToolSpec,
    input_schema,
    servable,
    served,
    tags_of,
)
from bosun_tools.sealing import TASK_META, TaskRef
from bosun_tools.settings import ToolSettings

IDENTITY_META = "bosun.dev/identity"
MODE_META = "bosun.dev/mode"
SCOPE_READ = "bosun:read"
SCOPE_MUTATE = "bosun:mutate"
SCOPE_IMPERSONATE = "bosun:impersonate"


class BearerTokens(TokenVerifier):
    """Two static bearer tokens mapped to scopes, compared in constant time."""

    def __init__(self, settings: ToolSettings) -> None:
        super().__init__()
        external = [SCOPE_READ, SCOPE_MUTATE] if settings.allow_external_mutations else [SCOPE_READ]
        self._tokens: list[tuple[str, str, list[str]]] = []
        if settings.operator_token:
            scopes = [SCOPE_READ, SCOPE_MUTATE, SCOPE_IMPERSONATE]
            self._tokens.append((settings.operator_token, "bosun-operator", scopes))
        if settings.external_token:
            self._tokens.append((settings.external_token, "external", external))

    async def verify_token(self, token: str) -> AccessToken | None:
        found: AccessToken | None = None
        for secret, client_id, scopes in self._tokens:  # no early exit: timing must not reveal which
            if hmac.compare_digest(secret.encode(), token.encode()):
                found = AccessToken(token=token, client_id=client_id, scopes=list(scopes))
        return found


def may_mutate(ctx: AuthContext) -> bool:
    """No token means an in-process caller: HTTP requests without a token never get this far (401)."""
    return ctx.token is None or SCOPE_MUTATE in ctx.token.scopes


def parse_identity(raw: Any) -> Identity | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("user"), str) or not raw["user"]:
        raise ToolError(f'_meta "{IDENTITY_META}" must be {{"user": "<name>", "groups": [...]}}; got {raw!r}')
    groups = raw.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ToolError(f'_meta "{IDENTITY_META}".groups must be a list of strings; got {groups!r}')
    return Identity(raw["user"], tuple(groups))


def register(
    mcp: FastMCP,
    specs: list[ToolSpec],
    make_context: ContextFactory,
    mutating_auth: AuthCheck | None = None,
) -> None:
    """Serve ``specs`` on ``mcp``; mutating tools additionally carry ``mutating_auth`` so callers without
    the right are neither shown them nor allowed to call them. Every tool is offered with its
    ``input_schema``, the one the operator's in-process calls are checked against too."""
    for spec in specs:
        safety = spec.safety
        tool = FunctionTool.from_function(
            _reported(servable(spec, make_context)),
            name=spec.name,
            description=spec.description,
            tags=tags_of(spec),
            annotations=ToolAnnotations(
                read_only_hint=safety.read_only,
                destructive_hint=safety.destructive,
                idempotent_hint=safety.idempotent,
                open_world_hint=safety.toolset == "jenkins",
            ),
            meta={"bosun.dev/toolset": safety.toolset},
            auth=None if safety.read_only else mutating_auth,
        )
        tool.parameters = input_schema(spec)
        mcp.add_tool(tool)


def _reported(run: ToolFn) -> ToolFn:
    """A tool's own refusals become FastMCP's ``ToolError``, the one error whose words a server that masks
    error details (this one) passes on to the caller."""

    @functools.wraps(run)
    async def reported(**kwargs: Any) -> ToolOutput:
        try:
            return await run(**kwargs)
        except ToolError as exc:
            raise McpToolError(str(exc)) from None

    return reported


def build_server(settings: ToolSettings | None = None, *, kube: KubeClient | None = None) -> FastMCP:
    """The Bosun tool server. ``kube`` (optional) is the server's own client; the caller then owns it."""
    settings = settings or ToolSettings()
    auth = BearerTokens(settings) if (settings.operator_token or settings.external_token) else None
    mcp = FastMCP("bosun-tools", auth=auth, mask_error_details=True)
    own = OwnKube(settings, kube)

    def make_context(spec: ToolSpec) -> ToolContext:
        request = get_context().request_context
        meta: Mapping[str, Any] = (request.meta if request is not None else None) or {}
        token = get_access_token()
        if not spec.safety.read_only and not (token is None or SCOPE_MUTATE in token.scopes):
            raise ToolError(f"{spec.name} is a mutating tool and this client may only call read-only tools")
        trusted = token is None or SCOPE_IMPERSONATE in token.scopes
        identity = parse_identity(meta.get(IDENTITY_META)) if trusted else settings.external_identity
        task = TaskRef.from_meta(meta.get(TASK_META)) if trusted else None
        mode = meta.get(MODE_META, "execute")
        if mode not in ("preview", "execute"):
            raise ToolError(f'_meta "{MODE_META}" must be "preview" or "execute"; got {mode!r}')
        return ToolContext.for_call(
            spec,
            settings,
            own.get(),
            identity=identity,
            preview=mode == "preview",
            task=task,
            trusted=trusted,
        )

    register(mcp, served(settings), make_context, may_mutate)

    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return mcp
