"""Checks of the Helm tools, read back with ``helm_get`` (a release's status)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bosun.ports.gateway import ToolCallOutcome
from bosun.steps.verify.probes.base import Probe, Verdict, not_found, read_and_judge


def helm_verdict(data: Mapping[str, Any], revision: Any = None) -> Verdict:
    """Deployed, at the revision the executed call made (when it recorded one)."""
    state, live = data.get("status"), data.get("revision")
    facts = f"release status {state}, revision {live}"
    if isinstance(state, str) and state.startswith("pending-"):
        return "pending", facts
    if state != "deployed":
        return "failed", facts
    if revision is not None and live != revision:
        return "failed", f"{facts}; the executed change made revision {revision}"
    return "passed", facts


def helm_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    release, namespace = str(args["release"]), str(args["namespace"])
    revision = (data or {}).get("revision")

    def judge(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return "failed", f"helm_get failed: {outcome.error}"
        return helm_verdict(outcome.data or {}, revision)

    read_args = {"release": release, "namespace": namespace}
    return [
        Probe(f"helm release {namespace}/{release} deployed", read_and_judge("helm_get", read_args, judge))
    ]


def helm_uninstall_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    release, namespace = str(args["release"]), str(args["namespace"])

    def judge(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return (
                ("passed", "gone") if not_found(outcome) else ("unsure", f"helm_get failed: {outcome.error}")
            )
        state = (outcome.data or {}).get("status")
        if state == "uninstalled":
            return "passed", "uninstalled (its history is kept)"
        if state == "uninstalling":
            return "pending", "still uninstalling"
        return "failed", f"release status {state}, revision {(outcome.data or {}).get('revision')}"

    read_args = {"release": release, "namespace": namespace}
    return [
        Probe(f"helm release {namespace}/{release} uninstalled", read_and_judge("helm_get", read_args, judge))
    ]
