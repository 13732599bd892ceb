"""Kubernetes toolset: everything through the API (never the kubectl binary), as the caller's identity.

Read paths render server-side Tables (the same columns kubectl shows, CRD printer columns included) and
send every object through ``redact`` first. Mutations honour preview mode with ``dryRun=All`` and return
the field-level changes plus a unified diff, so an approver sees exactly what will change.
"""

from __future__ import annotations

import asyncio
import copy
import shlex
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import yaml
from fastmcp.exceptions import ToolError
from pydantic import Field

from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo
from bosun_tools.output import (
    LAST_APPLIED,
    ToolOutput,
    age,
    clean,
    field_changes,
    redact,
    redact_pair,
    table,
    to_yaml,
    yaml_diff,
)
from bosun_tools.registry import (
    DnsLabel,
    Image,
    K8sName,
    Kind,
    Namespace,
    Selector,
    bosun_tool,
    current,
)
from bosun_tools.workloads import dig, drain_plan, pod_spec_path

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# kubectl's annotationsToSkip (polymorphichelpers/rollback.go): a rollback keeps the Deployment's own values.
ROLLBACK_KEEPS = (
    LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)
READ_CAP = 16_000
LOG_CAP = 24_000
LOG_FETCH_LIMIT = 4_000_000  # bytes of log lines read from the API server per call

Output = Literal["table", "yaml"]
Workload = Literal["deployment", "statefulset", "daemonset"]
TemplateKind = Literal["deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob", "pod"]
Replicas = Annotated[int, Field(ge=0, le=1000)]
Limit = Annotated[int, Field(ge=1, le=500)]
Revision = Annotated[int, Field(ge=0, le=1_000_000)]
Command = Annotated[list[Annotated[str, Field(max_length=4096)]], Field(min_length=1, max_length=64)]


# ----- shared helpers --------------------------------------------------------------------------------------


def _kube() -> KubeClient:
    return current().kube


def _namespace(info: ResourceInfo, namespace: str | None, *, required: bool = True) -> str | None:
    if not info.namespaced:
        return None
    if namespace is None and required:
        raise ToolError(f"{info.qualified} are namespaced: pass namespace")
    return namespace


def _where(info: ResourceInfo, name: str, namespace: str | None) -> str:
    place = f" in namespace {namespace}" if namespace else ""
    return f"{info.kind.lower()} {name}{place}"


def _facts(info: ResourceInfo, name: str, namespace: str | None, **more: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"kind": info.kind, "name": name, "namespace": namespace}
    facts.update(more)
    return facts


