"""The hook notifications hang on (``Deps.phase_observers``), against the real API server: observers hear of
a phase change once, from the one writer whose conditional write made it; a write that changes no phase, a
stale writer and a fresh read tell them nothing. This is what makes a notification at most once per change
(``bosun.notify``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from bosun.api.models import AgentTaskStatus
from bosun.ports.store import TaskConflict
from bosun.steps.task import Deps

from tests.conftest import Kubectl
from tests.e2e.conftest import bosun_installed, users  # noqa: F401  (fixtures used below)
from tests.integration.test_steps import deps, proposed, read  # noqa: F401  (deps is a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("bosun_installed", "users")]


async def test_observers_hear_of_each_change_once_from_the_writer_that_made_it(
    deps: Deps,  # noqa: F811  (the fixture imported above)
    kubectl: Kubectl,
    namespace: str,
) -> None:
    heard: list[tuple[str | None, str | None, str | None]] = []

    def observe(body: Mapping[str, Any], status: AgentTaskStatus) -> None:
        stored = body["status"]
        assert stored["phase"] == status.phase, "observers see the status as the API server stored it"
        heard.append(
            (status.phase, status.proposal.hash if status.proposal else None, body["metadata"]["name"])
        )

    deps.phase_observers = (observe,)
    task = await proposed(deps, kubectl, namespace)  # the offline planner: one write, Pending to a proposal
    assert task.status.proposal is not None
    proposal = task.status.proposal.hash
    assert heard == [("AwaitingApproval", proposal, "scale-web")]

    stale = await read(deps, namespace, "scale-web")
    await task.emit("Normal", "Noted", "a status write that changes no phase")
    assert len(heard) == 1, "only a change of phase (or a new proposal) is told"

    await task.move("Cancelled", "Cancelled", "cancelled by the test")
    assert heard[-1] == ("Cancelled", proposal, "scale-web")
    with pytest.raises(TaskConflict):
        await stale.move("Denied", "Denied", "decided on a copy older than the last write")
    await read(deps, namespace, "scale-web")  # what a restart's listing, the sweep or a watch event does
    assert len(heard) == 2, "a stale writer and a reader tell nobody"
