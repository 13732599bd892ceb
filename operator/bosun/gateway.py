"""The operator's side of the tool server: lean schemas for the model, the safety gate, calls with identity.

Everything the operator does to the world goes through here, so the safety rules live here too: whether a
tool mutates is decided by the operator's own registry (``bosun_tools.registry.safety_of``; MCP hints are
informative only and unknown tools count as mutating), and calls that address a namespace outside the task's
``targetNamespaces`` or change cluster-scoped state are refused before anything runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import jsonschema
import yaml
from bosun_tools.kube import Identity
from bosun_tools.registry import safety_of
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

if TYPE_CHECKING:
    from bosun_tools.server import ToolSettings

LOAD_TOOLSET = "load_toolset"
"""Meta-tool the planner answers itself: it widens the tools offered from the next model turn on."""

DEFAULT_TOOLSETS: tuple[str, ...] = ("kubernetes",)
"""The default turn offers read-only Kubernetes tools only; the rest loads on demand."""

TOOLSET_BLURBS = {
    "kubernetes-write": "Kubernetes changes (scale, patch, apply, restart, undo, delete, ...)",
    "helm": "Helm releases",
    "rollouts": "Argo Rollouts",
    "jenkins": "Jenkins jobs and builds",
}

OFF_CLUSTER_TOOLSETS = frozenset({"jenkins"})
"""Toolsets whose mutations act outside the cluster; all others (unknown included) must name a namespace."""

_SCHEMA_NOISE = frozenset(
    {
        "title",
        "additionalProperties",
        "$schema",
        "$defs",
        "definitions",
        "pattern",
        "minLength",
        "maxLength",
        "format",
        "examples",
    }
)
_DESCRIPTION_CAP = 160
_PARAM_DESCRIPTION_CAP = 90


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


def toolset_of(tool: str) -> str:
    """The on-demand group a tool belongs to; Kubernetes splits into read-only and write."""
    safety = safety_of(tool)
    if safety.toolset == "kubernetes" and not safety.read_only:
        return "kubernetes-write"
    return safety.toolset


def _first_sentence(text: str, cap: int) -> str:
    """Models need to know what a tool is for, not its manual: one sentence, bounded."""
    flat = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", flat)
    sentence = match.group(1) if match else flat
    return sentence if len(sentence) <= cap else sentence[: cap - 1].rstrip() + "…"


def lean_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON schema without what costs tokens and tells the model nothing it needs.

    Titles, ``additionalProperties``, string patterns and lengths go (arguments are still validated against
    the full schema before anything runs, and errors are fed back); ``anyOf [T, null]`` becomes ``T``;
    ``$ref`` is inlined; null defaults go; descriptions keep their first sentence.
    """
    defs: Mapping[str, Any] = schema.get("$defs", schema.get("definitions", {}))

    def resolve(node: Mapping[str, Any], seen: frozenset[str]) -> Mapping[str, Any]:
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        name = ref.rsplit("/", 1)[-1]
        if name in seen or name not in defs:
            return {k: v for k, v in node.items() if k != "$ref"}
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return resolve(merged, seen | {name})

    def walk(value: Any, seen: frozenset[str]) -> Any:
        if isinstance(value, list):
            return [walk(item, seen) for item in value]
        if not isinstance(value, Mapping):
            return value
        node = resolve(value, seen)
        options = node.get("anyOf")
        if isinstance(options, list):
            concrete = [o for o in options if o != {"type": "null"}]
            if len(concrete) == 1 and len(options) == 2:
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**resolve(concrete[0], seen), **rest}
        out: dict[str, Any] = {}
        for key, item in node.items():
            if key in _SCHEMA_NOISE or (key == "default" and item is None):
                continue
            if key == "description" and isinstance(item, str):
                out[key] = _first_sentence(item, _PARAM_DESCRIPTION_CAP)
            elif key == "properties" and isinstance(item, Mapping):
                out[key] = {name: walk(sub, seen) for name, sub in item.items()}
            else:
                out[key] = walk(item, seen)
        return out

    lean: dict[str, Any] = walk(schema, frozenset())
    lean.setdefault("type", "object")
    lean.setdefault("properties", {})
    if not lean.get("required"):
        lean.pop("required", None)
    return lean