def _render_table(served: dict[str, Any], *, namespace_column: bool) -> tuple[str, int]:
    """Aligned text of a meta.k8s.io Table (priority-0 columns only), like ``kubectl get``."""
    if served.get("kind") != "Table":
        items = served.get("items", [served] if "metadata" in served else [])
        rows = [[i["metadata"].get("namespace", ""), i["metadata"]["name"]] for i in items]
        header = ["NAMESPACE", "NAME"]
        if not namespace_column:
            rows, header = [r[1:] for r in rows], header[1:]
        return table([header, *rows]), len(items)
    columns = [(i, c) for i, c in enumerate(served.get("columnDefinitions", [])) if c.get("priority", 0) == 0]
    header = [c["name"].upper() for _, c in columns]
    lines: list[list[str]] = []
    for row in served.get("rows", []):
        cells = [_cell(row["cells"][i]) for i, _ in columns]
        if namespace_column:
            cells.insert(0, row.get("object", {}).get("metadata", {}).get("namespace", ""))
        lines.append(cells)
    if namespace_column:
        header.insert(0, "NAMESPACE")
    return table([header, *lines]), len(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


async def _events_for(kube: KubeClient, obj: dict[str, Any], limit: int = 30) -> list[dict[str, Any]]:
    events = await kube.resolve("events", "v1")
    meta = obj.get("metadata", {})
    selector = f"involvedObject.uid={meta.get('uid')}"
    listing = await kube.list(events, meta.get("namespace"), field_selector=selector)
    items: list[dict[str, Any]] = sorted(listing.get("items", []), key=_event_time)
    return items[-limit:]


def _event_time(event: dict[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def _event_lines(events: list[dict[str, Any]], *, with_object: bool) -> str:
    if not events:
        return "No events."
    header = ["LAST SEEN", "TYPE", "REASON", *(["OBJECT"] if with_object else []), "MESSAGE"]
    rows = [header]
    for e in events:
        involved = e.get("involvedObject", {})
        count = e.get("count") or 1
        reason = e.get("reason", "") + (f" (x{count})" if count > 1 else "")
        target = [f"{involved.get('kind', '').lower()}/{involved.get('name', '')}"] if with_object else []
        message = " ".join(str(e.get("message", "")).split())
        rows.append([age(_event_time(e)), e.get("type", ""), reason, *target, message])
    return table(rows)


def _preview(
    before: dict[str, Any] | None, after: dict[str, Any] | None, label: str
) -> tuple[list[str], str]:
    """Field changes and diff between two states of an object, with Secret values redacted first."""
    old, new = redact_pair(before, after)
    return field_changes(old, new), yaml_diff(old, new, label)


def _change_text(verb: str, what: str, changes: list[str], preview: bool) -> str:
    head = f"Would {verb} {what}" if preview else f"Did {verb} {what}"
    if not changes:
        return f"{head}: no change."
    return f"{head}:\n" + "\n".join(f"  {c}" for c in changes)


def _mutation_output(
    *,
    verb: str,
    what: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    label: str,
    data: dict[str, Any],
) -> ToolOutput:
    preview = current().preview
    changes, diff = _preview(before, after, label)
    data = {**data, "dry_run": preview, "changes": changes[:50]}
    return ToolOutput.capped(
        _change_text(verb, what, changes, preview), diff=diff if preview else None, data=data
    )


def _images(obj: dict[str, Any]) -> dict[str, str]:
    spec = dig(obj, pod_spec_path(obj.get("kind", "")))
    return {c["name"]: c.get("image", "") for c in spec.get("containers", [])}


# ----- read-only tools ------------------------------------------------------------------------------------


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_get(
    kind: Kind, name: K8sName, namespace: Namespace | None = None, output: Output = "table"
) -> ToolOutput:
    """Get one object of any kind (custom resources too); output=yaml for the full object."""
    kube = _kube()
    info = await kube.resolve(kind)
    ns = _namespace(info, namespace)
    if output == "yaml":
        obj = redact(await kube.get(info, name, ns), info.kind)
        return ToolOutput.capped(to_yaml(clean(obj)), cap=READ_CAP, data=_facts(info, name, ns))
    served = await kube.request("GET", info.path(ns, name), accept=TABLE_ACCEPT)
    text, _ = _render_table(served, namespace_column=False)
    return ToolOutput.capped(text, cap=READ_CAP, data=_facts(info, name, ns))


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_list(
    kind: Kind,
    namespace: Namespace | None = None,
    label_selector: Selector | None = None,
    field_selector: Selector | None = None,
    limit: Limit = 100,
    output: Output = "table",
) -> ToolOutput:
    """List objects of any kind; omit namespace for all namespaces."""
    kube = _kube()
    info = await kube.resolve(kind)
    ns = _namespace(info, namespace, required=False)
    params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit}
    if output == "yaml":
        listing = redact(
            await kube.list(
                info, ns, label_selector=label_selector, field_selector=field_selector, limit=limit
            ),
            info.kind,
        )
        items = [clean(i) for i in listing.get("items", [])]
        more = bool(listing.get("metadata", {}).get("continue"))
        return ToolOutput.capped(
            to_yaml(items),
            cap=READ_CAP,
            truncated=more,
            data={"kind": info.kind, "namespace": ns, "count": len(items), "more": more},
        )
    served = await kube.request("GET", info.path(ns), params=params, accept=TABLE_ACCEPT)
    text, count = _render_table(served, namespace_column=info.namespaced and ns is None)
    more = bool(served.get("metadata", {}).get("continue"))
    if more:
        text += f"\n…[more than {limit} objects; narrow with a selector or raise limit]"
    return ToolOutput.capped(
        text,
        cap=READ_CAP,
        truncated=more,
        data={"kind": info.kind, "namespace": ns, "count": count, "more": more},
    )


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_describe(kind: Kind, name: K8sName, namespace: Namespace | None = None) -> ToolOutput:
    """Describe an object: its spec and status plus its recent Events."""
    kube = _kube()
    info = await kube.resolve(kind)
    ns = _namespace(info, namespace)
    obj = redact(await kube.get(info, name, ns), info.kind)
    events = await _events_for(kube, obj)
    body = clean(obj)
    meta = body.get("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    header = {
        "Name": meta.get("name"),
        "Namespace": meta.get("namespace"),
        "Kind": f"{info.kind} ({info.api_version})",
        "Age": age(meta.get("creationTimestamp")),
        "Labels": meta.get("labels") or {},
        "Annotations": annotations,
        "Owners": [f"{o['kind']}/{o['name']}" for o in meta.get("ownerReferences", [])],
    }
    rest = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}
    text = to_yaml({k: v for k, v in header.items() if v not in (None, [], {})}) + to_yaml(rest)
    text += "Events:\n" + _event_lines(events, with_object=False)
    return ToolOutput.capped(text, cap=READ_CAP, data=_facts(info, name, ns, events=len(events)))


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_events(
    namespace: Namespace | None = None,
    kind: Kind | None = None,
    name: K8sName | None = None,
    warnings_only: bool = False,
    limit: Limit = 50,
) -> ToolOutput:
    """Recent Events, newest last; filter by object kind/name or warnings."""
    kube = _kube()
    info = await kube.resolve("events", "v1")
    selectors = []
    if kind:
        selectors.append(f"involvedObject.kind={(await kube.resolve(kind)).kind}")
    if name:
        selectors.append(f"involvedObject.name={name}")
    if warnings_only:
        selectors.append("type=Warning")
    listing = await kube.list(info, namespace, field_selector=",".join(selectors) or None)
    items = sorted(listing.get("items", []), key=_event_time)[-limit:]
    text = _event_lines(items, with_object=True)
    return ToolOutput.capped(text, cap=READ_CAP, data={"namespace": namespace, "count": len(items)})


async def _no_previous_instance(
    kube: KubeClient, name: str, namespace: str, container: str | None
) -> str | None:
    """Why a container has no previous instance to read logs from (None: it has one, or we cannot tell).

    The kubelet answers such a request with a bare 400 whose text depends on the runtime; the pod status
    says plainly whether the container ever restarted."""
    try:
        pod = await kube.get(await kube.resolve("pods", "v1"), name, namespace)
    except KubeError:
        return None
    status = pod.get("status", {})
    statuses = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    chosen = [s for s in statuses if container is None or s.get("name") == container]
    if len(chosen) != 1 or chosen[0].get("lastState", {}).get("terminated"):
        return None
    restarts = chosen[0].get("restartCount", 0)
    return (
        f"pod {name} in namespace {namespace}: container {chosen[0].get('name')} has no previous instance "
        f"(restartCount {restarts}, no terminated lastState), so there are no previous logs; "
        "omit previous to read the current logs"
    )


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_logs(
    name: K8sName,
    namespace: Namespace,
    container: DnsLabel | None = None,
    tail: Annotated[int, Field(ge=1, le=5000)] = 200,
    since_seconds: Annotated[int, Field(ge=1, le=604800)] | None = None,
    previous: bool = False,
) -> ToolOutput:
    """Logs of a pod (last lines; container, since_seconds, previous)."""
    params: dict[str, Any] = {
        "tailLines": tail,
        "sinceSeconds": since_seconds,
        "container": container,
        "previous": "true" if previous else None,
        "limitBytes": LOG_FETCH_LIMIT,
    }
    path = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
    kube = _kube()
    try:
        text: str = await kube.request("GET", path, params=params, raw=True, accept="*/*")
    except KubeError as exc:
        if previous and exc.status == 400:
            why = await _no_previous_instance(kube, name, namespace, container)
            if why:
                raise ToolError(why) from None
        raise
    facts = {"kind": "Pod", "name": name, "namespace": namespace, "container": container}
    # limitBytes cuts the *end* of the requested lines: the tail kept below would then not be the newest.
    cut = len(text.encode()) >= LOG_FETCH_LIMIT
    if cut:
        text += (
            f"\n…[stopped at {LOG_FETCH_LIMIT} bytes: newer lines are missing; lower tail or since_seconds]"
        )
    return ToolOutput.capped(text or "(no log lines)", cap=LOG_CAP, keep="tail", data=facts, truncated=cut)


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_top(
    kind: Literal["pods", "nodes"] = "pods",
    namespace: Namespace | None = None,
    label_selector: Selector | None = None,
) -> ToolOutput:
    """CPU/memory usage from the metrics API (metrics-server)."""
    kube = _kube()
    try:
        info = await kube.resolve(kind, "metrics.k8s.io/v1beta1")
        listing = await kube.list(info, namespace if kind == "pods" else None, label_selector=label_selector)
    except KubeError as exc:
        if exc.status in (404, 503):
            raise ToolError(
                "the metrics API (metrics.k8s.io) is not available in this cluster, so usage cannot be "
                "shown; install metrics-server, or use k8s_describe for requests/limits"
            ) from None
        raise
    rows = (
        [["NAMESPACE", "NAME", "CPU(m)", "MEMORY(Mi)"]]
        if kind == "pods"
        else [["NAME", "CPU(m)", "MEMORY(Mi)"]]
    )
    for item in listing.get("items", []):
        usages = (
            [c["usage"] for c in item.get("containers", [])] if kind == "pods" else [item.get("usage", {})]
        )
        cpu = sum(_millicores(u.get("cpu", "0")) for u in usages)
        mem = sum(_mebibytes(u.get("memory", "0")) for u in usages)
        name = item["metadata"]["name"]
        row = [item["metadata"].get("namespace", ""), name] if kind == "pods" else [name]
        rows.append([*row, str(cpu), str(mem)])
    return ToolOutput.capped(table(rows), cap=READ_CAP, data={"kind": kind, "count": len(rows) - 1})


def _millicores(value: str) -> int:
    if value.endswith("n"):
        return int(value[:-1]) // 1_000_000
    if value.endswith("u"):
        return int(value[:-1]) // 1_000
    if value.endswith("m"):
        return int(value[:-1])
    return int(float(value) * 1000)


def _mebibytes(value: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "k": 1000 / 1048576, "M": 1e6 / 1048576, "G": 1e9 / 1048576}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(float(value) / 1048576)


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_api_resources(
    group: Annotated[str, Field(pattern=r"^[a-z0-9.-]*$", max_length=253)] | None = None,
) -> ToolOutput:
    """Resource types the cluster serves (name, short names, apiVersion, namespaced, kind)."""
    infos = await _kube().resources(refresh=True)
    seen: set[tuple[str, str]] = set()
    rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    for info in infos:
        if (group is not None and info.group != group) or (info.group, info.plural) in seen:
            continue
        seen.add((info.group, info.plural))
        rows.append(
            [
                info.plural,
                ",".join(info.short_names),
                info.api_version,
                str(info.namespaced).lower(),
                info.kind,
            ]
        )
    return ToolOutput.capped(table(rows), cap=READ_CAP, data={"count": len(rows) - 1})


def rollout_state(obj: dict[str, Any]) -> tuple[bool, str]:
    """(complete, message) with kubectl's rollout-status rules for Deployment, StatefulSet, DaemonSet."""
    kind = obj.get("kind")
    name = obj["metadata"]["name"]
    spec, status = obj.get("spec", {}), obj.get("status", {})
    if obj["metadata"].get("generation", 0) > status.get("observedGeneration", -1):
        return False, f"Waiting for {kind.lower() if kind else 'object'} spec update to be observed..."
    if kind == "Deployment":
        for cond in status.get("conditions", []):
            if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                return False, f'deployment "{name}" exceeded its progress deadline'
        want = spec.get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        if updated < want:
            return False, f"Waiting for rollout: {updated} out of {want} new replicas have been updated..."
        if status.get("replicas", 0) > updated:
            old = status.get("replicas", 0) - updated
            return False, f"Waiting for rollout: {old} old replicas are pending termination..."
        if status.get("availableReplicas", 0) < updated:
            available = status.get("availableReplicas", 0)
            return False, f"Waiting for rollout: {available} of {updated} updated replicas are available..."
        return True, f'deployment "{name}" successfully rolled out'
    if kind == "StatefulSet":
        strategy = spec.get("updateStrategy", {})
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return (
                True,
                f"rollout status is only available for RollingUpdate; {name} uses {strategy.get('type')}",
            )
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        if ready < want:
            return False, f"Waiting for {want - ready} pods to be ready..."
        partition = strategy.get("rollingUpdate", {}).get("partition", 0)
        if partition:
            if status.get("updatedReplicas", 0) < want - partition:
                return (
                    False,
                    f"Waiting for partitioned roll out to finish: {status.get('updatedReplicas', 0)} "
                    f"out of {want - partition} new pods have been updated...",
                )
            return True, f"partitioned roll out complete: {want - partition} new pods have been updated..."
        if status.get("updateRevision") != status.get("currentRevision"):
            return (
                False,
                f"waiting for statefulset rolling update to complete {status.get('updatedReplicas', 0)} "
                f"pods at revision {status.get('updateRevision')}...",
            )
        return (
            True,
            f"statefulset rolling update complete {ready} pods at revision "
            f"{status.get('currentRevision')}...",
        )
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        updated = status.get("updatedNumberScheduled", 0)
        if updated < desired:
            return (
                False,
                f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} '
                "new pods have been updated...",
            )
        available = status.get("numberAvailable", 0)
        if available < desired:
            return (
                False,
                f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} '
                "updated pods are available...",
            )
        return True, f'daemon set "{name}" successfully rolled out'
    raise ToolError(f"rollout status supports deployment, statefulset and daemonset, not {kind}")


