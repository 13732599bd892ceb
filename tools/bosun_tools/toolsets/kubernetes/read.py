"""Kubernetes toolset, read-only tools: everything through the API (never the kubectl binary), as the
caller's identity.

Read paths render server-side Tables (the same columns kubectl shows, CRD printer columns included) and
send every object through ``redact`` first.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from pydantic import Field

from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo
from bosun_tools.errors import ToolError
from bosun_tools.output import LAST_APPLIED, ToolOutput, age, clean, redact, table, to_yaml
from bosun_tools.registry import DnsLabel, K8sName, Kind, Namespace, Selector, bosun_tool, current
from bosun_tools.toolsets.kubernetes.common import (
    LOG_CAP,
    Revision,
    Workload,
    container_images,
    namespace_for,
    object_facts,
    object_phrase,
    revisions,
)

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CHANGE_CAUSE = "kubernetes.io/change-cause"
READ_CAP = 16_000
LOG_FETCH_LIMIT = 4_000_000  # bytes of log lines read from the API server per call

Output = Literal["table", "yaml", "describe"]
Limit = Annotated[int, Field(ge=1, le=500)]


def _kube() -> KubeClient:
    return current().kube


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


@bosun_tool(toolset="kubernetes", read_only=True, timeout=30)
async def k8s_get(
    kind: Kind,
    name: K8sName | None = None,
    namespace: Namespace | None = None,
    label_selector: Selector | None = None,
    field_selector: Selector | None = None,
    limit: Limit = 100,
    output: Output = "table",
) -> ToolOutput:
    """Get an object of any kind, or list them without name; output=describe adds its events.

    Custom resources too; output=yaml gives the whole object. Events are listed as ``kubectl events``
    shows them, newest last, so one tool answers what get, list, describe and events answer in kubectl."""
    kube = _kube()
    info = await kube.resolve(kind)
    if name is None:
        if output == "describe":
            raise ToolError("output=describe needs a name; list without it, then describe one object")
        ns = namespace_for(info, namespace, required=False)
        if info.kind == "Event" and not info.group and output == "table":
            return await _list_events(kube, info, ns, label_selector, field_selector, limit)
        return await _list(kube, info, ns, label_selector, field_selector, limit, output)
    if label_selector or field_selector:
        raise ToolError("a selector lists objects: pass either name or a selector, not both")
    ns = namespace_for(info, namespace)
    if output == "describe":
        return await _describe(kube, info, name, ns)
    if output == "yaml":
        obj = redact(await kube.get(info, name, ns), info.kind)
        return ToolOutput.capped(to_yaml(clean(obj)), cap=READ_CAP, data=object_facts(info, name, ns))
    served = await kube.request("GET", info.path(ns, name), accept=TABLE_ACCEPT)
    text, _ = _render_table(served, namespace_column=False)
    return ToolOutput.capped(text, cap=READ_CAP, data=object_facts(info, name, ns))


async def _list(
    kube: KubeClient,
    info: ResourceInfo,
    ns: str | None,
    label_selector: str | None,
    field_selector: str | None,
    limit: int,
    output: Output,
) -> ToolOutput:
    """The objects of a kind, as ``kubectl get`` lists them (all namespaces without ``ns``)."""
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


async def _list_events(
    kube: KubeClient,
    info: ResourceInfo,
    ns: str | None,
    label_selector: str | None,
    field_selector: str | None,
    limit: int,
) -> ToolOutput:
    """Events as ``kubectl events`` shows them: the newest ``limit``, oldest first, each with its object.
    The newest can only be told once every matching event is read, so the server's own limit (which
    counts in name order) is not used."""
    listing = await kube.list(info, ns, label_selector=label_selector, field_selector=field_selector)
    items = sorted(listing.get("items", []), key=_event_time)[-limit:]
    text = _event_lines(items, with_object=True)
    return ToolOutput.capped(text, cap=READ_CAP, data={"kind": "Event", "namespace": ns, "count": len(items)})


async def _describe(kube: KubeClient, info: ResourceInfo, name: str, ns: str | None) -> ToolOutput:
    """An object's spec and status plus its recent Events, like ``kubectl describe``."""
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
    return ToolOutput.capped(text, cap=READ_CAP, data=object_facts(info, name, ns, events=len(events)))


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
    """Logs of a pod's container.

    The last ``tail`` lines; ``since_seconds``, ``previous`` (the container's last instance) and
    ``container`` narrow them."""
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


