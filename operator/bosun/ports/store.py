"""The operator's own API access (its ServiceAccount, never a requester's): task and grant status, grants
recorded from annotations, Events, and the checks that decide whether identities can be trusted."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo
from bosun_tools.identity import Identity

from bosun.api import identity_policies as identity
from bosun.api.models import API_VERSION, EVENT_MESSAGE_CAP, AgentTaskStatus, ApprovalGrantStatus

log = logging.getLogger("bosun")


class TaskConflict(Exception):
    """The task changed since this process read it: the reconcile must start again from a fresh read."""


class Store:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self._infos: dict[str, ResourceInfo] = {}
        self.instance = os.environ.get("HOSTNAME") or socket.gethostname()

    async def _info(self, resource: str) -> ResourceInfo:
        if resource not in self._infos:
            self._infos[resource] = await self.kube.resolve(resource)
        return self._infos[resource]

    async def tasks(self) -> ResourceInfo:
        return await self._info("agenttasks.bosun.dev")

    async def grants(self) -> ResourceInfo:
        return await self._info("approvalgrants.bosun.dev")

    async def get_task(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(await self.tasks(), name, namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def task_page(
        self, namespace: str | None, size: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``size`` tasks of ``namespace`` (None: every namespace), the first page of a listing or
        the one ``after`` names, and the token of the next page (None after the last)."""
        listing = await self.kube.list(await self.tasks(), namespace, limit=size, continue_from=after)
        items: list[dict[str, Any]] = listing.get("items", [])
        return items, (listing.get("metadata") or {}).get("continue") or None

    async def write_task_status(
        self, namespace: str, name: str, status: AgentTaskStatus, resource_version: str
    ) -> dict[str, Any]:
        """Replace the whole status, only if the task is still at ``resource_version``; returns the object
        the server stored, so the caller continues from it and knows the write is durable before acting.

        The precondition is the object's ``resourceVersion`` inside the patch: the API server refuses a
        write based on any other version with 409 Conflict (``TaskConflict``), so a second process or a
        delayed reconcile can never overwrite a newer status, and two writers can never both mark the same
        step ``Executing``."""
        ops: list[dict[str, Any]] = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": status.wire()},
        ]
        return await self._patch_task(namespace, name, ops, {409}, subresource="status")

    async def remove_task_annotations(
        self, namespace: str, name: str, expected: dict[str, str]
    ) -> dict[str, Any]:
        """Remove annotations only while they still hold ``expected`` (JSON-patch ``test``), so an approval
        someone set after the operator read the object is never removed unseen (``TaskConflict``)."""
        ops: list[dict[str, Any]] = []
        for key, value in expected.items():
            path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
            ops += [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        return await self._patch_task(namespace, name, ops, {409, 422})

    async def _patch_task(
        self,
        namespace: str,
        name: str,
        ops: list[dict[str, Any]],
        conflicts: set[int],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON patch of the task; ``conflicts`` are the HTTP codes meaning "it changed meanwhile"
        (409 for a resourceVersion, 422 for a failed ``test``)."""
        try:
            return await self.kube.patch(
                await self.tasks(), name, ops, namespace, patch_type="json", subresource=subresource
            )
        except KubeError as exc:
            if exc.status in conflicts:
                raise TaskConflict(
                    f"agenttask {namespace}/{name} changed under this operator: {exc.message}"
                ) from exc
            raise

    async def delete_task(self, namespace: str, name: str) -> None:
        try:
            await self.kube.delete(await self.tasks(), name, namespace)
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def list_grants(self, namespace: str) -> list[dict[str, Any]]:
        listing = await self.kube.list(await self.grants(), namespace)
        items: list[dict[str, Any]] = listing.get("items", [])
        return sorted(items, key=_grant_order)

    async def get_grants(self, namespace: str, names: Iterable[str]) -> list[dict[str, Any]]:
        """The named grants as stored now, in creation order (deleted ones left out). A GET by name is a
        quorum read of one object; a LIST right after a write waits for the watch cache to catch up."""
        found = []
        for name in names:
            try:
                found.append(await self.kube.get(await self.grants(), name, namespace))
            except KubeError as exc:
                if exc.status != 404:
                    raise
        return sorted(found, key=_grant_order)

    async def write_grant_status(self, namespace: str, name: str, status: ApprovalGrantStatus) -> None:
        await self.kube.patch(
            await self.grants(),
            name,
            [{"op": "add", "path": "/status", "value": status.wire()}],
            namespace,
            patch_type="json",
            subresource="status",
        )

    async def mark_grant_executed(self, namespace: str, name: str, at: datetime) -> None:
        """Record on the grant (its status, which only the operator writes) that what it approved ran."""
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.kube.patch(
            await self.grants(), name, {"status": {"executedAt": stamp}}, namespace, subresource="status"
        )

    async def create_grant(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create (or find, after a crash between create and annotation removal) an operator grant."""
        try:
            return await self.kube.create(await self.grants(), body, namespace)
        except KubeError as exc:
            if exc.status == 409:
                return await self.kube.get(await self.grants(), body["metadata"]["name"], namespace)
            raise

    async def post_event(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        """A core/v1 Event about ``obj``; best effort, an audit trail entry must never stop the work.
        True when the Event exists now (posted, or posted before), False when it could not be posted.

        With ``event_id`` the Event's name is derived from it, so posting the same entry again (after a
        crash between the status write that recorded it and its post) creates nothing new."""
        meta = obj["metadata"]
        moment = at or datetime.now(UTC)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        flat = " ".join(message.split())
        text = flat if len(flat) <= EVENT_MESSAGE_CAP else flat[: EVENT_MESSAGE_CAP - 1] + "…"
        prefix = meta["name"][:200].rstrip(".-")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{prefix}.{event_id or uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", API_VERSION),
                "kind": obj.get("kind", "AgentTask"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": text,
            "type": type_,
            "source": {"component": "bosun"},
            "reportingComponent": "bosun.dev/operator",
            "reportingInstance": self.instance[:128],
            "action": reason,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "count": 1,
        }
        try:
            await self.kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", json=event)
        except KubeError as exc:
            if exc.status != 409:
                log.warning("could not post Event %s about %s: %s", reason, meta["name"], exc)
                return False
        return True

    async def namespace_annotations(self, name: str) -> dict[str, str]:
        """The Namespace object's annotations (the per-namespace approval policy); {} if it does not exist."""
        try:
            namespace = await self.kube.request("GET", f"/api/v1/namespaces/{name}")
        except KubeError as exc:
            if exc.status == 404:
                return {}
            raise
        annotations: dict[str, str] = (namespace.get("metadata") or {}).get("annotations") or {}
        return annotations

    async def may_create_grants(self, user: Identity, namespace: str) -> bool:
        """RBAC's answer for an annotation approver: the same right a grant's creator needed."""
        answer = await self.kube.access_review(
            {"verb": "create", "group": "bosun.dev", "resource": "approvalgrants", "namespace": namespace},
            subject=user,
        )
        return bool(answer.get("allowed"))

    async def may_get_task(self, user: Identity, namespace: str, name: str) -> bool:
        """RBAC's answer for a requester about one task (``spec.followUpOf``, ``spec.replayOf``): whether
        they could read it by hand, asked before the operator reads it with its own rights."""
        answer = await self.kube.access_review(
            {
                "verb": "get",
                "group": "bosun.dev",
                "resource": "agenttasks",
                "namespace": namespace,
                "name": name,
            },
            subject=user,
        )
        return bool(answer.get("allowed"))

    async def whoami(self) -> Identity:
        review = await self.kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        info = review.get("status", {}).get("userInfo", {})
        return Identity(info.get("username", ""), tuple(info.get("groups", [])))

    async def missing_policies(self) -> list[str]:
        """Identity policies not installed (empty: annotations stamped at admission can be trusted). They
        are read through the newest version of the API the cluster serves; none served is itself missing."""
        served = {
            info.version
            for info in await self.kube.resources()
            if info.group == "admissionregistration.k8s.io" and info.plural == "mutatingadmissionpolicies"
        }
        version = identity.policy_api_version(served)
        if version is None:
            return [identity.NO_POLICY_API]
        missing = []
        api = f"/apis/admissionregistration.k8s.io/{version}"
        for name in identity.policy_names():
            for kind in ("mutatingadmissionpolicies", "mutatingadmissionpolicybindings"):
                try:
                    await self.kube.request("GET", f"{api}/{kind}/{name}")
                except KubeError as exc:
                    if exc.status in (403, 404):
                        missing.append(f"{kind}/{name}")
                        continue
                    raise
        return missing


def _grant_order(grant: Mapping[str, Any]) -> tuple[str, str]:
    """Grants are judged in the order they were created (ties by name)."""
    return grant["metadata"].get("creationTimestamp", ""), grant["metadata"]["name"]
