"""Byte bounds on what a planning pass sends the model and keeps from it.

Every tool result fed back is capped in UTF-8 bytes with a visible ``…[truncated N bytes]`` marker, so are
the model's own text and tool-call arguments when they are sent again, and when a request would exceed
``REQUEST_BUDGET`` the oldest turns are compacted until it fits; a request that cannot fit is never sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bosun_tools.output import cap_text
from bosun_tools.secrets import scrub

TOOL_RESULT_CAP = 6 * 1024
"""UTF-8 bytes of one tool result fed back to the model: read output, dry-run preview, refusal (which may
echo the arguments), load_toolset answer. The tool server caps its output too, but refusals and previews
are written here, and a model can send arguments of any size."""
TOOL_ARGUMENTS_CAP = 4 * 1024
"""UTF-8 bytes of one tool call's arguments sent back to the model in its own assistant message; the call
itself (and its proposal) keeps them whole, only the conversation is cut."""
ASSISTANT_TEXT_CAP = 8 * 1024
"""UTF-8 bytes of the model's own text sent back to it in later turns."""
COMPACTED_CAP = 256
"""UTF-8 bytes an older tool result, assistant text or tool-call arguments keep once compacted."""
REQUEST_BUDGET = 256 * 1024
"""Bytes of JSON (messages and tool definitions) one model request may carry. Caps alone do not bound a
conversation that grows turn by turn, so older turns are compacted, oldest first, to stay within it."""
_TRUNCATED_ARGUMENTS = "truncated_arguments"


def capped(text: str, cap: int) -> str:
    """``text`` cut to ``cap`` UTF-8 bytes, with the truncation marker when it was cut."""
    return cap_text(text, cap)[0]


def tool_reply(content: str, prefix: str = "", suffix: str = "") -> str:
    """One tool message: Bosun's own words around the tool's content, at most ``TOOL_RESULT_CAP`` bytes
    and a truncation marker; the content is what gets cut, so the words about the plan always arrive."""
    room = TOOL_RESULT_CAP - len(prefix.encode()) - len(suffix.encode())
    return prefix + capped(content, room) + suffix


def json_size(value: Any) -> int:
    """Bytes of ``value`` as JSON with non-ASCII escaped: never less than what an HTTP client sends."""
    return len(json.dumps(value))


def _shortened_arguments(arguments: str, cap: int) -> str:
    """Tool-call arguments as sent back to the model: longer than ``cap`` bytes, they become a JSON object
    holding their head and a truncation marker, so providers that parse arguments can still parse them."""
    if len(arguments.encode()) <= cap:
        return arguments
    return json.dumps({_TRUNCATED_ARGUMENTS: capped(arguments, cap)})


def shortened(message: dict[str, Any], text_cap: int, arguments_cap: int) -> dict[str, Any]:
    """A copy of a conversation message with its content and tool-call arguments capped."""
    short = dict(message)
    if isinstance(message.get("content"), str):
        short["content"] = capped(message["content"], text_cap)
    if message.get("tool_calls"):
        short["tool_calls"] = [
            {
                **c,
                "function": {
                    **c["function"],
                    "arguments": _shortened_arguments(c["function"]["arguments"], arguments_cap),
                },
            }
            for c in message["tool_calls"]
        ]
    return short


def echoed(
    message: dict[str, Any], arguments: Mapping[str, dict[str, Any]], values: Mapping[str, str]
) -> dict[str, Any]:
    """The model's tool-call message with the arguments of the calls in ``arguments`` replaced and its text
    scrubbed of ``values``, so that no secret value travels back to the model, not even in its own words."""
    calls = [
        {
            **c,
            "function": {
                **c["function"],
                "arguments": _shortened_arguments(json.dumps(arguments[c["id"]]), TOOL_ARGUMENTS_CAP),
            },
        }
        if c.get("id") in arguments
        else c
        for c in message.get("tool_calls") or []
    ]
    content = message.get("content")
    return {**message, "content": scrub(content, values) if content else content, "tool_calls": calls}


def fit(
    messages: list[dict[str, Any]], compacted: int, budget: int
) -> tuple[list[dict[str, Any]], int] | None:
    """``messages`` with the oldest from index ``compacted`` on compacted until their JSON fits ``budget``
    bytes, and the index of the first message left whole; None when compacting every turn is not enough."""
    size = json_size(messages)
    fitted = list(messages)
    index = compacted
    while size > budget and index < len(fitted):
        smaller = shortened(fitted[index], COMPACTED_CAP, COMPACTED_CAP)
        # The separators between messages do not change, so the size changes by the message's alone.
        size -= json_size(fitted[index]) - json_size(smaller)
        fitted[index] = smaller
        index += 1
    return (fitted, index) if size <= budget else None