@bosun_tool(toolset="kubernetes", read_only=True, timeout=330)
async def k8s_rollout_status(
    name: K8sName,
    namespace: Namespace,
    kind: Workload = "deployment",
    wait_seconds: Annotated[int, Field(ge=0, le=300)] = 0,
) -> ToolOutput:
    """Rollout progress of a workload; wait_seconds>0 waits for completion."""
    kube = _kube()
    info = await kube.resolve(kind)
    deadline = time.monotonic() + wait_seconds
    while True:
        obj = await kube.get(info, name, namespace)
        complete, message = rollout_state(obj)
        if complete or time.monotonic() >= deadline:
            break
        await asyncio.sleep(1)
    status = obj.get("status", {})
    facts = _facts(
        info,
        name,
        namespace,
        complete=complete,
        replicas=obj.get("spec", {}).get("replicas"),
        ready=status.get("readyReplicas", status.get("numberReady")),
        updated=status.get("updatedReplicas"),
        available=status.get("availableReplicas", status.get("numberAvailable")),
        images=_images(obj),
    )
    return ToolOutput.capped(message, data=facts)


async def _revisions(
    kube: KubeClient, info: ResourceInfo, obj: dict[str, Any]
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(revision, pod template, source object) of a workload's history, oldest first."""
    namespace = obj["metadata"]["namespace"]
    uid = obj["metadata"]["uid"]
    found: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    if info.kind == "Deployment":
        rs_info = await kube.resolve("replicasets", "apps/v1")
        listing = await kube.list(rs_info, namespace)
        for rs in listing.get("items", []):
            if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences", [])):
                rev = int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))
                found.append((rev, rs["spec"]["template"], rs))
    else:
        cr_info = await kube.resolve("controllerrevisions", "apps/v1")
        listing = await kube.list(cr_info, namespace)
        for cr in listing.get("items", []):
            if any(o.get("uid") == uid for o in cr["metadata"].get("ownerReferences", [])):
                template = cr.get("data", {}).get("spec", {}).get("template", {})
                found.append((int(cr.get("revision", 0)), template, cr))
    return sorted(found, key=lambda r: r[0])


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_rollout_history(
    name: K8sName, namespace: Namespace, kind: Workload = "deployment", revision: Revision | None = None
) -> ToolOutput:
    """Revisions of a workload; pass revision to see its pod template."""
    kube = _kube()
    info = await kube.resolve(kind)
    obj = await kube.get(info, name, namespace)
    history = await _revisions(kube, info, obj)
    if revision:
        match = [h for h in history if h[0] == revision]
        if not match:
            known = ", ".join(str(h[0]) for h in history) or "none"
            raise ToolError(f"{_where(info, name, namespace)} has no revision {revision}; revisions: {known}")
        template = redact(match[0][1])
        return ToolOutput.capped(
            f"revision {revision}:\n" + to_yaml(template),
            cap=READ_CAP,
            data=_facts(info, name, namespace, revision=revision),
        )
    rows = [["REVISION", "CHANGE-CAUSE", "IMAGES"]]
    for rev, template, source in history:
        cause = source["metadata"].get("annotations", {}).get(CHANGE_CAUSE, "<none>")
        images = ",".join(c.get("image", "") for c in template.get("spec", {}).get("containers", []))
        rows.append([str(rev), cause, images])
    facts = _facts(info, name, namespace, revisions=[h[0] for h in history])
    return ToolOutput.capped(table(rows), cap=READ_CAP, data=facts)


