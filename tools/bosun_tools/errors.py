"""The one error a tool raises on purpose.

A tool refuses or fails with ``ToolError`` and a message for whoever called it (a model, a person
reading a task's status): the message is shown as it is, so it names the object and what to do next and
never carries a secret value. Whoever serves the tools passes it on as the call's error (the MCP server,
``bosun_tools.server``; calls in the operator's own process, ``bosun_tools.local``); anything else a tool
raises is reported only as "Error calling tool", its details logged, never shown. Defined here rather
than taken from FastMCP so that the tools, and a process calling them directly, do not load an MCP stack.
"""

from __future__ import annotations


class ToolError(Exception):
    """A refusal or failure of a tool call, in words its caller may see."""
