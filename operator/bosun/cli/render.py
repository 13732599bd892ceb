"""What ``kubectl bosun`` prints, as pure functions of the objects the API server returned.

Nothing here reads a clock, a terminal or the network: the moment, the time zone and whether to colour are
arguments, so every rendering is a golden file (``tests/golden/kubectl_bosun_*.txt``) and a change to what
a reviewer sees shows in review. The proposal is shown exactly: each step's tool and arguments as they will
run, its dry-run preview and diff, and the whole hash an approval quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

import yaml
from bosun_tools.output import age, table

from bosun.api.models import (
    TERMINAL_PHASES,
    AgentTaskStatus,
    ApprovalGrantStatus,
    Condition,
    Decision,
    Proposal,
    ProposedStep,
    UserRef,
    canonical_json,
    one_line,
)
from bosun.core.grants import parse_timestamp
from bosun.core.identity import requester_of

AWAITING = "AwaitingApproval"
INDENT = "    "
ARGS_COLUMN = 60
"""Characters of a call's arguments (and result) in the history table: enough to tell calls apart; the
whole record is in ``kubectl get agenttask NAME -o yaml``."""


@dataclass(frozen=True)
class Style:
    """ANSI colour, or none at all: see ``wants_colour`` for when."""

    color: bool

    def _paint(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color and text else text

    def bold(self, text: str) -> str:
        return self._paint("1", text)

    def dim(self, text: str) -> str:
        return self._paint("2", text)

    def red(self, text: str) -> str:
        return self._paint("31", text)

    def green(self, text: str) -> str:
        return self._paint("32", text)

    def yellow(self, text: str) -> str:
        return self._paint("33", text)

    def cyan(self, text: str) -> str:
        return self._paint("36", text)


def wants_colour(is_terminal: bool, environ: Mapping[str, str]) -> bool:
    """Colour only for a person at a terminal: never into a pipe or file, never with ``NO_COLOR`` set to
    anything (no-color.org) or on a ``TERM=dumb`` terminal."""
    return is_terminal and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


def phase(text: str | None, style: Style) -> str:
    """A phase in the colour of what it asks of the reader: green done, yellow someone must decide, red
    ended without doing what was asked."""
    shown = text or "Pending"
    if shown == "Succeeded":
        return style.green(shown)
    if shown == AWAITING:
        return style.yellow(shown)
    if shown in TERMINAL_PHASES:
        return style.red(shown)
    return style.cyan(shown)


def who(user: UserRef | None) -> str:
    """A user with their groups, as admission stamped them."""
    if user is None:
        return "unknown"
    groups = [g for g in user.groups if g != "system:authenticated"]
    return f"{user.user} ({', '.join(groups)})" if groups else user.user


# ----- proposals ---------------------------------------------------------------------------------------


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line strings (manifests, scripts, values) as literal blocks, so a reviewer reads them as the
    tool will receive them rather than as one escaped line."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_ReadableDumper.add_representer(str, _represent_text)


def arguments(args: Mapping[str, Any]) -> list[str]:
    """A call's exact arguments as YAML lines, keys in the order the planner wrote them."""
    text = yaml.dump(
        dict(args), Dumper=_ReadableDumper, sort_keys=False, allow_unicode=True, width=1000
    ).rstrip("\n")
    return text.splitlines()


DiffKind = Literal["file", "hunk", "add", "remove", "same"]


