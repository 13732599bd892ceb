"""Thin async Kubernetes client with impersonation.

Why our own: no maintained Python client sends one ``Impersonate-Group`` header per group, and Bosun must
act with exactly the requester's user *and* groups (safety rule 3). ``kubernetes.config`` is reused only to
turn a kubeconfig (or the in-cluster service account) into host, CA, client certificate and token; the
transport is a shared ``httpx.AsyncClient`` so impersonating clients reuse one connection pool.
"""

from __future__ import annotations

import asyncio
import builtins
import json as jsonlib
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

DEFAULT_TIMEOUT = 30.0

PatchType = Literal["merge", "strategic", "json", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
_AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


@dataclass(frozen=True)
class Identity:
    """Who a request is made as: the user plus every group (without groups RBAC sees only
    ``system:authenticated``, which would silently drop group-granted rights)."""

    user: str
    groups: tuple[str, ...] = ()


class KubeError(Exception):
    """An API server answer (or transport failure) reduced to what a caller can act on."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...]
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` style name, unambiguous across groups."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int | None
    error: str | None


@dataclass
class _Shared:
    """State shared by a client and all its impersonating views (one pool, one discovery cache)."""

    host: str
    configuration: Any
    ssl_context: ssl.SSLContext | bool
    http: httpx.AsyncClient
    resources: list[ResourceInfo] | None = None
    discovery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _ssl_context(cfg: Any) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file and cfg.key_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


def _status_error(response: httpx.Response, method: str, path: str) -> KubeError:
    reason = response.reason_phrase or "Error"
    message = response.text.strip()[:2000] or f"{method} {path} returned HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or message)
    return KubeError(response.status_code, reason.replace(" ", ""), message)


class KubeClient:
    """Async access to one cluster, optionally impersonating an identity.

    ``impersonating()`` returns a view that shares the connection pool and the discovery cache and only
    adds impersonation headers, so one client per server process is enough.
    """

    def __init__(self, shared: _Shared, identity: Identity | None = None) -> None:
        self._shared = shared
        self.identity = identity

    # ----- construction -------------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None
    ) -> KubeClient:
        cfg = k8s_client.Configuration()
        config_path = os.fspath(path) if path is not None else os.environ.get("KUBECONFIG")
        if config_path:
            k8s_config.load_kube_config(
                config_file=config_path, context=context, client_configuration=cfg, persist_config=False
            )  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cls.from_configuration(cfg)

    @classmethod
    def from_configuration(cls, cfg: Any) -> KubeClient:
        ctx = _ssl_context(cfg)
        http = httpx.AsyncClient(
            base_url=cfg.host,
            verify=ctx,
            timeout=httpx.Timeout(DEFAULT_TIMEOUT),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        )
        return cls(_Shared(host=cfg.host, configuration=cfg, ssl_context=ctx, http=http))

    def impersonating(self, identity: Identity | None) -> KubeClient:
        return KubeClient(self._shared, identity)

    async def aclose(self) -> None:
        await self._shared.http.aclose()

    # ----- low level ----------------------------------------------------------------------------------

    def _headers(self, accept: str = "application/json") -> httpx.Headers:
        items: list[tuple[str, str]] = [("Accept", accept)]
        token = self._shared.configuration.get_api_key_with_prefix("authorization")
        if token:
            items.append(("Authorization", token))
        if self.identity is not None:
            items.append(("Impersonate-User", self.identity.user))
            items.extend(("Impersonate-Group", g) for g in self.identity.groups)
        return httpx.Headers(items)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- per-request httpx timeout (contract 1)
        raw: bool = False,
        accept: str = "application/json",
    ) -> Any:
        """One API call; raises KubeError for any non-2xx answer or transport failure.

        ``raw=True`` returns the body as text (pod logs are plain text, not JSON).
        """
        headers = self._headers(accept)
        content: bytes | None = None
        if json is not None:
            content = jsonlib.dumps(json).encode()
            headers["Content-Type"] = content_type or "application/json"
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        limit = timeout if timeout is not None else DEFAULT_TIMEOUT
        try:
            response = await self._shared.http.request(
                method, path, params=clean, content=content, headers=headers, timeout=limit
            )
        except httpx.TimeoutException as exc:
            raise KubeError(504, "Timeout", f"{method} {path} got no answer within {limit:g}s") from exc
        except httpx.TransportError as exc:
            raise KubeError(
                503, "ServiceUnavailable", f"cannot reach the API server at {self._shared.host}: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise _status_error(response, method, path)
        if raw:
            return response.text
        if not response.content:
            return {}
        return response.json()

    # ----- discovery ----------------------------------------------------------------------------------

    async def resources(self, *, refresh: bool = False) -> list[ResourceInfo]:
        """All top-level resources the server serves (preferred versions first), cached per client."""
        shared = self._shared
        async with shared.discovery_lock:
            if shared.resources is None or refresh:
                shared.resources = await self._discover()
            return shared.resources

    async def _discover(self) -> list[ResourceInfo]:
        found: list[ResourceInfo] = []
        for root in ("/api", "/apis"):
            body = await self.request("GET", root, accept=_AGGREGATED_ACCEPT)
            if body.get("kind") == "APIGroupDiscoveryList":
                found.extend(_from_aggregated(body))
            elif root == "/api":
                for version in body.get("versions", []):
                    found.extend(await self._legacy_group("", version))
            else:
                for group in body.get("groups", []):
                    preferred = group.get("preferredVersion", {}).get("version")
                    versions = [v["version"] for v in group.get("versions", [])]
                    ordered = [preferred, *[v for v in versions if v != preferred]] if preferred else versions
                    for version in ordered:
                        found.extend(await self._legacy_group(group["name"], version))
        return found

    async def _legacy_group(self, group: str, version: str) -> list[ResourceInfo]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            body = await self.request("GET", path)
        except KubeError as exc:
            if exc.status in (404, 503):  # an unavailable aggregated API must not break discovery
                return []
            raise
        entries = body.get("resources", [])
        subs: dict[str, list[str]] = {}
        for entry in entries:
            if "/" in entry["name"]:
                parent, sub = entry["name"].split("/", 1)
                subs.setdefault(parent, []).append(sub)
        return [
            ResourceInfo(
                group=group,
                version=version,
                kind=entry["kind"],
                plural=entry["name"],
                namespaced=bool(entry.get("namespaced")),
                verbs=tuple(entry.get("verbs", [])),
                singular=entry.get("singularName") or entry["kind"].lower(),
                short_names=tuple(entry.get("shortNames", [])),
                subresources=tuple(subs.get(entry["name"], [])),
            )
            for entry in entries
            if "/" not in entry["name"]
        ]

    async def resolve(self, kind_or_resource: str, api_version: str | None = None) -> ResourceInfo:
        """Map what a person types (``deploy``, ``Deployment``, ``deployments.apps``,
        ``rollouts.argoproj.io``) to one served resource; core and preferred versions win ties. A miss
        re-reads discovery once (two requests), so a CRD installed a moment ago is found."""
        wanted = kind_or_resource.strip()
        for refresh in (False, True):
            match = _match(await self.resources(refresh=refresh), wanted, api_version)
            if match is not None:
                return match
        where = f" in {api_version}" if api_version else ""
        raise KubeError(
            404,
            "NotFound",
            f'the server has no resource type "{wanted}"{where}; '
            "list the served types with k8s_api_resources",
        )

    # ----- typed verbs --------------------------------------------------------------------------------

    async def get(self, info: ResourceInfo, name: str, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", info.path(namespace, name))
        return result

    async def list(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit}
        result: dict[str, Any] = await self.request("GET", info.path(namespace), params=params)
        return result

    async def create(
        self, info: ResourceInfo, body: dict[str, Any], namespace: str | None = None, *, dry_run: bool = False
    ) -> dict[str, Any]:
        params = {"dryRun": "All" if dry_run else None, "fieldManager": "bosun"}
        result: dict[str, Any] = await self.request("POST", info.path(namespace), params=params, json=body)
        return result

    async def patch(
        self,
        info: ResourceInfo,
        name: str,
        patch: dict[str, Any] | builtins.list[Any],
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        dry_run: bool = False,
        field_manager: str = "bosun",
        force: bool = False,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        if patch_type == "apply" and force:
            params["force"] = "true"
        result: dict[str, Any] = await self.request(
            "PATCH",
            info.path(namespace, name, subresource),
            params=params,
            json=patch,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )
        return result

    async def delete(
        self,
        info: ResourceInfo,
        name: str,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        propagation_policy: str = "Background",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation_policy,
        }
        if dry_run:
            # With a body the API server reads the options from it and ignores ?dryRun: both must say so,
            # or a "preview" deletes for real.
            body["dryRun"] = ["All"]
        params = {"dryRun": "All" if dry_run else None}
        result: dict[str, Any] = await self.request(
            "DELETE", info.path(namespace, name), params=params, json=body
        )
        return result

    # ----- authorization -------------------------------------------------------------------------------

    async def access_review(
        self, attributes: Mapping[str, str | None], *, subject: Identity | None = None
    ) -> dict[str, Any]:
        """The API server's RBAC answer (``status``: allowed, denied, reason) for ``attributes``
        (verb, group, resource, subresource, namespace, name).

        Without ``subject`` it asks about this client's own (possibly impersonated) identity, which every
        authenticated user may do; with ``subject`` it is a SubjectAccessReview for that user and exactly
        those groups, which needs ``create`` on ``subjectaccessreviews.authorization.k8s.io``."""
        spec: dict[str, Any] = {"resourceAttributes": {k: v for k, v in attributes.items() if v is not None}}
        kind = "SelfSubjectAccessReview"
        if subject is not None:
            kind = "SubjectAccessReview"
            spec.update(user=subject.user, groups=list(subject.groups))
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
        path = f"/apis/authorization.k8s.io/v1/{kind.lower()}s"
        answer = await self.request("POST", path, json=review)
        status: dict[str, Any] = answer.get("status", {})
        return status

    # ----- exec (websocket) ---------------------------------------------------------------------------

    async def exec(
        self,
        namespace: str,
        pod: str,
        command: Iterable[str],
        *,
        container: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 -- also bounds the websocket handshake
        max_bytes: int = 65536,
    ) -> ExecResult:
        """Run a command in a container over the pods/exec websocket (v5/v4 channel protocols).

        The command is an argument vector, never a shell string. Output beyond ``max_bytes`` per stream is
        dropped (the caller marks it truncated); the exit code comes from the error channel's Status.
        """
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.typing import Subprotocol

        query: list[tuple[str, str]] = [("stdout", "true"), ("stderr", "true")]
        query.extend(("command", part) for part in command)
        if container:
            query.append(("container", container))
        url = self._shared.host.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        url += f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec?"
        url += urlencode(query)
        headers = [(k, v) for k, v in self._headers().multi_items() if k.lower() != "accept"]
        ssl_arg: ssl.SSLContext | None = None
        if url.startswith("wss://"):
            configured = self._shared.ssl_context
            if isinstance(configured, ssl.SSLContext):
                ssl_arg = configured
            else:
                ssl_arg = ssl.create_default_context()
                ssl_arg.check_hostname = False
                ssl_arg.verify_mode = ssl.CERT_NONE
        out, err, status = bytearray(), bytearray(), b""
        try:
            async with asyncio.timeout(timeout):
                async with connect(
                    url,
                    additional_headers=headers,
                    subprotocols=[Subprotocol("v5.channel.k8s.io"), Subprotocol("v4.channel.k8s.io")],
                    ssl=ssl_arg,
                    max_size=2**22,
                    open_timeout=timeout,
                ) as ws:
                    async for message in ws:
                        frame = message.encode() if isinstance(message, str) else message
                        if not frame:
                            continue
                        channel, payload = frame[0], frame[1:]
                        if channel == 1 and len(out) < max_bytes:
                            out.extend(payload[: max_bytes - len(out)])
                        elif channel == 2 and len(err) < max_bytes:
                            err.extend(payload[: max_bytes - len(err)])
                        elif channel == 3:
                            status += payload
        except TimeoutError as exc:
            raise KubeError(504, "Timeout", f"exec in pod {pod} did not finish within {timeout:g}s") from exc
        except InvalidStatus as exc:
            response = exc.response
            text = response.body.decode(errors="replace") if response.body else ""
            reason, message = str(response.reason_phrase).replace(" ", ""), text.strip()
            try:
                body = jsonlib.loads(text)
                reason, message = str(body.get("reason") or reason), str(body.get("message") or message)
            except ValueError:
                pass
            raise KubeError(response.status_code, reason, message or f"exec into pod {pod} refused") from exc
        except (WebSocketException, OSError) as exc:
            raise KubeError(503, "ServiceUnavailable", f"exec into pod {pod} failed: {exc}") from exc
        return _exec_result(bytes(out), bytes(err), status)


def _exec_result(out: bytes, err: bytes, status: bytes) -> ExecResult:
    exit_code: int | None = None
    error: str | None = None
    if status:
        body = jsonlib.loads(status.decode(errors="replace"))
        if body.get("status") == "Success":
            exit_code = 0
        else:
            causes = body.get("details", {}).get("causes", [])
            codes = [c.get("message") for c in causes if c.get("reason") == "ExitCode"]
            if codes:
                exit_code = int(codes[0])
            else:
                error = str(body.get("message") or body)
    return ExecResult(out.decode(errors="replace"), err.decode(errors="replace"), exit_code, error)


def _from_aggregated(body: dict[str, Any]) -> list[ResourceInfo]:
    found: list[ResourceInfo] = []
    for group in body.get("items", []):
        name = group.get("metadata", {}).get("name", "")
        for version in group.get("versions", []):  # ordered by preference
            if version.get("freshness") == "Stale":
                continue
            for res in version.get("resources", []):
                kind = res.get("responseKind", {}).get("kind", "")
                found.append(
                    ResourceInfo(
                        group=name,
                        version=version["version"],
                        kind=kind,
                        plural=res["resource"],
                        namespaced=res.get("scope") == "Namespaced",
                        verbs=tuple(res.get("verbs", [])),
                        singular=res.get("singularResource") or kind.lower(),
                        short_names=tuple(res.get("shortNames", [])),
                        subresources=tuple(s["subresource"] for s in res.get("subresources", [])),
                    )
                )
    return found


def _match(resources: list[ResourceInfo], wanted: str, api_version: str | None) -> ResourceInfo | None:
    name, _, group = wanted.partition(".")
    lowered = name.lower()
    want_group: str | None = group.lower() if group else None
    want_version: str | None = None
    if api_version:
        g, _, v = api_version.rpartition("/")
        want_group, want_version = g.lower(), v
    for info in resources:
        if want_group is not None and info.group.lower() != want_group:
            continue
        if want_version is not None and info.version != want_version:
            continue
        names = {info.plural, info.singular, info.kind.lower(), *info.short_names}
        if lowered in names:
            return info
    return None
