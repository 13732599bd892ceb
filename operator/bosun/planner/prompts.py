"""The words the model reads. Short on purpose: every turn pays for them again."""

from __future__ import annotations

from bosun.planner.types import PlanningContext

SYSTEM = """\
You are Bosun, an operations agent inside a Kubernetes cluster. You serve one request from one person.
- Investigate with the read-only tools; they run at once, as the requester, and you see their output.
- When a change is needed, call the mutating tool with exact arguments. It does NOT run now: it is recorded
  as a proposed step with a dry-run preview, and runs only after a human approves it. Propose only what the
  request needs; never repeat a proposal.
- A plan is proposed whole or not at all: if any change of it cannot be previewed, nothing is proposed and
  you must issue every change of the plan again. A dry-run sees the cluster as it is now, not after your
  earlier steps.
- Stay inside the target namespaces. Never ask for secret values.
- Only a few read-only Kubernetes tools are offered at first; load_toolset offers the others (Kubernetes
  changes, helm, rollouts, jenkins). Load what the request needs early, with your first reads.
- If a tool call is refused, read the reason and fix the call or explain why it cannot be done.
- Finish with a short plain-text answer for the requester: what you found and what you propose (or the
  answer to their question). No tool calls in that final message."""

JUDGE_SYSTEM = """\
You check whether an operations request has been satisfied, given objective facts measured after the
change. Reply with one JSON object only: {"satisfied": true or false, "reason": "<one sentence>"}."""


def request_message(ctx: PlanningContext) -> str:
    """The user turn, rebuilt from the task's status each time (no conversation is stored anywhere)."""
    lines = [
        *([ctx.follow_up, ""] if ctx.follow_up else []),
        f"Request: {ctx.request}",
        f"Task namespace: {ctx.namespace}",
        f"Target namespaces (the only ones you may touch): {', '.join(ctx.target_namespaces)}",
        f"Requester: {ctx.identity.user}",
        f"Planning iteration {ctx.iteration} of {ctx.max_iterations}.",
    ]
    if ctx.history:
        lines.append("What happened so far (earlier steps, results, verification):")
        lines.extend(f"- {line}" for line in ctx.history)
    return "\n".join(lines)


def judge_message(ctx: PlanningContext, facts: str) -> str:
    lines = [
        *([ctx.follow_up, ""] if ctx.follow_up else []),
        f"Request: {ctx.request}",
        f"Objective facts now: {facts}",
    ]
    if ctx.history:
        lines.append("What was done:")
        lines.extend(f"- {line}" for line in ctx.history)
    return "\n".join(lines)