@bosun_tool(toolset="kubernetes", read_only=True, timeout=20)
async def k8s_can_i(
    verb: Annotated[str, Field(pattern=r"^[a-z*]+$", max_length=32)],
    resource: Kind,
    namespace: Namespace | None = None,
    name: K8sName | None = None,
    subresource: DnsLabel | None = None,
) -> ToolOutput:
    """Whether the caller's identity may do verb on resource (SelfSubjectAccessReview)."""
    kube = _kube()
    group, plural = "", resource
    if resource != "*":
        try:
            info = await kube.resolve(resource)
            group, plural = info.group, info.plural
        except KubeError:
            plural, _, group = resource.partition(".")
    attrs = {
        "verb": verb,
        "resource": plural,
        "group": group,
        "namespace": namespace,
        "name": name,
        "subresource": subresource,
    }
    status = await kube.access_review(attrs)
    allowed = bool(status.get("allowed"))
    identity = current().identity
    who = identity.user if identity else "the tool server"
    target = f"{plural}{'.' + group if group else ''}{'/' + subresource if subresource else ''}"
    where = f" in namespace {namespace}" if namespace else ""
    text = f"{'yes' if allowed else 'no'}: {who} {'can' if allowed else 'cannot'} {verb} {target}{where}"
    if status.get("reason"):
        text += f" ({status['reason']})"
    return ToolOutput.capped(
        text, data={"allowed": allowed, "verb": verb, "resource": target, "namespace": namespace}
    )