def _namespaces_in(args: Mapping[str, Any]) -> tuple[set[str], bool]:
    """Every namespace the arguments address (including inside manifests), and whether any was found."""
    found: set[str] = set()

    def visit(value: Any, key: str | None) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k == "namespace" and isinstance(v, str) and v:
                    found.add(v)
                elif k == "metadata" and isinstance(v, Mapping) and isinstance(v.get("namespace"), str):
                    found.add(v["namespace"])
                    visit({kk: vv for kk, vv in v.items() if kk != "namespace"}, k)
                else:
                    visit(v, k)
        elif isinstance(value, list):
            for item in value:
                visit(item, key)
        elif isinstance(value, str) and key is not None and key.startswith("manifest"):
            try:
                documents = list(yaml.safe_load_all(value))
            except yaml.YAMLError:
                return
            for document in documents:
                visit(document, None)

    visit(args, None)
    return found, bool(found)


def _identity_meta(identity: Identity, preview: bool) -> dict[str, Any]:
    return {
        "bosun.dev/identity": {"user": identity.user, "groups": list(identity.groups)},
        "bosun.dev/mode": "preview" if preview else "execute",
    }


class ToolGateway:
    """Operator-side access to the tool server: schemas for the model, the safety gate, calls as someone."""

    def __init__(
        self, client: Client[Any], where: str, *, url: str | None = None, token: str | None = None
    ) -> None:
        self._client = client
        self._where = where
        self._url = url
        self._token = token
        self._session_stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._tools: dict[str, dict[str, Any]] | None = None
        self._descriptions: dict[str, str] = {}

    @classmethod
    def in_process(cls, settings: ToolSettings | None = None) -> ToolGateway:
        from bosun_tools.server import build_server

        return cls(Client(build_server(settings)), "the in-process tool server")

    @classmethod
    def over_http(cls, url: str, token: str) -> ToolGateway:
        return cls(Client(url, auth=token), f"the tool server at {url}", url=url, token=token)

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
            self._tools = None
            stack, self._session_stack = self._session_stack, None
            if stack is not None:
                # The session is already broken or being shut down; closing it is best effort.
                with contextlib.suppress(Exception):
                    await stack.aclose()

    async def input_schemas(self) -> dict[str, dict[str, Any]]:
        """Full input schemas by tool name, as served (used to validate arguments before anything runs)."""
        if self._tools is None:
            client = await self._session()
            try:
                listed = await client.list_tools()
            except (RuntimeError, MCPError, OSError) as exc:
                await self._drop_session()
                raise ToolServerUnavailable(f"{self._where} did not list its tools: {exc}") from exc
            self._tools = {tool.name: dict(tool.input_schema) for tool in listed}
            self._descriptions = {tool.name: tool.description or "" for tool in listed}
        return self._tools

    async def toolsets(self) -> list[str]:
        """The on-demand groups the server actually offers, default first."""
        groups = {toolset_of(name) for name in await self.input_schemas()}
        return sorted(groups, key=lambda g: (g not in DEFAULT_TOOLSETS, g))

    async def openai_tools(self, toolsets: Iterable[str]) -> list[dict[str, Any]]:
        """Lean OpenAI function definitions of the ``toolsets``, plus ``load_toolset`` for the rest."""
        wanted = set(toolsets)
        schemas = await self.input_schemas()
        definitions = [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": _first_sentence(self._descriptions.get(name, name), _DESCRIPTION_CAP),
                    "parameters": lean_schema(schema),
                },
            }
            for name, schema in sorted(schemas.items())
            if toolset_of(name) in wanted
        ]
        more = [g for g in await self.toolsets() if g not in wanted]
        if more:
            offered = "; ".join(f"{g}: {TOOLSET_BLURBS.get(g, g)}" for g in more)
            definitions.append(
                {
                    "type": "function",
                    "function": {
                        "name": LOAD_TOOLSET,
                        "description": f"Offer more tools from your next turn. {offered}.",
                        "parameters": {
                            "type": "object",
                            "properties": {"toolset": {"type": "string", "enum": more}},
                            "required": ["toolset"],
                        },
                    },
                }
            )
        return definitions

    def is_read_only(self, tool: str) -> bool:
        return safety_of(tool).read_only

    def scope_error(self, tool: str, args: Mapping[str, Any], target_namespaces: list[str]) -> str | None:
        """Why this call may not run for a task scoped to ``target_namespaces`` (None: it may)."""
        namespaces, named = _namespaces_in(args)
        outside = sorted(namespaces - set(target_namespaces))
        allowed = ", ".join(target_namespaces) or "(none)"
        if outside:
            return (
                f"{tool} refused: namespace {', '.join(outside)} is outside this task's targetNamespaces "
                f"[{allowed}]; stay within them, or create a task whose spec.targetNamespaces includes it"
            )
        safety = safety_of(tool)
        if not safety.read_only and not named and safety.toolset not in OFF_CLUSTER_TOOLSETS:
            return (
                f"{tool} refused: it would change cluster-scoped state (no namespace argument), and a task "
                f"may only change its targetNamespaces [{allowed}]; an administrator has to do this by hand"
            )
        return None

    async def validation_error(self, tool: str, args: Any) -> str | None:
        """Why ``args`` are not a valid call of ``tool`` (None: they are), in words a model can act on."""
        schemas = await self.input_schemas()
        if tool not in schemas:
            known = ", ".join(sorted(schemas))
            return f"unknown tool {tool!r}; the tool server offers: {known}"
        if not isinstance(args, dict):
            return f"arguments of {tool} must be a JSON object, got {type(args).__name__}"
        # An argument the tool does not declare would be dropped silently by the server, yet shown in the
        # proposal a human approves; refuse it instead.
        strict = {"additionalProperties": False, **schemas[tool]}
        validator = jsonschema.Draft202012Validator(strict)
        problems = sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path))
        if not problems:
            return None
        lines = []
        for problem in problems[:5]:
            where = ".".join(str(p) for p in problem.absolute_path) or "(arguments)"
            lines.append(f"{where}: {problem.message}")
        return f"invalid arguments for {tool}: " + "; ".join(lines)

    async def call(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        identity: Identity,
        preview: bool = False,
        timeout: float = 60,  # noqa: ASYNC109 - handed to the MCP request, which enforces it (contract 4)
    ) -> ToolCallOutcome:
        """Run one tool as ``identity``; tool failures come back as ``ok=False``, never as exceptions."""
        client = await self._session()
        try:
            result = await client.call_tool_mcp(
                tool, args, timeout=timeout, meta=_identity_meta(identity, preview)
            )
        except MCPError as exc:
            if "timed out" in str(exc):
                message = f"{tool} did not answer within {timeout:g}s"
                return ToolCallOutcome(False, message, None, None, message, False)
            await self._drop_session()
            raise ToolServerUnavailable(f"{self._where} failed while running {tool}: {exc}") from exc
        except (RuntimeError, OSError) as exc:
            await self._drop_session()
            raise ToolServerUnavailable(f"{self._where} failed while running {tool}: {exc}") from exc
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        if result.is_error:
            message = "\n".join(texts) or f"{tool} failed without a message"
            return ToolCallOutcome(False, message, None, None, message, False)
        structured = result.structured_content or {}
        if set(structured) == {"result"} and isinstance(structured["result"], dict):
            structured = structured["result"]
        text = structured.get("text")
        if not isinstance(text, str):
            text = "\n".join(texts) if texts else json.dumps(structured)
        data = structured.get("data")
        diff = structured.get("diff")
        return ToolCallOutcome(
            ok=True,
            text=text,
            diff=diff if isinstance(diff, str) else None,
            data=data if isinstance(data, dict) else None,
            error=None,
            truncated=bool(structured.get("truncated", False)),
        )

    async def aclose(self) -> None:
        await self._drop_session()