def diff_kind(line: str) -> DiffKind:
    """What a line of a unified diff is: a file header, a hunk header, added, removed or unchanged."""
    if line.startswith(("---", "+++")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "remove"
    return "same"


def diff(text: str, style: Style) -> list[str]:
    """A unified diff with removed lines red, added lines green and hunk headers cyan."""
    paint: dict[DiffKind, Callable[[str], str]] = {
        "file": style.bold,
        "hunk": style.cyan,
        "add": style.green,
        "remove": style.red,
        "same": str,
    }
    return [paint[diff_kind(line)](line) for line in text.splitlines()]


def _block(title: str, lines: Iterable[str]) -> list[str]:
    return [f"{INDENT}{title}:", *(f"{INDENT}  {line}" for line in lines)]


def step(proposed: ProposedStep, style: Style, *, left_out: bool = False) -> list[str]:
    """One proposed call: what runs (tool, arguments), why, and what its dry run said it changes."""
    tags = [
        *(["destructive"] if proposed.destructive else []),
        *(["cluster-scoped"] if proposed.cluster_scoped else []),
    ]
    head = f"{style.bold(proposed.id)}  {proposed.tool}"
    if tags:
        head += "  " + style.red(f"[{', '.join(tags)}]")
    if left_out:
        head += "  " + style.yellow("(left out: recorded as denied, does not run)")
    lines = [head, *_block("args", arguments(proposed.args))]
    if proposed.rationale:
        lines.append(f"{INDENT}why: {proposed.rationale}")
    if proposed.preview:
        lines.extend(_block("preview", proposed.preview.splitlines()))
    if proposed.preview_note:
        lines.append(f"{INDENT}{style.yellow('note')}: {proposed.preview_note}")
    if proposed.diff:
        lines.extend(_block("diff", diff(proposed.diff, style)))
    return lines


def proposal(shown: Proposal, style: Style, *, chosen: Sequence[str] | None = None) -> list[str]:
    """The whole proposal: revision, hash, the planner's summary and every step (``chosen``: the steps an
    approval names; the others are marked left out)."""
    steps = len(shown.steps)
    lines = [
        style.bold(f"Proposal revision {shown.revision}")
        + f" ({steps} step{'s' if steps != 1 else ''}), hash {style.bold(shown.hash)}",
    ]
    if shown.summary:
        lines.append(f"  {shown.summary}")
    for proposed in shown.steps:
        left_out = chosen is not None and proposed.id not in chosen
        lines.append("")
        lines.extend(f"  {line}" for line in step(proposed, style, left_out=left_out))
    return lines


def proposed(namespace: str, name: str, shown: Proposal, style: Style) -> str:
    """A proposal as ``ask`` prints it when it arrives: the proposal, then how to decide it."""
    return "\n".join([*proposal(shown, style), "", *how_to_decide(namespace, name, shown)]) + "\n"


def how_to_decide(namespace: str, name: str, shown: Proposal) -> list[str]:
    """The commands that approve or deny exactly ``shown`` and nothing else."""
    target = f"{name} -n {namespace} --hash {shown.hash}"
    return [
        "An approver decides with:",
        f"  kubectl bosun approve {target}",
        f"  kubectl bosun deny {target}",
    ]


# ----- one task ----------------------------------------------------------------------------------------


def _condition(status: AgentTaskStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def status_of(body: Mapping[str, Any]) -> AgentTaskStatus:
    return AgentTaskStatus.model_validate(body.get("status") or {})


def requester(body: Mapping[str, Any]) -> UserRef | None:
    """Who asked: the operator's record, or admission's stamp before the operator has seen the task."""
    return status_of(body).requester or requester_of(body.get("metadata") or {})


def outcome(status: AgentTaskStatus) -> str:
    """Why a finished task ended as it did: Ready's reason and whole message."""
    ready = _condition(status, "Ready")
    if ready is None:
        return status.message or ""
    return f"{ready.reason}: {ready.message}"


def still_needed(status: AgentTaskStatus) -> str:
    """What a task awaiting approval waits for: the operator's count ("1 of 2 approvals (carol) for revision
    1; 1 more needed: ...") once some approvals are in, else a decision on the revision shown."""
    approved = _condition(status, "Approved")
    if approved is not None and approved.reason == "ApprovalsPending":
        return approved.message
    revision = status.proposal.revision if status.proposal else "?"
    return f"a decision on revision {revision}: an approval as the namespace's policy requires, or a deny"


def _approval_rows(status: AgentTaskStatus, tz: tzinfo) -> list[list[str]]:
    rows = [["GRANT", "BY", "DECISION", "REVISION", "COUNTED", "AT", "WHY"]]
    for record in status.approvals:
        rows.append(
            [
                record.grant,
                record.approver.user if record.approver else "unknown",
                record.decision,
                str(record.revision or "-"),
                "yes" if record.accepted else "no",
                record.at.astimezone(tz).strftime("%H:%M:%S"),
                one_line(record.reason),
            ]
        )
    return rows


def _history_rows(status: AgentTaskStatus) -> list[list[str]]:
    rows = [["CALL", "TOOL", "STATE", "ARGS", "APPROVED BY", "RAN AS", "RESULT"]]
    for record in status.steps:
        approvers = ", ".join(u.user for u in record.approved_by or ()) or "-"
        result = record.error or record.output or ""
        rows.append(
            [
                record.id,
                record.tool,
                record.state,
                one_line(canonical_json(record.args), ARGS_COLUMN),
                approvers if record.mutating else "-",
                record.ran_as.user if record.ran_as else "-",
                one_line(result, ARGS_COLUMN) or "-",
            ]
        )
    return rows


def task(body: Mapping[str, Any], style: Style, *, now: datetime, tz: tzinfo) -> str:
    """``kubectl bosun show``: phase, requester, the proposal with a coloured diff per step, its hash,
    the approvals so far, what is still needed and the approval policy that decides it
    (``status.approvalPolicy``), the history of calls, and how it ended."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    status = status_of(body)
    lines = [
        style.bold(f"AgentTask {namespace}/{name}"),
        f"  Phase:      {phase(status.phase, style)}" + (f"  {status.message}" if status.message else ""),
        f"  Requester:  {who(requester(body))}",
        f"  Request:    {spec.get('request', '')}",
    ]
    if spec.get("targetNamespaces"):
        lines.append(f"  Targets:    {', '.join(spec['targetNamespaces'])}")
    if spec.get("followUpOf"):
        lines.append(f"  Follows up: {spec['followUpOf']}")
    lines.append(f"  Age:        {age(meta.get('creationTimestamp'), now)}")
    if status.proposal is not None:
        lines += ["", *proposal(status.proposal, style)]
    lines += ["", style.bold("Approvals")]
    if status.approvals:
        lines.extend(f"  {row}" for row in table(_approval_rows(status, tz)).splitlines())
    else:
        lines.append("  none yet")
    if status.phase == AWAITING and status.proposal is not None:
        lines.append(f"  {style.yellow('Still needed')}: {still_needed(status)}")
        if status.approval_policy is not None:
            label = style.red("Policy") if status.approval_policy.problem else "Policy"
            lines.append(f"  {label}: {status.approval_policy.summary}")
        lines += [
            "",
            *how_to_decide(namespace, name, status.proposal),
        ]
    if status.steps:
        lines += ["", style.bold("History")]
        lines.extend(f"  {row}" for row in table(_history_rows(status)).splitlines())
    if status.verification is not None:
        verdict = status.verification
        lines += [
            "",
            style.bold(f"Verification of revision {verdict.revision}: ") + _passed(verdict.passed, style),
        ]
        lines.extend(f"  {_passed(c.passed, style)}  {c.name}: {c.message}" for c in verdict.checks)
        if verdict.judgement:
            lines.append(f"  {verdict.judgement}")
    if status.phase in TERMINAL_PHASES:
        lines += ["", f"{style.bold('Ended')} {ending(body, style)}"]
    return "\n".join(lines) + "\n"


def _passed(passed: bool, style: Style) -> str:
    return style.green("passed") if passed else style.red("failed")


# ----- following a task and deciding ----------------------------------------------------------------------


def created(namespace: str, name: str) -> str:
    return f"agenttask.bosun.dev/{name} created in namespace {namespace}"


def phase_change(body: Mapping[str, Any], style: Style) -> str:
    """One line per phase a followed task reaches."""
    status = status_of(body)
    return f"{phase(status.phase, style)}" + (f"  {status.message}" if status.message else "")


def ending(body: Mapping[str, Any], style: Style) -> str:
    """How a followed task ended, with the reason in full, and its answer or account of what was done
    (``status.summary``) when that says more."""
    status = status_of(body)
    told = outcome(status)
    lines = [f"{phase(status.phase, style)}: {told}"]
    if status.summary and status.summary not in told:
        lines.append(status.summary)
    return "\n".join(lines)


def decision_preview(
    body: Mapping[str, Any], decision: Decision, chosen: Sequence[str] | None, style: Style
) -> str:
    """Exactly what a grant about to be created decides: the task, who asked, the steps that will run (or
    that none will), and the hash it quotes."""
    meta = body.get("metadata") or {}
    status = status_of(body)
    shown = status.proposal
    assert shown is not None, "a decision is previewed only for a task with a proposal"
    what = style.bold("APPROVE" if decision == "Approve" else "DENY")
    lines = [
        f"You are about to {what} proposal revision {shown.revision} of agenttask "
        f"{meta.get('namespace')}/{meta.get('name')}, requested by {who(requester(body))}:",
        "",
        *proposal(shown, style, chosen=chosen if decision == "Approve" else None),
        "",
    ]
    if decision == "Approve":
        runs = [s.id for s in shown.steps if chosen is None or s.id in chosen]
        lines.append(f"Approving lets {', '.join(runs)} run once every approval the policy requires is in.")
    else:
        lines.append("Denying ends the task Denied: none of its steps run.")
    lines.append(
        f"The grant quotes hash {shown.hash}: if the proposal changes before the operator judges it, "
        "it decides nothing."
    )
    return "\n".join(lines) + "\n"


def confirm_question(decision: Decision, revision: int) -> str:
    return f"{'Approve' if decision == 'Approve' else 'Deny'} revision {revision}? [y/N] "


def stale(namespace: str, name: str, reviewed: str, body: Mapping[str, Any]) -> str:
    """Refusal of a decision about a hash the task no longer proposes."""
    shown = status_of(body).proposal
    now_shown = (
        f"now proposes revision {shown.revision} ({shown.hash})" if shown else "has no proposal any more"
    )
    return (
        f"agenttask {namespace}/{name} {now_shown}, not the {reviewed} you reviewed, so nothing was "
        f"decided: review it again with `kubectl bosun show {name} -n {namespace}`"
    )


def grant_outcome(grant: Mapping[str, Any], style: Style) -> str:
    """What the operator made of a grant: Accepted, Rejected or Superseded, with its reason and message."""
    meta = grant.get("metadata") or {}
    status = ApprovalGrantStatus.model_validate(grant.get("status") or {})
    state = status.state or "Pending"
    painted = style.green(state) if state == "Accepted" else style.red(state)
    return f"approvalgrant.bosun.dev/{meta.get('name')} {painted} ({status.reason}): {status.message or ''}"


# ----- many tasks --------------------------------------------------------------------------------------


def _created(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("creationTimestamp") or "")


def pending_first(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Tasks awaiting approval first (someone must act), then the rest; each group oldest first, as
    ``kubectl get --sort-by=.metadata.creationTimestamp`` orders them."""
    return sorted(items, key=lambda b: (status_of(b).phase != AWAITING, _created(b)))


def task_table(items: Iterable[Mapping[str, Any]], *, namespace: str | None, now: datetime) -> str:
    """``kubectl bosun list``: one row per task, pending approvals first; ``namespace`` None lists every
    namespace (a NAMESPACE column, as ``kubectl get -A`` has)."""
    header = ["NAME", "PHASE", "HASH", "MESSAGE", "REQUESTER", "AGE"]
    rows = [["NAMESPACE", *header] if namespace is None else header]
    for body in pending_first(items):
        meta, status = body.get("metadata") or {}, status_of(body)
        asker = requester(body)
        row = [
            str(meta.get("name", "")),
            status.phase or "Pending",
            status.proposal.short_hash if status.proposal and status.phase == AWAITING else "-",
            status.message or "-",
            asker.user if asker else "-",
            age(meta.get("creationTimestamp"), now),
        ]
        rows.append([str(meta.get("namespace", "")), *row] if namespace is None else row)
    if len(rows) == 1:
        return f"No agenttasks found in namespace {namespace}.\n" if namespace else "No agenttasks found.\n"
    return table(rows) + "\n"


def _object(namespace: str, kind: str, name: str, all_namespaces: bool) -> str:
    return f"{namespace}/{kind}/{name}" if all_namespaces else f"{kind}/{name}"


def timeline_task(
    body: Mapping[str, Any], at: datetime, style: Style, *, tz: tzinfo, all_namespaces: bool, deleted: bool
) -> str:
    """A task's line in ``kubectl bosun watch``: when it was seen in a new phase, and that phase."""
    meta, status = body.get("metadata") or {}, status_of(body)
    what = style.dim("deleted") if deleted else phase(status.phase, style)
    where = _object(str(meta.get("namespace")), "agenttask", str(meta.get("name")), all_namespaces)
    message = "" if deleted or not status.message else f"  {status.message}"
    return f"{at.astimezone(tz):%H:%M:%S}  {where}  {what}{message}"


def timeline_event(event: Mapping[str, Any], style: Style, *, tz: tzinfo, all_namespaces: bool) -> str:
    """An Event about a task or grant in ``kubectl bosun watch``, at the time it happened."""
    involved = event.get("involvedObject") or {}
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
    )
    at = parse_timestamp(stamp)
    when = f"{at.astimezone(tz):%H:%M:%S}" if at else "--:--:--"
    kind = str(involved.get("kind", "")).lower()
    where = _object(str(involved.get("namespace")), kind, str(involved.get("name")), all_namespaces)
    reason = str(event.get("reason", ""))
    painted = style.red(reason) if event.get("type") == "Warning" else style.dim(reason)
    return f"{when}  {where}  {painted}  {one_line(str(event.get('message', '')), 400)}"


# ----- refusals ----------------------------------------------------------------------------------------

_ROLES = {
    ("agenttasks", "create"): "bosun-requester",
    ("approvalgrants", "create"): "bosun-approver",
}
"""The chart's ClusterRole that grants a refused right; reads of either kind come with bosun-viewer."""


def not_allowed(user: str | None, verb: str, resource: str, namespace: str | None, server: str) -> str:
    """A Forbidden answer told as who may not do what where, and what to ask an admin for."""
    plural = resource.split(".", 1)[0]
    role = _ROLES.get(
        (plural, verb), "bosun-viewer" if plural in ("agenttasks", "approvalgrants") else "view"
    )
    subject = user or "you"
    where = f"in namespace {namespace}" if namespace else "across all namespaces (-A)"
    scope = f"-n {namespace} create rolebinding" if namespace else "create clusterrolebinding"
    binding = f"kubectl {scope} {subject}-{role} --clusterrole={role} --user={subject}"
    return (
        f"Forbidden: {subject} may not {verb} {resource} {where}.\n"
        f"Ask an admin of {namespace or 'the cluster'} to grant it; with the roles the Bosun chart installs "
        f"(release bosun):\n  {binding}\n"
        f"The API server said: {server}\n"
    )


def not_found(kind: str, name: str, namespace: str) -> str:
    return (
        f"{kind} {namespace}/{name} not found: list the tasks with `kubectl bosun list -n {namespace}` "
        "(or -A for every namespace)"
    )
