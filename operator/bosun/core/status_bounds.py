"""How a task's status stays small enough for etcd whatever happens: a pure decision about what of the
history to keep, applied before every status write."""

from __future__ import annotations

from bosun.api.models import (
    MAX_APPROVALS,
    MAX_HISTORY,
    STATUS_BUDGET,
    AgentTaskStatus,
    StepRecord,
    canonical_json,
)


def status_size(status: AgentTaskStatus) -> int:
    return len(canonical_json(status.wire()).encode())


def bound_status(status: AgentTaskStatus, budget: int = STATUS_BUDGET) -> AgentTaskStatus:
    """Keep the status within ``budget`` bytes whatever happened: the history is a ring of ``MAX_HISTORY``
    entries, and when that is still too big the oldest finished entries lose their output and arguments
    (marked) before they are dropped. Steps of the current proposal are never dropped: the executor needs
    their states to never run a call twice."""
    current = status.proposal.revision if status.proposal else None

    def droppable(record: StepRecord) -> bool:
        return record.revision != current or record.state in ("Succeeded", "Failed", "Denied", "Skipped")

    steps = list(status.steps)
    while len(steps) > MAX_HISTORY:
        index = next((i for i, r in enumerate(steps) if droppable(r)), 0)
        del steps[index]
    approvals = list(status.approvals)[-MAX_APPROVALS:]
    result = status.model_copy(update={"steps": steps, "approvals": approvals})
    for index, record in enumerate(steps):
        if status_size(result) <= budget:
            return result
        if droppable(record) and (record.output or record.args):
            digest = canonical_json(record.args)
            steps[index] = record.model_copy(
                update={
                    "output": "…[compacted to keep the task small]" if record.output else None,
                    "args": {"compacted": f"{len(digest.encode())} bytes"}
                    if len(digest) > 256
                    else record.args,
                }
            )
            result = status.model_copy(update={"steps": steps, "approvals": approvals})
    while status_size(result) > budget and any(droppable(r) for r in steps):
        del steps[next(i for i, r in enumerate(steps) if droppable(r))]
        result = status.model_copy(update={"steps": steps, "approvals": approvals})
    return result
