"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's ``tools/leaderelection`` does it,
so that ``operator.replicas: 2`` has one actor and a hot standby.

Why a Lease and not kopf's peering: peering pauses a lower-priority operator while a higher one is alive,
but replicas of one Deployment have the same priority, and then every peer warns and freezes (nobody
works); a paused peer resumes when the other's record is older than its ``lifetime`` (60 s by default),
with no renew deadline on the other side, so nothing makes the old one stop before the new one starts.
A Lease is the Kubernetes primitive for exactly this, the one kube-controller-manager and every
controller-runtime operator use, visible with ``kubectl get lease``, and needs no extra CRD.

Fencing, in time: a leader that could not renew for ``renew_deadline`` stops acting by exiting the
process (as controller-runtime does; the pod restarts as a standby), while a standby takes over only after
it has seen the same record unchanged for ``lease_duration`` on its own clock (observed time, never the
timestamps written by another machine, so clock skew does not matter). ``lease_duration >
renew_deadline`` is the margin. The exit is taken by the event loop's renew task, and also by a watchdog
thread, so a loop blocked by a long synchronous call cannot keep acting past the deadline. Below this, the
operator's status writes are conditional on resourceVersion and each call is recorded ``Executing``
before it starts, so even two actors at once could not run one call twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bosun_tools.client.kube import KubeClient, KubeError

from bosun.config import LeaderElection

log = logging.getLogger("bosun")

JITTER = 1.2
"""client-go's ``JitterFactor``: a standby retries every ``retry_period`` to ``2.2 * retry_period``."""
RELEASED_DURATION = 1
"""A released Lease says it lasts 1 s (client-go's ``ReleaseOnCancel``), so the standby takes it at once."""


def micro_time(at: datetime) -> str:
    """The API's MicroTime format."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease's spec that leader election reads and writes."""

    holder: str = ""
    duration: int = 0
    acquired: str | None = None
    renewed: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LeaseRecord:
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquired=spec.get("acquireTime"),
            renewed=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "acquireTime": self.acquired,
            "renewTime": self.renewed,
            "leaseTransitions": self.transitions,
        }

    def claimed(self, identity: str, duration: float, at: datetime) -> LeaseRecord:
        """This record taken (or renewed) by ``identity``: a new holder counts a transition and gets a new
        acquire time; a renewal changes only the renew time and duration."""
        stamp = micro_time(at)
        seconds = max(1, round(duration))
        if self.holder == identity:
            return replace(self, duration=seconds, renewed=stamp)
        transitions = self.transitions + 1 if self.holder else self.transitions
        return LeaseRecord(identity, seconds, stamp, stamp, transitions)

    def released(self, at: datetime) -> LeaseRecord:
        """Free for the next candidate at once (holder empty, 1 s)."""
        stamp = micro_time(at)
        return replace(self, holder="", duration=RELEASED_DURATION, acquired=stamp, renewed=stamp)


@dataclass(frozen=True)
class Observation:
    """A record as this process last saw it change, and when (its own monotonic clock)."""

    record: LeaseRecord
    at: float

    def held_by_another(self, identity: str, now: float) -> bool:
        """client-go's ``isLeaseValid`` for someone else: a holder whose record this process has seen
        unchanged for less than its duration still leads."""
        holder = self.record.holder
        return bool(holder) and holder != identity and now < self.at + self.record.duration


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """Keep the first time a record was seen; a changed record (a renewal) restarts its clock."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def candidate_identity() -> str:
    """client-go's ``hostname_uuid``: the pod name (``kubectl get lease`` shows who leads) plus a part
    unique to this process, so a restarted container never mistakes its predecessor's lease for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeadershipLost(Exception):
    """Another process holds the Lease now, or it could not be renewed in time."""