# ----- mutating tools --------------------------------------------------------------------------------------


@bosun_tool(toolset="kubernetes", idempotent=True, timeout=60)
async def k8s_apply(
    manifest: Annotated[str, Field(min_length=1, max_length=262144)],
    namespace: Namespace | None = None,
    force: bool = False,
) -> ToolOutput:
    """Server-side apply a YAML manifest (one or more documents) into namespace."""
    ctx = current()
    kube = ctx.kube
    try:
        docs = [d for d in yaml.safe_load_all(manifest) if d]
    except yaml.YAMLError as exc:
        raise ToolError(f"manifest is not valid YAML: {exc}") from None
    if not docs or not all(isinstance(d, dict) and d.get("kind") and d.get("apiVersion") for d in docs):
        raise ToolError("every manifest document needs apiVersion, kind and metadata.name")
    results: list[dict[str, Any]] = []
    all_changes: list[str] = []
    diffs: list[str] = []
    for doc in docs:
        info = await kube.resolve(doc["kind"], doc["apiVersion"])
        name = doc.get("metadata", {}).get("name")
        if not name:
            raise ToolError(f"{doc['kind']} document has no metadata.name")
        doc_ns = doc.get("metadata", {}).get("namespace") or namespace
        # Namespaced objects must be in the namespace the call names: the operator's scope check
        # (targetNamespaces) reads only the arguments, never the manifest.
        if info.namespaced and not namespace:
            raise ToolError(f"{doc['kind']} {name} is namespaced: pass namespace (one call per namespace)")
        if info.namespaced and doc_ns != namespace:
            raise ToolError(
                f"{doc['kind']} {name} names namespace {doc_ns} but the call is for namespace {namespace}"
            )
        ns = doc_ns if info.namespaced else None
        if ns:
            doc = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
        try:
            before: dict[str, Any] | None = await kube.get(info, name, ns)
        except KubeError as exc:
            if exc.status != 404:
                raise
            before = None
        after = await kube.patch(info, name, doc, ns, patch_type="apply", dry_run=ctx.preview, force=force)
        label = f"{info.kind.lower()}/{name}"
        changes, diff = _preview(before, after, label)
        action = "created" if before is None else ("configured" if changes else "unchanged")
        results.append(_facts(info, name, ns, action=action))
        all_changes.extend(f"{label}: {c}" for c in changes)
        if diff:
            diffs.append(diff)
    verb = "Would apply" if ctx.preview else "Applied"
    text = f"{verb} {len(results)} object(s):\n" + "\n".join(
        f"  {r['kind'].lower()}/{r['name']}{' -n ' + r['namespace'] if r['namespace'] else ''}: {r['action']}"
        for r in results
    )
    if all_changes:
        text += "\nChanges:\n" + "\n".join(f"  {c}" for c in all_changes[:200])
    data = {"objects": results, "dry_run": ctx.preview, "changes": all_changes[:50]}
    return ToolOutput.capped(text, diff="\n".join(diffs) if ctx.preview else None, data=data)


