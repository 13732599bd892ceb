"""What the bench needs of the API server, without kubectl's process start in any timed path: a small
async client with the admin kubeconfig (httpx), a watch that records when each object was first seen in
each ``status.phase``, and the CPU time and memory of a process from ``/proc``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import yaml

from tests.waiting import eventually_async


class Api:
    """The API server as the kubeconfig's current user (client certificates or a bearer token)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        ctx = ssl.create_default_context()
        if "certificate-authority-data" in cluster:
            ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif "certificate-authority" in cluster:
            ctx.load_verify_locations(cafile=cluster["certificate-authority"])
        headers = {"Accept": "application/json"}
        if "client-certificate-data" in user:
            with tempfile.TemporaryDirectory() as scratch:
                cert, key = Path(scratch, "client.crt"), Path(scratch, "client.key")
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                ctx.load_cert_chain(cert, key)
        elif "client-certificate" in user:
            ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        if "token" in user:
            headers["Authorization"] = f"Bearer {user['token']}"
        self.http = httpx.AsyncClient(
            base_url=cluster["server"],
            verify=ctx,
            headers=headers,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        content = json.dumps(body).encode() if body is not None else None
        deadline = time.monotonic() + 60
        response = await self.http.request(method, path, content=content, **kwargs)
        # 429 "storage is (re)initializing": a CRD just established is not served yet; as it says, retry.
        while response.status_code == 429 and time.monotonic() < deadline:
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            response = await self.http.request(method, path, content=content, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}

    async def create(self, path: str, body: dict[str, Any]) -> Any:
        return await self.call("POST", path, body, headers={"Content-Type": "application/json"})

    async def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self.call("PATCH", path, body, headers={"Content-Type": "application/merge-patch+json"})


def collection(group: str, version: str, plural: str, namespace: str) -> str:
    """The URL path of a namespaced custom resource collection."""
    return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"


async def crd_established(api: Api, name: str, within: float = 60.0) -> None:
    async def established() -> bool:
        try:
            crd = await api.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        except RuntimeError:
            return False
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    await eventually_async(f"CRD {name} to be Established", established, within, interval=0.1)


async def purge(api: Api, path: str, within: float = 60.0) -> None:
    """Delete every object of the collection at ``path``, finalizers first (their operator is stopped),
    and wait until none is left."""
    for item in (await api.call("GET", path))["items"]:
        if item["metadata"].get("finalizers"):
            with contextlib.suppress(RuntimeError):  # already gone
                name = item["metadata"]["name"]
                await api.merge_patch(f"{path}/{name}", {"metadata": {"finalizers": None}})
    await api.call("DELETE", path)

    async def empty() -> bool:
        return not (await api.call("GET", path))["items"]

    await eventually_async(f"every object of {path} to be gone", empty, within, interval=0.1)


class PhaseWatch:
    """Watches one collection and records, per object name, the ``time.perf_counter()`` at which this
    process first saw it in each ``status.phase`` (the watch event's arrival, milliseconds after the
    write; the API server's own timestamps have one-second resolution)."""

    def __init__(self, api: Api, path: str, wrong: Iterable[str] = ()) -> None:
        self.api = api
        self.path = path
        self.wrong = frozenset(wrong)
        self.first: dict[str, dict[str, float]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.error: BaseException | None = None
        self._bump = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PhaseWatch:
        version = await self._relist()
        self._task = asyncio.create_task(self._run(version), name=f"watch {self.path}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _record(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        self.status[name] = status
        phase = status.get("phase")
        if phase:
            self.first.setdefault(name, {}).setdefault(phase, time.perf_counter())
        self._wake()

    def _wake(self) -> None:
        self._bump.set()
        self._bump = asyncio.Event()

    async def _relist(self) -> str:
        listing = await self.api.call("GET", self.path)
        for item in listing["items"]:
            self._record(item)
        return str(listing["metadata"]["resourceVersion"])

    async def _run(self, version: str) -> None:
        params = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "3600"}
        failures = 0
        try:
            while True:
                try:
                    async with self.api.http.stream(
                        "GET",
                        self.path,
                        params={**params, "resourceVersion": version},
                        timeout=httpx.Timeout(30.0, read=None),
                    ) as response:
                        if response.status_code != 200:
                            await response.aread()
                            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
                        async for line in response.aiter_lines():
                            if not line.strip():
                                continue
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":  # 410 Gone: too old; list again
                                version = await self._relist()
                                break
                            version = obj["metadata"]["resourceVersion"]
                            if event["type"] in ("ADDED", "MODIFIED"):
                                self._record(obj)
                    failures = 0
                except (httpx.TransportError, RuntimeError) as exc:
                    failures += 1
                    if failures > 5:
                        raise RuntimeError(f"the watch of {self.path} keeps failing: {exc}") from exc
                    await asyncio.sleep(0.2 * failures)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
            self._wake()

    def phase(self, name: str) -> str | None:
        phase = self.status.get(name, {}).get("phase")
        return str(phase) if phase is not None else None

    async def reached(
        self,
        names: Iterable[str],
        phase: str,
        *,
        within: float = 120.0,
        check: Callable[[], None] = lambda: None,
    ) -> dict[str, float]:
        """When each of ``names`` was first seen in ``phase``. Fails at once when one of them reaches a
        phase of ``wrong`` instead, when ``check`` raises (the operator died), or after ``within`` s."""
        wanted = list(names)
        deadline = time.monotonic() + within
        while True:
            if self.error is not None:
                raise RuntimeError(f"watch of {self.path} failed: {self.error}")
            done = {n: self.first[n][phase] for n in wanted if phase in self.first.get(n, {})}
            if len(done) == len(wanted):
                return done
            for name in wanted:
                now = self.phase(name)
                if name not in done and now in self.wrong and now != phase:
                    detail = json.dumps(self.status.get(name, {}))[:1500]
                    raise RuntimeError(f"{name} reached {now} instead of {phase}; status: {detail}")
            check()
            left = deadline - time.monotonic()
            if left <= 0:
                missing = [n for n in wanted if n not in done]
                phases = ", ".join(f"{n}={self.phase(n)}" for n in missing[:8])
                raise TimeoutError(
                    f"timed out after {within:.0f}s: {len(missing)} of {len(wanted)} objects of "
                    f"{self.path} did not reach {phase} (now: {phases})"
                )
            bump = self._bump
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bump.wait(), min(left, 1.0))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat`` utime + stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settled(pid: int, within: float = 15.0, quiet: float = 0.3) -> None:
    """Wait until ``pid`` has used no CPU for ``quiet`` seconds (its work after the last observed write,
    such as Events, is then counted), or ``within`` seconds have passed (a process with timers never is
    completely idle; that is no error)."""
    deadline = time.monotonic() + within
    last, still_since = cpu_seconds(pid), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = cpu_seconds(pid)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return


LIST_AFTER_WRITE_SAMPLES = 20


class ListAfterWrite(NamedTuple):
    """p50 seconds of a LIST of pods right after a write, three ways (``list_after_write``)."""

    back_to_back: float
    """consistent, less than 100 ms after the previous consistent LIST"""
    spaced: float
    """consistent, the write made ``gap`` seconds after the previous sample"""
    cached: float
    """from the watch cache as it stands (``resourceVersion=0``)"""


async def list_after_write(api: Api, namespace: str, gap: float) -> ListAfterWrite:
    """p50 seconds of a LIST of pods right after a write to another resource (a ConfigMap): consistent, as
    kubectl and Bosun's tools send it, both back to back and spaced by ``gap`` seconds, and served from the
    watch cache as it stands (``resourceVersion=0``).

    Since Kubernetes 1.31 a consistent LIST is answered from the watch cache once the cache has caught up
    with etcd's current revision; when the listed resource has seen no change since the write, the cache
    only learns that from etcd's next progress notification. The API server asks etcd for one when a
    consistent read is waiting, at most once per 100 ms (``progressRequestPeriod`` in k8s.io/apiserver
    pkg/storage/cacher/progress/watch_progress.go, a timer restarted after each request). A consistent
    LIST less than 100 ms after the previous one waits for the next tick (back to back); one after an idle
    gap longer than that is served once the request it triggers at once is answered (spaced)."""
    pods = f"/api/v1/namespaces/{namespace}/pods"
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    back_to_back: list[float] = []
    spaced: list[float] = []
    cached: list[float] = []

    async def sample(samples: list[float], tag: str, params: dict[str, str]) -> None:
        name = f"bench-list-{len(samples)}-{tag}"
        await api.create(configmaps, {"metadata": {"name": name}})
        start = time.perf_counter()
        await api.call("GET", pods, params=params)
        samples.append(time.perf_counter() - start)
        await api.call("DELETE", f"{configmaps}/{name}")

    for _ in range(LIST_AFTER_WRITE_SAMPLES):
        await asyncio.sleep(gap)  # idle since the last consistent LIST (see compare.ARRIVAL_GAP)
        await sample(spaced, "s", {})
        await sample(back_to_back, "c", {})  # a few ms after the spaced one: within its 100 ms
        await sample(cached, "q", {"resourceVersion": "0"})
    return ListAfterWrite(
        statistics.median(back_to_back), statistics.median(spaced), statistics.median(cached)
    )