class LeaderElector:
    """Acquire, renew and release one Lease. ``on_lost`` is called once, from the event loop or from the
    watchdog thread, when leadership is lost; the operator's ``on_lost`` exits the process."""

    def __init__(
        self,
        kube: KubeClient,
        settings: LeaderElection,
        *,
        identity: str | None = None,
        on_lost: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.identity = identity or candidate_identity()
        self._on_lost = on_lost
        self._clock = clock
        self._observed: Observation | None = None
        self._renewed_at: float | None = None
        self._lost = threading.Event()
        self._lost_lock = threading.Lock()
        self._watchdog: threading.Thread | None = None
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases/{settings.name}"
        self.where = f"lease {settings.namespace}/{settings.name}"

    @property
    def is_leader(self) -> bool:
        return self._renewed_at is not None and not self._lost.is_set()

    @property
    def holder(self) -> str:
        """Who leads, as last seen ("" when nobody does or the Lease was never read)."""
        return self._observed.record.holder if self._observed is not None else ""

    # ----- the protocol -------------------------------------------------------------------------------

    async def _attempt(self, timeout: float) -> bool:  # noqa: ASYNC109 -- one bound for the API calls
        """client-go's ``tryAcquireOrRenew``: one read, then one conditional write when the Lease is free,
        expired or already ours. A 409 means another candidate wrote first."""
        try:
            body = await self.kube.request("GET", self.path, timeout=timeout)
        except KubeError as exc:
            if exc.status != 404:
                raise
            return await self._create(timeout)
        old = LeaseRecord.from_spec(body.get("spec") or {})
        self._observed = observe(self._observed, old, self._clock())
        if self.is_leader and old.holder != self.identity:
            raise LeadershipLost(f"{self.where} is held by {old.holder or 'nobody'} now")
        if self._observed.held_by_another(self.identity, self._clock()):
            return False
        new = old.claimed(self.identity, self.settings.lease_duration, datetime.now(UTC))
        return await self._write(body, new, timeout)

    async def _create(self, timeout: float) -> bool:  # noqa: ASYNC109
        record = LeaseRecord().claimed(self.identity, self.settings.lease_duration, datetime.now(UTC))
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
            "spec": record.spec(),
        }
        return await self._send("POST", self.path.rsplit("/", 1)[0], lease, record, timeout)

    async def _write(self, body: dict[str, Any], record: LeaseRecord, timeout: float) -> bool:  # noqa: ASYNC109
        """PUT with the resourceVersion just read: the API server refuses it if anyone wrote meanwhile."""
        lease = {**body, "spec": {**(body.get("spec") or {}), **record.spec()}}
        return await self._send("PUT", self.path, lease, record, timeout)

    async def _send(
        self,
        method: str,
        path: str,
        lease: dict[str, Any],
        record: LeaseRecord,
        timeout: float,  # noqa: ASYNC109
    ) -> bool:
        """One write of the Lease; False when another writer got there first (409)."""
        sent = self._clock()
        try:
            await self.kube.request(method, path, json=lease, timeout=timeout)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        self._took(record, sent)
        return True

    def _took(self, record: LeaseRecord, sent: float) -> None:
        """The renew deadline counts from when the write was *sent*: it landed after that, and a standby
        can only have seen it after it landed, so however slow the answer was, the leader stops at least
        ``lease_duration - renew_deadline`` before any standby may take over."""
        self._observed = Observation(record, sent)
        self._renewed_at = sent

    # ----- the loops ----------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until this process holds the Lease (a standby spends its life here)."""
        settings = self.settings
        waiting_for = None
        while True:
            try:
                if await self._attempt(timeout=settings.renew_deadline):
                    log.info("%s acquired as %s; this replica now acts", self.where, self.identity)
                    return
                if self.holder != waiting_for:
                    waiting_for = self.holder
                    log.info(
                        "%s is held by %s; this replica (%s) stands by",
                        self.where,
                        waiting_for,
                        self.identity,
                    )
            except KubeError as exc:
                log.warning("%s: could not read or take it (%s); retrying", self.where, exc)
            await asyncio.sleep(settings.retry_period * (1 + random.random() * JITTER))

    async def keep(self) -> None:
        """Renew every ``retry_period`` until leadership is lost; then call ``on_lost`` and return.

        A renewal that fails is retried until ``renew_deadline`` after the last success; the watchdog
        thread enforces the same deadline should this loop not get to run."""
        settings = self.settings
        self._start_watchdog()
        while not self._lost.is_set():
            await asyncio.sleep(settings.retry_period)
            renewed_at = self._renewed_at
            assert renewed_at is not None, "keep() runs only after acquire()"
            remaining = renewed_at + settings.renew_deadline - self._clock()
            try:
                if remaining <= 0:
                    raise LeadershipLost(f"{self.where} not renewed within {settings.renew_deadline:g}s")
                async with asyncio.timeout(remaining):
                    renewed = await self._attempt(timeout=remaining)
                if not renewed:
                    log.warning("%s: renewal refused (written by another meanwhile); retrying", self.where)
            except LeadershipLost as exc:
                self.lost(str(exc))
            except (KubeError, TimeoutError) as exc:
                log.warning("%s: renewal failed (%s); retrying until the renew deadline", self.where, exc)

    def lost(self, reason: str) -> None:
        """Record the loss and tell ``on_lost`` (once, whoever notices first)."""
        with self._lost_lock:
            if self._lost.is_set():
                return
            self._lost.set()
        self._on_lost(reason)

    def _start_watchdog(self) -> None:
        def watch() -> None:
            settings = self.settings
            while not self._lost.wait(settings.retry_period / 2):
                renewed_at = self._renewed_at
                if renewed_at is not None and self._clock() > renewed_at + settings.renew_deadline:
                    self.lost(
                        f"{self.where} not renewed within {settings.renew_deadline:g}s "
                        "(the event loop did not get to renew it)"
                    )

        self._watchdog = threading.Thread(target=watch, name="bosun-lease-watchdog", daemon=True)
        self._watchdog.start()

    async def release(self) -> None:
        """Hand the Lease over at a graceful stop (client-go's ``ReleaseOnCancel``): call only once this
        process has stopped acting. Best effort: if it fails, the standby waits for expiry instead."""
        self._lost.set()
        if self._renewed_at is None:
            return
        try:
            body = await self.kube.request("GET", self.path, timeout=self.settings.retry_period)
            record = LeaseRecord.from_spec(body.get("spec") or {})
            if record.holder == self.identity:
                await self.kube.request(
                    "PUT",
                    self.path,
                    json={**body, "spec": {**body["spec"], **record.released(datetime.now(UTC)).spec()}},
                    timeout=self.settings.retry_period,
                )
                log.info("%s released; the standby takes over now", self.where)
        except KubeError as exc:
            log.warning(
                "%s: could not release it (%s); the standby takes over when it expires", self.where, exc
            )
