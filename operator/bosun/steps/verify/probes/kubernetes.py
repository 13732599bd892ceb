"""Checks of the generic Kubernetes object tools: apply, patch, delete, a Job from a CronJob, a pod, exec.

An applied or patched workload must also roll out (``workloads``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from bosun.ports.gateway import ToolCallOutcome
from bosun.steps.verify.probes.base import (
    Probe,
    Verdict,
    decided,
    k8s_get_args,
    live_object,
    not_found,
    object_probe,
    read_and_judge,
    show,
    unrecorded,
    where,
)
from bosun.steps.verify.probes.changes import compare_applied, compare_json_patch, compare_patch
from bosun.steps.verify.probes.sealed import sealed_probe, without_sealed
from bosun.steps.verify.probes.secret_values import is_secret
from bosun.steps.verify.probes.workloads import rollout_probe, workload_kind


def _manifest_kind(doc: Mapping[str, Any]) -> str:
    """The kind as k8s_get resolves it within the document's API group (``Deployment.apps``)."""
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    return f"{doc['kind']}.{group}" if group else str(doc["kind"])


def _applied_judge(doc: dict[str, Any]) -> Callable[[dict[str, Any]], Verdict]:
    def judge(live: dict[str, Any]) -> Verdict:
        if live.get("apiVersion") != doc.get("apiVersion"):
            return "unsure", (
                f"it reads back as {live.get('apiVersion')}, the manifest is {doc.get('apiVersion')}: "
                "fields can differ between versions"
            )
        result = compare_applied(doc, live)
        return result.verdict(f"all {result.checked} applied fields match the live object")

    return judge


def apply_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Every document of the manifest exists and holds its fields; an applied workload also rolls out."""
    try:
        docs = [d for d in yaml.safe_load_all(str(args.get("manifest", ""))) if d]
    except yaml.YAMLError as exc:
        return [decided("applied manifest", ("unsure", f"the manifest cannot be read again: {exc}"))]
    placed = {
        (o.get("kind"), o.get("name")): o.get("namespace")
        for o in (data or {}).get("objects", [])
        if isinstance(o, dict)
    }
    if not docs:
        return [decided("applied manifest", ("unsure", "the manifest holds no document"))]
    probes: list[Probe] = []
    for doc in docs:
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or not doc.get("kind")
            or not isinstance(meta, dict)
            or not meta.get("name")
        ):
            probes.append(
                decided("applied manifest", ("unsure", f"a document has no kind or name: {show(doc)}"))
            )
            continue
        kind, name = str(doc["kind"]), str(meta["name"])
        namespace = placed.get((kind, name), meta.get("namespace") or args.get("namespace"))
        what = f"{kind.lower()} {where(name, namespace)}"
        if is_secret(doc):
            doc, digests = without_sealed(doc)
            if digests:
                probes.append(sealed_probe(what, name, namespace, digests))
        probes.append(
            object_probe(
                f"{what} holds the applied fields", _manifest_kind(doc), name, namespace, _applied_judge(doc)
            )
        )
        workload = workload_kind(_manifest_kind(doc))
        if workload and namespace:
            probes.append(rollout_probe(workload, name, namespace))
    return probes


def _patched_judge(patch: Any) -> Callable[[dict[str, Any]], Verdict]:
    def judge(live: dict[str, Any]) -> Verdict:
        if isinstance(patch, list):
            result = compare_json_patch(patch, live)
        elif isinstance(patch, dict):
            result = compare_patch(patch, live)
        else:
            return "unsure", f"the patch is neither an object nor a list: {show(patch)}"
        return result.verdict(f"all {result.checked} patched fields hold")

    return judge


def patch_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Every set leaf holds and every removed one is gone; a patched workload also rolls out."""
    kind, name, namespace = str(args["kind"]), str(args["name"]), args.get("namespace")
    probes = [
        object_probe(
            f"{kind.lower()} {where(name, namespace)} patched",
            kind,
            name,
            namespace,
            _patched_judge(args.get("patch")),
        )
    ]
    workload = workload_kind(kind)
    if workload and namespace:
        probes.append(rollout_probe(workload, name, namespace))
    return probes


def gone_verdict(outcome: ToolCallOutcome, uid: str | None) -> Verdict:
    """Judge a read of a deleted object: not found, or found with another UID (re-created, e.g. a pod by
    its controller), is gone; the same object is still finalizing."""
    if not outcome.ok:
        if not_found(outcome):
            return "passed", "gone"
        return "unsure", f"reading it failed: {outcome.error}"
    live = live_object(outcome)
    if isinstance(live, tuple):
        return "pending", "it still exists (it could not be read whole to compare its uid)"
    meta = live.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        return "passed", f"deleted; an object of the same name was created since (uid {meta.get('uid')})"
    state = (
        f"it is being deleted (finalizers: {', '.join(meta.get('finalizers') or []) or 'none'})"
        if meta.get("deletionTimestamp")
        else "it still exists and is not being deleted"
    )
    if uid is None:
        state += "; the deleted object's uid was not recorded, so a re-created one cannot be told apart"
    return "pending", state


def delete_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    kind, name, namespace = str(args["kind"]), str(args["name"]), args.get("namespace")
    uid = (data or {}).get("uid")
    read_args = k8s_get_args(kind, name, namespace)

    def judge(outcome: ToolCallOutcome) -> Verdict:
        return gone_verdict(outcome, uid if isinstance(uid, str) else None)

    return [
        Probe(f"{kind.lower()} {where(name, namespace)} deleted", read_and_judge("k8s_get", read_args, judge))
    ]


def job_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The Job exists and belongs to the CronJob (its name is generated when the call gave none)."""
    namespace, cronjob = str(args["namespace"]), str(args["cronjob"])
    name = args.get("job_name") or (data or {}).get("name")
    if not name:
        return [unrecorded(f"job from cronjob {namespace}/{cronjob} created", "the generated job name")]

    def judge(live: dict[str, Any]) -> Verdict:
        owners = (live.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("kind") == "CronJob" and o.get("name") == cronjob for o in owners):
            return "failed", f"it exists but does not belong to cronjob {cronjob}"
        return "passed", f"exists, created from cronjob {cronjob}"

    return [object_probe(f"job {namespace}/{name} created", "jobs.batch", str(name), namespace, judge)]


def run_pod_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    namespace, name, image = str(args["namespace"]), str(args["name"]), args["image"]

    def judge(live: dict[str, Any]) -> Verdict:
        images = [c.get("image") for c in (live.get("spec") or {}).get("containers", [])]
        if image not in images:
            return "failed", f"it exists but runs {', '.join(map(str, images))}, not {image}"
        phase = (live.get("status") or {}).get("phase", "Pending")
        return "passed", f"exists with image {image} (phase {phase})"

    return [object_probe(f"pod {namespace}/{name} created", "pods", name, namespace, judge)]


def exec_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Decided by the exit code the call recorded: there is nothing to read back."""
    name = f"command in pod {args['namespace']}/{args['name']} succeeded"
    code = (data or {}).get("exit_code")
    if code is None:
        return [unrecorded(name, "the exit code")]
    return [decided(name, ("passed" if code == 0 else "failed", f"exit code {code}"))]