@bosun_tool(toolset="kubernetes", idempotent=False, timeout=30)
async def k8s_patch(
    kind: Kind,
    name: K8sName,
    patch: dict[str, Any] | list[dict[str, Any]],
    namespace: Namespace | None = None,
    patch_type: Literal["strategic", "merge", "json"] = "strategic",
) -> ToolOutput:
    """Patch an object (strategic/merge patch object, or JSON-patch list)."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    ns = _namespace(info, namespace)
    if (patch_type == "json") != isinstance(patch, list):
        raise ToolError("patch_type json needs a list of operations; strategic and merge need an object")
    before = await ctx.kube.get(info, name, ns)
    try:
        after = await ctx.kube.patch(info, name, patch, ns, patch_type=patch_type, dry_run=ctx.preview)
    except KubeError as exc:
        if exc.status != 415 or patch_type != "strategic":
            raise
        # Custom resources have no strategic-merge schema; a merge patch is what kubectl falls back to.
        patch_type = "merge"
        after = await ctx.kube.patch(info, name, patch, ns, patch_type=patch_type, dry_run=ctx.preview)
    return _mutation_output(
        verb="patch",
        what=_where(info, name, ns),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=_facts(info, name, ns, patch_type=patch_type),
    )


@bosun_tool(toolset="kubernetes", idempotent=True, timeout=30)
async def k8s_scale(kind: Kind, name: K8sName, namespace: Namespace, replicas: Replicas) -> ToolOutput:
    """Set the replica count of a deployment, statefulset, replicaset or scalable custom resource."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    if "scale" not in info.subresources:
        raise ToolError(f"{info.qualified} cannot be scaled (no scale subresource)")
    path = info.path(namespace, name, "scale")
    before = await ctx.kube.request("GET", path)
    after = await ctx.kube.patch(
        info, name, {"spec": {"replicas": replicas}}, namespace, dry_run=ctx.preview, subresource="scale"
    )
    facts = _facts(
        info, name, namespace, replicas=replicas, previous_replicas=before.get("spec", {}).get("replicas")
    )
    return _mutation_output(
        verb="scale",
        what=_where(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name} (scale)",
        data=facts,
    )