@bosun_tool(toolset="kubernetes", group="cluster", read_only=True, timeout=30)
async def k8s_top(
    kind: Literal["pods", "nodes"] = "pods",
    namespace: Namespace | None = None,
    label_selector: Selector | None = None,
) -> ToolOutput:
    """CPU and memory use of pods or nodes (metrics API).

    Read from metrics.k8s.io, so the cluster needs metrics-server."""
    kube = _kube()
    try:
        info = await kube.resolve(kind, "metrics.k8s.io/v1beta1")
        listing = await kube.list(info, namespace if kind == "pods" else None, label_selector=label_selector)
    except KubeError as exc:
        if exc.status in (404, 503):
            raise ToolError(
                "the metrics API (metrics.k8s.io) is not available in this cluster, so usage cannot be "
                "shown; install metrics-server, or read requests/limits with k8s_get output=describe"
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


@bosun_tool(toolset="kubernetes", group="objects", read_only=True, timeout=30)
async def k8s_api_resources(
    group: Annotated[str, Field(pattern=r"^[a-z0-9.-]*$", max_length=253)] | None = None,
) -> ToolOutput:
    """Resource types the cluster serves.

    Name, short names, apiVersion, whether namespaced, and kind; ``group`` keeps one API group."""
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


@bosun_tool(toolset="kubernetes", group="rollback", read_only=True, timeout=330)
async def k8s_rollout_status(
    name: K8sName,
    namespace: Namespace,
    kind: Workload = "deployment",
    wait_seconds: Annotated[int, Field(ge=0, le=300)] = 0,
) -> ToolOutput:
    """Rollout progress of a workload; wait_seconds waits for it."""
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
    facts = object_facts(
        info,
        name,
        namespace,
        complete=complete,
        replicas=obj.get("spec", {}).get("replicas"),
        ready=status.get("readyReplicas", status.get("numberReady")),
        updated=status.get("updatedReplicas"),
        available=status.get("availableReplicas", status.get("numberAvailable")),
        images=container_images(obj),
    )
    return ToolOutput.capped(message, data=facts)


@bosun_tool(toolset="kubernetes", group="rollback", read_only=True, timeout=30)
async def k8s_rollout_history(
    name: K8sName, namespace: Namespace, kind: Workload = "deployment", revision: Revision | None = None
) -> ToolOutput:
    """Revisions of a workload; revision shows one's pod template."""
    kube = _kube()
    info = await kube.resolve(kind)
    obj = await kube.get(info, name, namespace)
    history = await revisions(kube, info, obj)
    if revision:
        match = [h for h in history if h[0] == revision]
        if not match:
            known = ", ".join(str(h[0]) for h in history) or "none"
            raise ToolError(
                f"{object_phrase(info, name, namespace)} has no revision {revision}; revisions: {known}"
            )
        template = redact(match[0][1])
        return ToolOutput.capped(
            f"revision {revision}:\n" + to_yaml(template),
            cap=READ_CAP,
            data=object_facts(info, name, namespace, revision=revision),
        )
    rows = [["REVISION", "CHANGE-CAUSE", "IMAGES"]]
    for rev, template, source in history:
        cause = source["metadata"].get("annotations", {}).get(CHANGE_CAUSE, "<none>")
        images = ",".join(c.get("image", "") for c in template.get("spec", {}).get("containers", []))
        rows.append([str(rev), cause, images])
    facts = object_facts(info, name, namespace, revisions=[h[0] for h in history])
    return ToolOutput.capped(table(rows), cap=READ_CAP, data=facts)


@bosun_tool(toolset="kubernetes", group="cluster", read_only=True, timeout=20)
async def k8s_can_i(
    verb: Annotated[str, Field(pattern=r"^[a-z*]+$", max_length=32)],
    resource: Kind,
    namespace: Namespace | None = None,
    name: K8sName | None = None,
    subresource: DnsLabel | None = None,
) -> ToolOutput:
    """Whether the requester may do verb on resource.

    A SelfSubjectAccessReview as the caller's identity."""
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
