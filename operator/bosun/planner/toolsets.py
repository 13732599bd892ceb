"""The tool definitions the model sees: lean schemas, grouped in toolsets that load on demand.

Every model turn pays for its tool definitions again, so they are kept lean: a tool's description is its
first sentence, its schema loses what tells the model nothing it needs (the full schema still validates the
arguments before anything runs, see ``ToolGateway.validation_error``), and only the Kubernetes reads most
requests start with are offered at first, with the ``load_toolset`` meta-tool to widen the offer from the
next turn on. A toolset, as the model sees it, is a group of the registry (``bosun_tools.registry.group_of``):
the tools of one kind of request, few enough that a turn with any one toolset loaded stays within
``TURN_BUDGET``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bosun_tools.registry import group_of

if TYPE_CHECKING:
    from bosun.ports.gateway import ToolGateway

LOAD_TOOLSET = "load_toolset"
"""Meta-tool the planner answers itself: it widens the tools offered from the next model turn on."""

DEFAULT_TOOLSETS: tuple[str, ...] = ("kubernetes",)
"""The default turn offers the Kubernetes reads most requests start with; the rest loads on demand."""

TOOLSET_BLURBS = {
    "workloads": "scale, set image, restart",
    "rollback": "rollout status, history, undo",
    "objects": "apply, patch, delete, api resources",
    "cluster": "cordon, drain, top, can-i",
    "pods": "run, exec, job from cronjob",
    "helm": "releases, charts, rollback, uninstall",
    "helm-install": "template, install, upgrade",
    "rollouts": "Argo: status, promote, abort, retry",
    "rollouts-update": "pause, resume, set image, restart, undo",
    "jenkins": "jobs, builds, trigger, stop",
}
"""What loading each toolset offers, as ``load_toolset`` describes it (a unit test holds every toolset of
the registry to a blurb)."""

TURN_BUDGET = 3_000
"""JSON characters of tool definitions one model turn may carry: the default turn, and the default turn
with any one toolset loaded (a unit test holds every configuration to it)."""

_SCHEMA_NOISE = frozenset(
    {
        "title",
        "additionalProperties",
        "$schema",
        "$defs",
        "definitions",
        "pattern",
        "patternProperties",
        "propertyNames",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "format",
        "examples",
        "default",
    }
)
_DESCRIPTION_CAP = 160
_PARAM_DESCRIPTION_CAP = 90


def _first_sentence(text: str, cap: int) -> str:
    """Models need to know what a tool is for, not its manual: one sentence, bounded."""
    flat = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s+[A-Z]|$)", flat)
    sentence = match.group(1) if match else flat
    return sentence if len(sentence) <= cap else sentence[: cap - 1].rstrip() + "…"


def lean_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON schema without what costs tokens and tells the model nothing it needs.

    Titles, ``additionalProperties``, defaults, string patterns and lengths, number and list bounds go
    (arguments are still validated against the full schema before anything runs, and errors are fed back);
    ``anyOf [T, null]`` becomes ``T``; ``$ref`` is inlined; descriptions keep their first sentence.
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
            if key in _SCHEMA_NOISE:
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
    """The toolsets the tool server actually offers, default first."""
    groups = {group_of(name) for name in await gateway.input_schemas()}
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
        if group_of(name) in wanted
    ]
    more = [g for g in await offered_toolsets(gateway) if g not in wanted]
    if more:
        offered = "; ".join(f"{g} ({TOOLSET_BLURBS.get(g, g)})" for g in more)
        definitions.append(
            {
                "type": "function",
                "function": {
                    "name": LOAD_TOOLSET,
                    "description": f"Offer more tools from your next turn: {offered}.",
                    "parameters": {
                        "type": "object",
                        "properties": {"toolset": {"type": "string"}},
                        "required": ["toolset"],
                    },
                },
            }
        )
    return definitions
