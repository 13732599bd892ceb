"""What the read and write tools of the Kubernetes toolset share: the workload types and revisions they
both speak of, and how they name the object a call is about."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from bosun_tools.client.kube import KubeClient, ResourceInfo
from bosun_tools.errors import ToolError
from bosun_tools.workloads import dig, pod_spec_path

REVISION = "deployment.kubernetes.io/revision"
LOG_CAP = 24_000  # pod logs and exec output: more than other reads, kept from the end

Workload = Literal["deployment", "statefulset", "daemonset"]
Revision = Annotated[int, Field(ge=0, le=1_000_000)]


def namespace_for(info: ResourceInfo, namespace: str | None, *, required: bool = True) -> str | None:
    if not info.namespaced:
        return None
    if namespace is None and required:
        raise ToolError(f"{info.qualified} are namespaced: pass namespace")
    return namespace


def object_phrase(info: ResourceInfo, name: str, namespace: str | None) -> str:
    place = f" in namespace {namespace}" if namespace else ""
    return f"{info.kind.lower()} {name}{place}"


def object_facts(info: ResourceInfo, name: str, namespace: str | None, **more: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"kind": info.kind, "name": name, "namespace": namespace}
    facts.update(more)
    return facts


def container_images(obj: dict[str, Any]) -> dict[str, str]:
    spec = dig(obj, pod_spec_path(obj.get("kind", "")))
    return {c["name"]: c.get("image", "") for c in spec.get("containers", [])}


async def revisions(
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
