"""A notice as each kind of sink takes it: pure translators, golden-tested (``tests/golden/notify_*.json``).

- ``webhook``: Bosun's own JSON document (``kind: AgentTaskNotification``), for ticket systems, ChatOps
  bots and audit pipelines; signed by the sender (``bosun.notify.signature``).
- ``slack``: a Slack incoming-webhook message in Block Kit, with ``text`` as the fallback shown in
  notifications.
- ``teams``: a Microsoft Teams message carrying one Adaptive Card (the shape both Teams Workflows' "When a
  Teams webhook request is received" and the older incoming webhooks accept).

Chat services refuse what exceeds their limits (Slack: 3,000 characters per section, 150 per header,
2,000 per field, 50 blocks, and about 12,000 characters of blocks in all; Teams: about 28 KB per message,
less in practice), and a refused message is a lost one, so each format shares a fixed budget among the
steps and cuts every text to its room with a visible mark. The whole proposal is always one
``kubectl describe`` away, which every message names.
"""

from __future__ import annotations

import json
from typing import Any

from bosun.api.models import API_VERSION, one_line
from bosun.notify.notice import Notice, StepNotice

WEBHOOK_KIND = "AgentTaskNotification"

SLACK_HEADER = 150
SLACK_FIELD = 2000
SLACK_SECTION = 3000
SLACK_STEPS_BUDGET = 7000
"""Characters of all steps' sections together: with the other blocks, a message stays under the ~12,000
characters of blocks Slack accepts whatever the number of steps (at most 20)."""
CHAT_LINE = 300
"""Characters of a step's arguments, and of its preview, in a chat message; less when many steps share the
budget (a quarter of a step's room each, the rest for its diff)."""
CHAT_SUMMARY = 1000
CHAT_MESSAGE = 1000
MIN_DIFF_ROOM = 80
"""Below this many characters a diff says nothing useful; the message points to the task instead."""

TEAMS_STEPS_BUDGET = 4000
"""Characters of all steps' code (arguments and diffs). Each code text is sent twice, as a CodeBlock and
as the monospace TextBlock Teams shows where it renders no CodeBlock, so a card stays well under the
~20 KB Teams reliably takes."""
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def render(kind: str, notice: Notice) -> bytes:
    """The request body for a sink of ``kind`` (``bosun.notify.settings.SINK_KINDS``)."""
    translate = {"webhook": webhook_payload, "slack": slack_message, "teams": teams_message}[kind]
    return json.dumps(translate(notice), ensure_ascii=False, separators=(",", ":")).encode()


def _time(notice: Notice) -> str:
    return notice.at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cut(text: str, room: int) -> str:
    """``text`` within ``room`` characters, ending in "…" when cut."""
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def _requester(notice: Notice) -> str:
    if notice.requester is None:
        return "unknown"
    groups = ", ".join(notice.requester.groups)
    return f"{notice.requester.user} ({groups})" if groups else notice.requester.user


def _facts(notice: Notice) -> list[tuple[str, str]]:
    """The few facts every chat message shows first, as (label, value)."""
    facts = [("Requester", _requester(notice))]
    if notice.steps:
        destructive = sum(1 for s in notice.steps if s.destructive)
        facts.append(("Steps", f"{len(notice.steps)} ({destructive} destructive)"))
    else:
        facts.append(("Reason", notice.reason))
    if notice.plan_hash is not None:
        facts += [("Revision", str(notice.revision)), ("Plan hash", notice.plan_hash)]
    return facts


def _flags(step: StepNotice) -> list[str]:
    return [
        flag
        for flag, on in (("destructive", step.destructive), ("cluster-scoped", step.cluster_scoped))
        if on
    ]


