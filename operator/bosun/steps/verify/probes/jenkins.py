"""Checks of the Jenkins tools, read back with ``jenkins_get`` (a build)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bosun.ports.gateway import ToolCallOutcome
from bosun.steps.verify.probes.base import Probe, Verdict, decided, read_and_judge


def _job_label(job: Any) -> str:
    return "/".join(map(str, job)) if isinstance(job, list) else str(job)


def build_verdict(data: Mapping[str, Any]) -> Verdict:
    if data.get("building"):
        return "pending", f"build #{data.get('number')} still running"
    result = data.get("result")
    return ("passed" if result == "SUCCESS" else "failed"), f"build #{data.get('number')} result {result}"


def _build_probe(name: str, job: Any, number: int, judge: Callable[[Mapping[str, Any]], Verdict]) -> Probe:
    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return "failed", f"jenkins_get failed: {outcome.error}"
        return judge(outcome.data or {})

    read_args = {"job": job, "show": "build", "number": number}
    return Probe(name, read_and_judge("jenkins_get", read_args, on_outcome))


def trigger_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    job = args.get("job")
    number = (data or {}).get("number")
    if number is None:
        return [
            decided(
                f"jenkins job {_job_label(job)} built",
                ("unsure", "Jenkins gave no build number for the triggered build, so its result is unknown"),
            )
        ]
    return [_build_probe(f"jenkins build {_job_label(job)} #{number} succeeded", job, number, build_verdict)]


def stop_build_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    job, number = args.get("job"), int(args["number"])

    def judge(build: Mapping[str, Any]) -> Verdict:
        if build.get("building"):
            return "pending", f"build #{number} still running"
        return "passed", f"build #{number} is not running (result {build.get('result')})"

    return [_build_probe(f"jenkins build {_job_label(job)} #{number} stopped", job, number, judge)]