@bosun_tool(toolset="kubernetes", idempotent=True, timeout=30)
async def k8s_set_image(
    kind: TemplateKind, name: K8sName, namespace: Namespace, container: DnsLabel, image: Image
) -> ToolOutput:
    """Set the image of one container of a workload or pod."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    before = await ctx.kube.get(info, name, namespace)
    path = pod_spec_path(info.kind)
    spec = dig(before, path)
    names = [c["name"] for c in spec.get("containers", [])] + [
        c["name"] for c in spec.get("initContainers", [])
    ]
    if container not in names:
        raise ToolError(
            f"{_where(info, name, namespace)} has no container {container}; containers: {', '.join(names)}"
        )
    field = (
        "initContainers" if container not in [c["name"] for c in spec.get("containers", [])] else "containers"
    )
    patch: dict[str, Any] = {field: [{"name": container, "image": image}]}
    for key in reversed(path):
        patch = {key: patch}
    after = await ctx.kube.patch(info, name, patch, namespace, patch_type="strategic", dry_run=ctx.preview)
    facts = _facts(
        info, name, namespace, container=container, image=image, previous_image=_images(before).get(container)
    )
    return _mutation_output(
        verb="set image of",
        what=_where(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=facts,
    )


@bosun_tool(toolset="kubernetes", idempotent=False, timeout=30)
async def k8s_rollout_restart(
    name: K8sName, namespace: Namespace, kind: Workload = "deployment"
) -> ToolOutput:
    """Restart a workload's pods with a rolling update (restartedAt annotation)."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    before = await ctx.kube.get(info, name, namespace)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    after = await ctx.kube.patch(info, name, patch, namespace, patch_type="strategic", dry_run=ctx.preview)
    return _mutation_output(
        verb="restart",
        what=_where(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=_facts(info, name, namespace, restarted_at=stamp),
    )


def _rollback_annotations(deployment: dict[str, Any], replicaset: dict[str, Any]) -> dict[str, str]:
    """The Deployment's annotations after a rollback, as ``kubectl rollout undo`` computes them.

    The ReplicaSet of a revision carries the Deployment annotations of that revision (a change-cause, for
    instance), so they come back with its template; the ones that describe the live object rather than
    the revision stay as they are."""
    live = deployment["metadata"].get("annotations") or {}
    kept = {key: live[key] for key in ROLLBACK_KEEPS if key in live}
    restored = {
        key: value
        for key, value in (replicaset["metadata"].get("annotations") or {}).items()
        if key not in ROLLBACK_KEEPS
    }
    return {**kept, **restored}


@bosun_tool(toolset="kubernetes", idempotent=False, timeout=30)
async def k8s_rollout_undo(
    name: K8sName, namespace: Namespace, kind: Workload = "deployment", to_revision: Revision = 0
) -> ToolOutput:
    """Roll a workload back to a revision (0 = the previous one)."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    before = await ctx.kube.get(info, name, namespace)
    history = await _revisions(ctx.kube, info, before)
    if len(history) < 2 and not to_revision:
        raise ToolError(f"{_where(info, name, namespace)} has no previous revision to roll back to")
    target = to_revision or history[-2][0]
    match = [h for h in history if h[0] == target]
    if not match:
        known = ", ".join(str(h[0]) for h in history) or "none"
        raise ToolError(f"{_where(info, name, namespace)} has no revision {target}; revisions: {known}")
    _, template, source = match[0]
    if info.kind == "Deployment":
        if before["spec"].get("paused"):
            raise ToolError(
                f"{_where(info, name, namespace)} is paused and cannot be rolled back; resume it first "
                "(k8s_patch spec.paused=false), then roll back"
            )
        template = copy.deepcopy(template)
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        if template == before["spec"]["template"]:
            facts = _facts(
                info,
                name,
                namespace,
                revision=target,
                images=_images(before),
                dry_run=ctx.preview,
                changes=[],
            )
            return ToolOutput(
                text=f"Skipped rollback: {_where(info, name, namespace)} already runs the template "
                f"of revision {target}.",
                data=facts,
            )
        patch: Any = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "add", "path": "/metadata/annotations", "value": _rollback_annotations(before, source)},
        ]
        after = await ctx.kube.patch(info, name, patch, namespace, patch_type="json", dry_run=ctx.preview)
    else:
        after = await ctx.kube.patch(
            info, name, source.get("data", {}), namespace, patch_type="strategic", dry_run=ctx.preview
        )
    facts = _facts(info, name, namespace, revision=target, images=_images(after))
    return _mutation_output(
        verb=f"roll back to revision {target}",
        what=_where(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=facts,
    )


@bosun_tool(toolset="kubernetes", destructive=True, idempotent=True, timeout=60)
async def k8s_delete(
    kind: Kind,
    name: K8sName,
    namespace: Namespace | None = None,
    propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
) -> ToolOutput:
    """Delete one object (dependents per propagation)."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    ns = _namespace(info, namespace)
    before = await ctx.kube.get(info, name, ns)
    await ctx.kube.delete(info, name, ns, dry_run=ctx.preview, propagation_policy=propagation)
    facts = _facts(info, name, ns, uid=before["metadata"].get("uid"), propagation=propagation)
    what = _where(info, name, ns)
    _, diff = _preview(before, None, f"{info.kind.lower()}/{name}")
    text = f"{'Would delete' if ctx.preview else 'Deleted'} {what} (propagation {propagation})."
    return ToolOutput.capped(
        text,
        diff=diff if ctx.preview else None,
        data={**facts, "dry_run": ctx.preview, "changes": [f"{info.kind.lower()}/{name}: deleted"]},
    )


async def _set_unschedulable(node: str, value: bool) -> ToolOutput:
    ctx = current()
    info = await ctx.kube.resolve("nodes", "v1")
    before = await ctx.kube.get(info, node)
    after = await ctx.kube.patch(info, node, {"spec": {"unschedulable": value or None}}, dry_run=ctx.preview)
    verb = "cordon" if value else "uncordon"
    return _mutation_output(
        verb=verb,
        what=f"node {node}",
        before=before,
        after=after,
        label=f"node/{node}",
        data={"kind": "Node", "name": node, "namespace": None, "unschedulable": value},
    )


@bosun_tool(toolset="kubernetes", idempotent=True, timeout=30)
async def k8s_cordon(name: K8sName) -> ToolOutput:
    """Mark a node unschedulable."""
    return await _set_unschedulable(name, True)


@bosun_tool(toolset="kubernetes", idempotent=True, timeout=30)
async def k8s_uncordon(name: K8sName) -> ToolOutput:
    """Mark a node schedulable again."""
    return await _set_unschedulable(name, False)


@bosun_tool(toolset="kubernetes", destructive=True, idempotent=True, timeout=330)
async def k8s_drain(
    name: K8sName,
    delete_emptydir_data: bool = False,
    force: bool = False,
    timeout_seconds: Annotated[int, Field(ge=0, le=300)] = 120,
) -> ToolOutput:
    """Cordon a node and evict its pods (policy/v1 Eviction; DaemonSet pods skipped)."""
    ctx = current()
    kube = ctx.kube
    node_info = await kube.resolve("nodes", "v1")
    pods_info = await kube.resolve("pods", "v1")
    node = await kube.get(node_info, name)
    listing = await kube.list(pods_info, field_selector=f"spec.nodeName={name}")
    evict, skipped, problems = drain_plan(
        listing.get("items", []), force=force, delete_emptydir_data=delete_emptydir_data
    )
    if problems:
        raise ToolError(f"cannot drain node {name}: " + "; ".join(problems))
    cordon = await kube.patch(node_info, name, {"spec": {"unschedulable": True}}, dry_run=ctx.preview)
    changes = field_changes(node, cordon)
    evicted: list[str] = []
    for pod in evict:
        meta = pod["metadata"]
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        }
        if ctx.preview:
            body["deleteOptions"] = {"dryRun": ["All"]}
        path = pods_info.path(meta["namespace"], meta["name"], "eviction")
        await kube.request("POST", path, json=body, params={"dryRun": "All" if ctx.preview else None})
        evicted.append(f"{meta['namespace']}/{meta['name']}")
    remaining: list[str] = []
    if not ctx.preview and evicted:
        deadline = time.monotonic() + timeout_seconds
        while True:
            now = await kube.list(pods_info, field_selector=f"spec.nodeName={name}")
            remaining = sorted(
                {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in now.get("items", [])}
                & set(evicted)
            )
            if not remaining or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1)
    verb = "Would drain" if ctx.preview else "Drained"
    lines = [
        f"{verb} node {name}:",
        *[f"  {c}" for c in changes],
        *[f"  evict {p}" for p in evicted],
        *[f"  skip {s}" for s in skipped],
    ]
    if remaining:
        lines.append(f"  still terminating after {timeout_seconds}s: {', '.join(remaining)}")
    facts = {
        "kind": "Node",
        "name": name,
        "namespace": None,
        "evicted": evicted,
        "skipped": skipped,
        "remaining": remaining,
        "dry_run": ctx.preview,
        "changes": changes + [f"evict {p}" for p in evicted],
    }
    diff = yaml_diff(node, cordon, f"node/{name}") + "".join(f"\n- pod {p} (evicted)" for p in evicted)
    return ToolOutput.capped("\n".join(lines), diff=diff if ctx.preview else None, data=facts)