def _shares(budget: int, steps: int, most: int) -> tuple[int, int]:
    """Each step's room: its equal part of ``budget`` (at most ``most``), and how much of it its arguments
    and its preview may each take."""
    room = min(most, budget // max(steps, 1))
    return room, min(CHAT_LINE, room // 4)


def _fallback_text(notice: Notice) -> str:
    """One line saying what happened, where a message is shown in brief (a notification, a preview)."""
    if notice.steps:
        steps = f"{len(notice.steps)} step{'s' if len(notice.steps) != 1 else ''}"
        return f"{notice.title} ({steps}, revision {notice.revision}, plan hash {notice.plan_hash})"
    return f"{notice.title}: {notice.reason}"


# ----- generic webhook -------------------------------------------------------------------------------------


def webhook_payload(notice: Notice) -> dict[str, Any]:
    """Bosun's JSON document: camelCase as the Kubernetes API; absent facts are left out."""
    payload: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": WEBHOOK_KIND,
        "event": notice.event,
        "deliveryId": notice.delivery_id,
        "at": _time(notice),
        "task": {"namespace": notice.namespace, "name": notice.name, "uid": notice.uid},
        "requester": notice.requester.wire() if notice.requester else None,
        "reason": notice.reason,
    }
    if notice.message:
        payload["message"] = notice.message
    if notice.plan_hash is not None:
        proposal: dict[str, Any] = {"revision": notice.revision, "hash": notice.plan_hash}
        if notice.summary:
            proposal["summary"] = notice.summary
        if notice.steps:
            proposal["steps"] = [_webhook_step(step) for step in notice.steps]
        payload["proposal"] = proposal
    if notice.approve is not None:
        approve = {"review": notice.approve.review, "grant": notice.approve.grant}
        if notice.approve.annotate:
            approve["annotate"] = notice.approve.annotate
        payload["approve"] = approve
    return payload


def _webhook_step(step: StepNotice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": step.id,
        "tool": step.tool,
        "args": step.args,
        "destructive": step.destructive,
        "clusterScoped": step.cluster_scoped,
    }
    if step.preview:
        out["preview"] = step.preview
    if step.diff:
        out["diff"] = step.diff
    return out


# ----- Slack (Block Kit) -----------------------------------------------------------------------------------


def _mrkdwn(text: str, room: int) -> str:
    """``text`` escaped as Slack requires (``&``, ``<``, ``>``: also what keeps a manifest from mentioning
    ``<!channel>``) and cut to ``room`` characters, never inside an entity."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(escaped) <= room:
        return escaped
    cut = escaped[: max(room - 1, 0)]
    entity = cut.rfind("&")
    if entity >= 0 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut + "…"


def _slack_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _slack_step(step: StepNotice, room: int, line: int) -> dict[str, Any]:
    flags = "".join(f" · _{flag}_" for flag in _flags(step))
    lines = [f"*{step.id}* `{step.tool}`{flags}", f"`{_mrkdwn(one_line(step.args, line), line)}`"]
    if step.preview:
        lines.append(_mrkdwn(one_line(step.preview, line), line))
    text = "\n".join(lines)
    if step.diff:
        fence = "\n``````"
        diff_room = room - len(text) - len(fence)
        if diff_room >= MIN_DIFF_ROOM:
            text += f"\n```{_mrkdwn(step.diff, diff_room)}```"
        else:
            text += "\n_diff left out for length: see the task_"
    return _slack_section(text)


def slack_message(notice: Notice) -> dict[str, Any]:
    fields = [
        {"type": "mrkdwn", "text": _mrkdwn(f"*{label}*\n{value}", SLACK_FIELD)}
        for label, value in _facts(notice)
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": one_line(notice.title, SLACK_HEADER)}},
        {"type": "section", "fields": fields},
    ]
    if notice.summary:
        blocks.append(_slack_section(_mrkdwn(notice.summary, CHAT_SUMMARY)))
    if notice.message:
        blocks.append(_slack_section(_mrkdwn(notice.message, CHAT_MESSAGE)))
    room, line = _shares(SLACK_STEPS_BUDGET, len(notice.steps), SLACK_SECTION)
    blocks += [_slack_step(step, room, line) for step in notice.steps]
    if notice.approve is not None:
        how = notice.approve
        blocks.append({"type": "divider"})
        review = f"*To decide*, review the whole proposal: `{_mrkdwn(how.review, SLACK_FIELD)}`"
        if how.annotate:
            review += f"\nthen approve it:\n```{_mrkdwn(how.annotate, SLACK_FIELD)}```"
        blocks.append(_slack_section(review))
        grant = "or approve (or deny) this exact plan hash with an ApprovalGrant:"
        blocks.append(_slack_section(f"{grant}\n```{_mrkdwn(how.grant, SLACK_SECTION - len(grant) - 8)}```"))
    context = f"AgentTask {notice.namespace}/{notice.name} · uid {notice.uid} · {_time(notice)}"
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(context, SLACK_FIELD)}]}
    )
    return {"text": _cut(_fallback_text(notice), SLACK_SECTION), "blocks": blocks}


# ----- Microsoft Teams (Adaptive Card) ---------------------------------------------------------------------


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _code(text: str) -> dict[str, Any]:
    """A CodeBlock (shown verbatim: no Markdown turns a diff's ``-`` lines into bullets), falling back to
    monospace text in a Teams client that renders no CodeBlock."""
    return {
        "type": "CodeBlock",
        "codeSnippet": text,
        "language": "PlainText",
        "fallback": _text_block(text, fontType="Monospace"),
    }


def _teams_step(step: StepNotice, room: int, line: int) -> list[dict[str, Any]]:
    """Two elements a step (a card's size goes as much to each element's keys as to its text): what it is,
    then its arguments and diff as one piece of code."""
    heading = f"**{step.id}** {step.tool}" + "".join(f" · *{flag}*" for flag in _flags(step))
    if step.preview:
        heading += "\n\n" + _cut(one_line(step.preview, line), line)
    code = _cut(step.args, line)
    if step.diff:
        diff_room = room - len(code)
        code += "\n" + (
            _cut(step.diff, diff_room)
            if diff_room >= MIN_DIFF_ROOM
            else "(diff left out for length: see the task)"
        )
    return [_text_block(heading), _code(code)]


def teams_message(notice: Notice) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text_block(notice.title, style="heading", size="Medium", weight="Bolder"),
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in _facts(notice)]},
    ]
    if notice.summary:
        body.append(_text_block(_cut(notice.summary, CHAT_SUMMARY)))
    if notice.message:
        body.append(_text_block(_cut(notice.message, CHAT_MESSAGE)))
    room, line = _shares(TEAMS_STEPS_BUDGET, len(notice.steps), TEAMS_STEPS_BUDGET)
    for step in notice.steps:
        body += _teams_step(step, room, line)
    if notice.approve is not None:
        how = notice.approve
        body += [_text_block("**To decide**, review the whole proposal:", separator=True), _code(how.review)]
        if how.annotate:
            body += [_text_block("then approve it:"), _code(how.annotate)]
        body += [
            _text_block("or approve (or deny) this exact plan hash with an ApprovalGrant:"),
            _code(how.grant),
        ]
    context = f"AgentTask {notice.namespace}/{notice.name} · uid {notice.uid} · {_time(notice)}"
    body.append(_text_block(context, isSubtle=True, size="Small", separator=True))
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "fallbackText": _fallback_text(notice),
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }
