"""The tool definitions the model sees: lean schemas, grouped in toolsets that load on demand.

Every model turn pays for its tool definitions again, so they are kept lean: a tool's description is its
first sentence, its schema loses what tells the model nothing it needs (the full schema still validates the
arguments before anything runs, see ``ToolGateway.validation_error``), and only the read-only Kubernetes
tools are offered at first, with the ``load_toolset`` meta-tool to widen the offer from the next turn on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bosun_tools.registry import safety_of

if TYPE_CHECKING:
    from bosun.ports.gateway import ToolGateway

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


async def offered_toolsets(gateway: ToolGateway) -> list[str]:
    """The on-demand groups the tool server actually offers, default first."""
    groups = {toolset_of(name) for name in await gateway.input_schemas()}
    return sorted(groups, key=lambda g: (g not in DEFAULT_TOOLSETS, g))


async def openai_tools(gateway: ToolGateway, toolsets: Iterable[str]) -> list[dict[str, Any]]:
    """Lean OpenAI function definitions of the ``toolsets``, plus ``load_toolset`` for the rest."""
    wanted = set(toolsets)
    schemas = await gateway.input_schemas()
    descriptions = await gateway.descriptions()
    definitions = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": _first_sentence(descriptions[name], _DESCRIPTION_CAP),
                "parameters": lean_schema(schema),
            },
        }
        for name, schema in sorted(schemas.items())
        if toolset_of(name) in wanted
    ]
    more = [g for g in await offered_toolsets(gateway) if g not in wanted]
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
