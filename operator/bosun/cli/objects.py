"""The objects ``kubectl bosun`` creates: an AgentTask for a request, an ApprovalGrant for a decision.

Both get generated names (``generateName``), so asking twice makes two tasks and each approver's grant is
their own object, never a name someone else already took. The requester and approver are not written
here: admission stamps them from the authenticated request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bosun.api.models import API_VERSION, GROUP, Decision

NAME_PREFIX_MAX = 40
"""Characters of a generated name taken from the request or task name (the API server adds five)."""
VIA = f"{GROUP}/via"
"""Label saying which client made a grant (the operator's own say ``annotation``)."""


def name_prefix(text: str) -> str:
    """A ``generateName`` that reads like ``text`` ("scale web to 5" → ``scale-web-to-5-``), a valid name
    whatever ``text`` holds."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower())[:NAME_PREFIX_MAX].strip("-")
    return f"{slug or 'task'}-"


def task_object(
    request: str,
    namespace: str,
    targets: Sequence[str],
    *,
    model: str | None = None,
    follow_up_of: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"request": request}
    if targets:
        spec["targetNamespaces"] = list(targets)
    if model:
        spec["model"] = model
    if follow_up_of:
        spec["followUpOf"] = follow_up_of
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentTask",
        "metadata": {"generateName": name_prefix(request), "namespace": namespace},
        "spec": spec,
    }


def grant_object(
    task: Mapping[str, Any],
    decision: Decision,
    plan_hash: str,
    steps: Sequence[str] | None,
    reason: str | None,
    *,
    via: str = "kubectl-bosun",
) -> dict[str, Any]:
    """A grant bound to ``task`` (name and uid) and to the exact proposal ``plan_hash`` names; ``via``
    labels the client that made it."""
    meta = task["metadata"]
    spec: dict[str, Any] = {
        "taskRef": {"name": meta["name"], "uid": meta["uid"]},
        "planHash": plan_hash,
        "decision": decision,
    }
    if steps:
        spec["steps"] = list(steps)
    if reason:
        spec["reason"] = reason
    return {
        "apiVersion": API_VERSION,
        "kind": "ApprovalGrant",
        "metadata": {
            "generateName": f"{name_prefix(meta['name'])}{decision.lower()}-",
            "namespace": meta["namespace"],
            "labels": {VIA: via},
        },
        "spec": spec,
    }
