"""``spec.followUpOf``: the earlier tasks a follow-up continues, read as its requester could read them.

The operator reads tasks with its own rights, which reach every namespace it serves; a follow-up must never
show the model (and through its answer, the requester) a task the requester could not ``get`` by hand. So
before each task is read, the API server is asked whether the requester may get it (a SubjectAccessReview
for their user and groups, as admission stamped them), and the answer decides whether it is read at all.
The decisions and the words are ``bosun.core.follow_up``'s.

When it is checked: when the task starts (a refusal fails it before anything is planned, whether a model
or the offline planner plans), and again in every later reconcile that plans or judges with a model, since
what the model is told is rebuilt from the objects every time (one reading per reconcile). A refusal fails
the task only while nothing is planned yet; a task followed up that later disappears (its TTL, say) or
becomes unreadable is no longer shown, the model is told so, and the follow-up carries on with its own
history.
"""

from __future__ import annotations

from typing import Any, Protocol

from bosun_tools.identity import Identity

from bosun.api.models import MAX_FOLLOW_UP_TURNS
from bosun.core import follow_up as rules
from bosun.core.follow_up import FollowUp, Refusal
from bosun.steps.task import Task


class TaskReader(Protocol):
    """What reading a chain of tasks needs of the operator's store (``bosun.ports.store.Store``)."""

    async def get_task(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def may_get_task(self, user: Identity, namespace: str, name: str) -> bool: ...


async def read_follow_up(
    reader: TaskReader, follower: dict[str, Any], requester: Identity
) -> FollowUp | Refusal | None:
    """The task ``follower`` follows up and its own chain, or why it cannot be followed up (None: the
    follower names none). Each task is read only after RBAC said the requester may get it."""
    name = (follower.get("spec") or {}).get("followUpOf")
    if not name:
        return None
    namespace = str(follower["metadata"]["namespace"])
    allowed = await reader.may_get_task(requester, namespace, name)
    previous = await reader.get_task(namespace, name) if allowed else None
    refusal = rules.previous_refusal(
        name,
        namespace,
        requester.user,
        allowed=allowed,
        previous=previous,
        follower_created=rules.created(follower),
    )
    if refusal is not None:
        return refusal
    assert previous is not None
    chain = [previous]
    seen = {str(previous["metadata"].get("uid", ""))}
    more = False
    while earlier_name := (chain[-1].get("spec") or {}).get("followUpOf"):
        if len(chain) >= MAX_FOLLOW_UP_TURNS:
            more = True
            break
        allowed = await reader.may_get_task(requester, namespace, earlier_name)
        earlier = await reader.get_task(namespace, earlier_name) if allowed else None
        if not rules.earlier_turn_usable(earlier, chain[-1], seen, allowed=allowed):
            more = True
            break
        assert earlier is not None
        chain.append(earlier)
        seen.add(str(earlier["metadata"].get("uid", "")))
    phase = str((previous.get("status") or {}).get("phase"))
    turns = [rules.turn_of(body) for body in reversed(chain)]
    return FollowUp(name, phase, rules.context(turns, more=more))


async def follow_up(task: Task) -> FollowUp | Refusal | None:
    """``read_follow_up`` for ``task``, read once per reconcile (start and the planning pass after it share
    one reading)."""
    if task.follow_up is None and task.spec.follow_up_of:
        task.follow_up = await read_follow_up(task.deps.store, task.body, task.requester)
    return task.follow_up


async def model_context(task: Task, *, strict: bool) -> FollowUp | Refusal | None:
    """What the model is told of the tasks followed up. ``strict`` (nothing planned yet): a refusal is
    returned, and fails the task. Otherwise a task that can no longer be shown is said to be gone, and the
    follow-up carries on with its own history."""
    found = await follow_up(task)
    if isinstance(found, Refusal) and not strict:
        name = task.spec.follow_up_of or ""
        return FollowUp(name, "", rules.lost(name, found))
    return found