@bosun_tool(toolset="kubernetes", idempotent=False, timeout=30)
async def k8s_create_job_from_cronjob(
    cronjob: K8sName, namespace: Namespace, job_name: K8sName | None = None
) -> ToolOutput:
    """Start a Job now from a CronJob's template (like kubectl create job --from)."""
    ctx = current()
    cron_info = await ctx.kube.resolve("cronjobs", "batch/v1")
    job_info = await ctx.kube.resolve("jobs", "batch/v1")
    cron = await ctx.kube.get(cron_info, cronjob, namespace)
    name = job_name or f"{cronjob}-manual-{int(time.time()) % 100000}"[:63]
    template = cron["spec"]["jobTemplate"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template.get("metadata", {}).get("labels", {}),
            "annotations": {
                **template.get("metadata", {}).get("annotations", {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cronjob,
                    "uid": cron["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    created = await ctx.kube.create(job_info, job, namespace, dry_run=ctx.preview)
    return _mutation_output(
        verb="create",
        what=f"job {name} in namespace {namespace} from cronjob {cronjob}",
        before=None,
        after=created,
        label=f"job/{name}",
        data={"kind": "Job", "name": name, "namespace": namespace, "cronjob": cronjob},
    )


@bosun_tool(toolset="kubernetes", idempotent=False, timeout=30)
async def k8s_run_pod(
    name: K8sName,
    namespace: Namespace,
    image: Image,
    command: Command | None = None,
    restart_policy: Literal["Never", "OnFailure", "Always"] = "Never",
) -> ToolOutput:
    """Create a one-off pod running image (command is an argument list)."""
    ctx = current()
    info = await ctx.kube.resolve("pods", "v1")
    container: dict[str, Any] = {"name": name.replace(".", "-")[:63].rstrip("-"), "image": image}
    if command:
        container["command"] = command
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"run": name[:63], "app.kubernetes.io/managed-by": "bosun"},
        },
        "spec": {"restartPolicy": restart_policy, "containers": [container]},
    }
    created = await ctx.kube.create(info, pod, namespace, dry_run=ctx.preview)
    return _mutation_output(
        verb="create",
        what=f"pod {name} in namespace {namespace}",
        before=None,
        after=created,
        label=f"pod/{name}",
        data={"kind": "Pod", "name": name, "namespace": namespace, "image": image},
    )


@bosun_tool(toolset="kubernetes", idempotent=False, timeout=130)
async def k8s_exec(
    name: K8sName,
    namespace: Namespace,
    command: Command,
    container: DnsLabel | None = None,
    timeout_seconds: Annotated[int, Field(ge=1, le=120)] = 30,
) -> ToolOutput:
    """Run a command (argument list, no shell) in a pod's container."""
    ctx = current()
    pods = await ctx.kube.resolve("pods", "v1")
    pod = await ctx.kube.get(pods, name, namespace)
    containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    target = container or (containers[0] if containers else None)
    if target not in containers:
        raise ToolError(
            f"pod {name} in namespace {namespace} has no container {target}; "
            f"containers: {', '.join(containers)}"
        )
    facts = {"kind": "Pod", "name": name, "namespace": namespace, "container": target, "command": command}
    if ctx.preview:
        # The websocket upgrade is a GET that the API server also authorizes as create: both are needed.
        attrs = {"resource": "pods", "subresource": "exec", "namespace": namespace, "name": name}
        answers = [await ctx.kube.access_review({**attrs, "verb": verb}) for verb in ("get", "create")]
        allowed = all(answer.get("allowed") for answer in answers)
        text = f"Would run {command!r} in pod {name} container {target} in namespace {namespace}"
        if not allowed:
            text += " (but the identity may not get and create pods/exec there: it would be Forbidden)"
        return ToolOutput(
            text=text,
            diff=f"exec pod/{name} -c {target} -- {shlex.join(command)}",
            data={**facts, "dry_run": True, "allowed": allowed, "changes": []},
        )
    result = await ctx.kube.exec(namespace, name, command, container=target, timeout=timeout_seconds)
    if result.error:
        raise ToolError(f"exec in pod {name} container {target} failed: {result.error}")
    text = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
    text += f"\n[exit code {result.exit_code}]"
    return ToolOutput.capped(text, cap=LOG_CAP, keep="tail", data={**facts, "exit_code": result.exit_code})
