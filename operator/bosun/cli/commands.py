"""The commands of ``kubectl bosun``: each reads and writes through a ``Connection`` as the person running
it and prints what ``render`` makes of the objects. Each returns its exit status.

Following is done with watches (``Connection.changes``), never by polling: a task's phases and a grant's
decision are printed as the API server reports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TextIO

from bosun.api.models import TERMINAL_PHASES, Decision
from bosun.cli import render
from bosun.cli.cluster import AGENT_TASKS, APPROVAL_GRANTS, EVENTS, Connection, NotAllowed, UsageError
from bosun.cli.objects import grant_object, task_object

OK = 0
REFUSED = 1
"""The task ended without doing what was asked, a grant decided nothing, or the person said no."""
BAD_ENDS = TERMINAL_PHASES - {"Succeeded"}


@dataclass
class Console:
    """Where a command writes, how it colours, and where it reads a confirmation from."""

    style: render.Style
    tz: tzinfo
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    answers: TextIO = field(default_factory=lambda: sys.stdin)

    def print(self, text: str = "") -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.err.write(text if text.endswith("\n") else text + "\n")
        self.err.flush()

    def confirm(self, question: str) -> bool:
        """Ask on the output and read one line: only y or yes agrees (no answer at all is a no)."""
        self.out.write(question)
        self.out.flush()
        answer = self.answers.readline()
        if not self.answers.isatty():  # nobody typed Enter, so end the question's line
            self.out.write("\n")
        return answer.strip().lower() in ("y", "yes")


def _now() -> datetime:
    return datetime.now(UTC)


# ----- ask ---------------------------------------------------------------------------------------------


async def ask(
    conn: Connection,
    console: Console,
    request: str,
    targets: Sequence[str],
    wait: bool,
    *,
    model: str | None = None,
    follow_up_of: str | None = None,
) -> int:
    """Create a task for ``request`` (with ``model``: planned with that model; with ``follow_up_of``: the
    next turn of that finished task) and follow it until its proposal arrives (printed whole, with how to
    decide it) or it ends. With ``wait`` the exit status is that outcome; without, it says the task was
    created."""
    task = task_object(request, conn.namespace, targets, model=model, follow_up_of=follow_up_of)
    created = await conn.create(AGENT_TASKS, task)
    name = created["metadata"]["name"]
    console.print(render.created(conn.namespace, name))
    console.print(console.style.dim("following it (Ctrl-C stops following; the task goes on)"))
    last = await follow_task(conn, console, name)
    if not wait:
        return OK
    return REFUSED if last is None or render.status_of(last).phase in BAD_ENDS else OK


async def follow_task(conn: Connection, console: Console, name: str) -> dict[str, Any] | None:
    """Print each phase the task reaches until it awaits approval (then the proposal) or ends (then why);
    the last version seen, or None when the task was deleted meanwhile."""
    printed: tuple[str | None, int | None] | None = None
    async with contextlib.aclosing(conn.changes(AGENT_TASKS, name=name)) as changes:
        async for kind, body in changes:
            if kind == "DELETED":
                console.error(f"agenttask {conn.namespace}/{name} was deleted")
                return None
            status = render.status_of(body)
            seen = (status.phase, status.proposal.revision if status.proposal else None)
            if status.phase is None or seen == printed:
                continue
            printed = seen
            if status.phase == render.AWAITING and status.proposal is not None:
                console.print(render.phase_change(body, console.style))
                console.print()
                console.print(render.proposed(conn.namespace, name, status.proposal, console.style))
                return body
            if status.phase in TERMINAL_PHASES:
                console.print(render.ending(body, console.style))
                return body
            console.print(render.phase_change(body, console.style))
    raise AssertionError("a watch of changes never ends by itself")


# ----- show and list -------------------------------------------------------------------------------------


async def show(conn: Connection, console: Console, name: str) -> int:
    body = await conn.get(AGENT_TASKS, name)
    console.print(render.task(body, console.style, now=_now(), tz=console.tz))
    return OK


async def list_tasks(conn: Connection, console: Console, all_namespaces: bool) -> int:
    listing = await conn.list(AGENT_TASKS, all_namespaces=all_namespaces)
    namespace = None if all_namespaces else conn.namespace
    console.print(render.task_table(listing.get("items", []), namespace=namespace, now=_now()))
    return OK


# ----- approve and deny --------------------------------------------------------------------------------


async def decide(
    conn: Connection,
    console: Console,
    name: str,
    decision: Decision,
    *,
    steps: Sequence[str] | None,
    reason: str | None,
    reviewed: str | None,
    yes: bool,
) -> int:
    """Show exactly what the decision is about, ask (unless ``yes``), then create a grant quoting the hash
    that was shown and print what the operator made of it. ``reviewed``: the hash the person reviewed
    earlier (``show``); a task that proposes anything else is not decided."""
    task = await conn.get(AGENT_TASKS, name)
    status = render.status_of(task)
    shown = status.proposal
    if status.phase != render.AWAITING or shown is None:
        console.error(
            f"agenttask {conn.namespace}/{name} is {status.phase or 'Pending'}: no proposal awaits a "
            f"decision, so nothing was decided; see `kubectl bosun show {name} -n {conn.namespace}`"
        )
        return REFUSED
    if reviewed is not None and reviewed != shown.hash:
        console.error(render.stale(conn.namespace, name, reviewed, task))
        return REFUSED
    ids = [s.id for s in shown.steps]
    unknown = [s for s in steps or () if s not in ids]
    if unknown:
        raise UsageError(
            f"--steps {','.join(unknown)}: not in proposal revision {shown.revision} of agenttask "
            f"{conn.namespace}/{name}, whose steps are {', '.join(ids)}"
        )
    console.print(render.decision_preview(task, decision, steps, console.style))
    if not yes and not console.confirm(render.confirm_question(decision, shown.revision)):
        console.print("Nothing was decided (answer y to decide, or pass --yes).")
        return REFUSED
    grant = await conn.create(APPROVAL_GRANTS, grant_object(task, decision, shown.hash, steps, reason))
    console.print(
        f"approvalgrant.bosun.dev/{grant['metadata']['name']} created; waiting for the operator's verdict"
    )
    verdict = await grant_verdict(conn, grant["metadata"]["name"])
    if verdict is None:
        console.error(
            f"approvalgrant {conn.namespace}/{grant['metadata']['name']} was deleted before it was judged"
        )
        return REFUSED
    console.print(render.grant_outcome(verdict, console.style))
    return OK if (verdict.get("status") or {}).get("state") == "Accepted" else REFUSED


async def grant_verdict(conn: Connection, grant: str) -> dict[str, Any] | None:
    """The grant once the operator has judged it (its status has a state); None if it was deleted first."""
    async with contextlib.aclosing(conn.changes(APPROVAL_GRANTS, name=grant)) as changes:
        async for kind, body in changes:
            if kind == "DELETED":
                return None
            if (body.get("status") or {}).get("state"):
                return body
    raise AssertionError("a watch of changes never ends by itself")


# ----- watch -------------------------------------------------------------------------------------------


async def watch(conn: Connection, console: Console, all_namespaces: bool) -> int:
    """A live timeline until interrupted: every task as it is now, then each phase a task reaches, and
    every new Event about tasks and grants (when the person may read Events; otherwise it says so)."""
    try:
        async with asyncio.TaskGroup() as both:
            both.create_task(_task_timeline(conn, console, all_namespaces))
            both.create_task(_event_timeline(conn, console, all_namespaces))
    except ExceptionGroup as failed:  # one timeline failed (and the other was stopped): say why
        raise failed.exceptions[0] from None
    return OK


async def _task_timeline(conn: Connection, console: Console, all_namespaces: bool) -> None:
    shown: dict[str, tuple[str | None, str | None]] = {}
    async for kind, body in conn.changes(AGENT_TASKS, all_namespaces=all_namespaces):
        uid = str(body["metadata"].get("uid"))
        status = render.status_of(body)
        seen = (status.phase, status.message)
        if kind == "DELETED":
            shown.pop(uid, None)
        elif shown.get(uid) == seen:
            continue
        else:
            shown[uid] = seen
        line = render.timeline_task(
            body,
            _now(),
            console.style,
            tz=console.tz,
            all_namespaces=all_namespaces,
            deleted=kind == "DELETED",
        )
        console.print(line)


async def _event_timeline(conn: Connection, console: Console, all_namespaces: bool) -> None:
    selector = f"involvedObject.apiVersion={AGENT_TASKS.api_version}"
    try:
        async for kind, event in conn.changes(
            EVENTS, all_namespaces=all_namespaces, field_selector=selector, current=False
        ):
            if kind == "ADDED":
                console.print(
                    render.timeline_event(event, console.style, tz=console.tz, all_namespaces=all_namespaces)
                )
    except NotAllowed as refused:
        where = f"namespace {refused.namespace}" if refused.namespace else "all namespaces"
        console.print(
            console.style.dim(
                f"(no Events: you may not {refused.verb} events in {where}; showing task phases only)"
            )
        )
