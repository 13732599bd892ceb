"""Thin async Kubernetes client with impersonation and a preview (dry-run) mode.

Why our own: no maintained Python client sends one ``Impersonate-Group`` header per group, and Bosun must
act with exactly the requester's user *and* groups, or the API server would judge a request by rights the
requester does not have. ``kubernetes.config`` is reused to turn a kubeconfig (or the in-cluster service
account) into host, CA, client certificate and credentials, and its refresh hooks keep bearer tokens
current: :class:`Credentials` is the one place that yields the ``Authorization`` header, for the client,
all its views and the exec websocket (``bosun_tools.client.exec``) alike. The transport is one
``aiohttp`` connection pool (``_Pool``) shared by the client and all its impersonating and previewing
views: aiohttp (kopf's own HTTP client, so already loaded by the operator) costs several times less CPU
per request than httpx, whose pool checked every idle connection's socket on each request, and a request
is most of what the operator does per task (``make bench``: operator CPU per task).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import functools
import json as jsonlib
import os
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode
from urllib.request import getproxies, proxy_bypass

import aiohttp
import yarl
from kubernetes import client as k8s_client
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from bosun_tools.identity import Identity
from bosun_tools.metrics import record_api_error

DEFAULT_TIMEOUT = 30.0
# client-go re-reads a kubeconfig ``tokenFile`` once a minute: a rotated token is used without a restart.
TOKEN_FILE_PERIOD = 60.0
HEADER_REUSE_SECONDS = 1.0
MAX_MATCHES = 1024
"""Names ``resolve`` remembers the answer for (a model may name any)."""
USER_AGENT = "bosun"
"""What the API server's audit log shows as the client, and the field manager of a write that names none
(the User-Agent up to its first "/")."""
MAX_CONNECTIONS = 50
"""Connections to the API server at once, per client and all its views; more requests wait for one."""
WATCH_SECONDS = 300
"""How long the API server keeps one watch open (kubectl's own watches get 30-60 min); a watcher then
watches again from where it was, so a connection that died silently is noticed within this time."""

PatchType = Literal["merge", "strategic", "json", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
# Every verb that can change something; a previewing client sends each of them as a server-side dry run.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


class KubeError(Exception):
    """An API server answer (or transport failure) reduced to what a caller can act on."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Credentials:
    """Where the ``Authorization`` header of every request comes from (None: no token, e.g. a client
    certificate alone), whatever the kubeconfig or the pod uses: a static ``token``, a ``tokenFile``, the
    in-cluster ServiceAccount token, an exec plugin (EKS, GKE, AKS) or an auth provider (OIDC).

    It holds a ``kubernetes.client.Configuration`` filled by the library's own loaders. Their
    ``refresh_api_key_hook`` re-reads the in-cluster token file every minute (projected tokens rotate),
    re-runs an exec plugin shortly before its ``expirationTimestamp`` and refreshes an expiring OIDC token.
    Two things the hooks leave out are done here, as client-go does them: a kubeconfig ``tokenFile`` is
    re-read every ``token_file_period`` seconds (the library reads it once), and a 401 answer reloads the
    credentials once so the request can be retried (a plugin's token may be revoked before it expires).

    Loaders and plugins do blocking file and process I/O, so they run in a worker thread, one at a time:
    concurrent requests that all got a 401 for the same token cause one reload, not one each. A header
    obtained that way is used for ``HEADER_REUSE_SECONDS`` without asking the hooks again: a hop to a
    worker thread per request costs more CPU than the request itself, and a token that expires within
    that second is answered 401, which reloads the credentials and retries.
    """

    def __init__(
        self,
        configuration: Any,
        reload: Callable[[Any], None] | None = None,
        *,
        reread_every: float | None = None,
        namespace: str | None = None,
        acting_as: Identity | None = None,
    ) -> None:
        """``configuration`` is already loaded; ``reload`` loads it again (it is the loader's
        ``load_and_set``), and runs every ``reread_every`` seconds when that is set. ``namespace`` and
        ``acting_as`` are what a kubeconfig context says beyond credentials (see ``from_kubeconfig``)."""
        self.configuration = configuration
        self.namespace = namespace
        """The namespace the kubeconfig's context names: kubectl's default when no ``-n`` is given."""
        self.acting_as = acting_as
        """The user entry's ``as``/``as-groups``, which kubectl impersonates. A client made from these
        credentials does not: a command line client applies it with ``KubeClient.impersonating``."""
        self._reload = reload
        self._reread_every = reread_every if reload is not None else None
        self._next_reread = time.monotonic() + (reread_every or 0.0)
        self._lock = asyncio.Lock()
        self._reused: tuple[float, str | None] | None = None
        """(until when, header): the header last obtained from the loaders."""

    @classmethod
    def from_kubeconfig(
        cls,
        path: str,
        *,
        context: str | None = None,
        token_file_period: float = TOKEN_FILE_PERIOD,
    ) -> Credentials:
        """The credentials of ``context`` (default: the current context) of the kubeconfig file(s) at
        ``path`` (``:``-separated like ``KUBECONFIG``). Refreshed tokens are not written back to the
        files: they belong to the user, not to the server."""
        merged = kube_config.KubeConfigMerger(path).config  # type: ignore[no-untyped-call]
        if merged is None:
            raise ConfigException(f"no kubeconfig at {path}; point KUBECONFIG at an existing kubeconfig file")
        loader = kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
            config_dict=merged, active_context=context, config_base_path=None
        )
        configuration = k8s_client.Configuration()
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        # Only a tokenFile needs a timer: the hooks refresh what expires, and a static token never changes.
        chosen = loader.current_context["context"]
        user_name = chosen.get("user")
        entry = merged["users"].get_with_name(user_name, safe=True) if user_name else None
        user = (entry.safe_get("user") if entry is not None else None) or {}
        period = token_file_period if user.get("tokenFile") else None
        acting_as = Identity(user["as"], tuple(user.get("as-groups") or ())) if user.get("as") else None
        return cls(
            configuration,
            loader.load_and_set,
            reread_every=period,
            namespace=chosen.get("namespace") or None,
            acting_as=acting_as,
        )

    @classmethod
    def in_cluster(
        cls,
        *,
        token_file: str = incluster_config.SERVICE_TOKEN_FILENAME,
        ca_file: str = incluster_config.SERVICE_CERT_FILENAME,
        environ: Mapping[str, str] = os.environ,
    ) -> Credentials:
        """The pod's ServiceAccount (API server address from ``KUBERNETES_SERVICE_HOST``/``_PORT``)."""
        loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=token_file, cert_filename=ca_file, try_refresh_token=True, environ=environ
        )
        configuration = k8s_client.Configuration()
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        return cls(configuration, loader.load_and_set)

    @classmethod
    def cluster_only(cls, credentials: Credentials) -> Credentials:
        """The cluster of ``credentials`` (its address and CA) with no credentials at all: requests made
        with it are anonymous unless a token is added (``forwarded``). A console that forwards people's
        tokens is built on it, so that nothing of its own can authenticate them, not even a client
        certificate (which the API server would prefer to any token)."""
        configuration = copy.copy(credentials.configuration)
        configuration.api_key = {}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
        configuration.cert_file = configuration.key_file = None
        configuration.username = configuration.password = None
        return cls(configuration)

    @classmethod
    def forwarded(cls, cluster: Credentials, token: str) -> Credentials:
        """A person's own bearer ``token``, as an authenticating proxy forwarded it to a console, for the
        cluster of ``cluster`` (nothing of its credentials is kept). It is sent as given and never
        refreshed: a 401 is the person's to answer by signing in again."""
        forwarded = cls.cluster_only(cluster)
        forwarded.configuration.api_key = {"authorization": f"Bearer {token}"}
        return forwarded

    @property
    def host(self) -> str:
        host: str = self.configuration.host
        return host

    async def authorization(self) -> str | None:
        """The header for the next request, refreshed first if it is due."""
        reused = self._reused
        if reused is not None and time.monotonic() < reused[0]:
            return reused[1]
        header = await self._locked(self._current)
        self._reused = (time.monotonic() + HEADER_REUSE_SECONDS, header)
        return header

    async def renewed(self, rejected: str | None) -> str | None:
        """After the API server answered 401 to ``rejected``: the credentials loaded again (unless another
        request already did that), or None when they are unchanged and a retry would be refused too."""
        self._reused = None
        renewed = await self._locked(functools.partial(self._renew, rejected))
        self._reused = None  # asked again by the next request, which sees what the reload brought
        return renewed

    async def _locked(self, work: Callable[[], str | None]) -> str | None:
        async with self._lock:
            try:
                return await asyncio.to_thread(work)
            except Exception as exc:  # the loaders raise ConfigException, OSError, ValueError, KeyError...
                raise KubeError(
                    401,
                    "Unauthorized",
                    f"cannot obtain credentials for the API server at {self.host}: {exc}; fix the user "
                    "entry of the kubeconfig (token, tokenFile, exec plugin) or the pod's service account",
                ) from exc

    def _header(self) -> str | None:
        # The loaders store the token under "BearerToken"; "authorization" is where a hand-built
        # Configuration(api_key={"authorization": ...}) keeps it. Both run the refresh hook first.
        # Token files usually end in a newline (``kubectl create token > file``): client-go trims it, the
        # library does not, and httpx refuses a header value containing one.
        header: str | None = self.configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return header.strip() if header else None

    def _load(self) -> None:
        if self._reload is None:
            return
        self._reload(self.configuration)
        if self._reread_every is not None:
            self._next_reread = time.monotonic() + self._reread_every

    def _current(self) -> str | None:
        if self._reread_every is not None and time.monotonic() >= self._next_reread:
            self._load()
        return self._header()

    def _renew(self, rejected: str | None) -> str | None:
        current = self._header()
        if current == rejected:
            self._load()
            current = self._header()
        return None if current == rejected else current


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


class _Pool:
    """The API server connections of a client and all its views: one aiohttp session, made on first use
    in the running event loop (aiohttp binds a session to the loop it was made in; a client used from
    another loop later gets a session of its own there).

    As httpx did: redirects are not followed, and ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and
    ``NO_PROXY`` decide, once, whether the API server is reached through a proxy. No cookies are kept.
    Every connection, up to ``MAX_CONNECTIONS`` (more than reconciles run at once, ``BOSUN_PARALLEL_TASKS``),
    is kept alive when idle, so a burst of tasks does not make a TLS handshake per request; unlike httpx's,
    this pool does not look at each idle connection's socket on every request."""

    def __init__(self, host: str, ssl_context: ssl.SSLContext | bool) -> None:
        self.host = host.rstrip("/")
        self._ssl = ssl_context
        self.proxy = env_proxy(self.host)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=self._ssl)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            )
            self._session, self._loop = session, loop
        return session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()


def env_proxy(host: str) -> str | None:
    """The proxy the environment names for ``host`` (None: connect directly), as httpx and client-go
    read it: ``HTTPS_PROXY`` or ``HTTP_PROXY`` by scheme, else ``ALL_PROXY``, unless ``NO_PROXY`` covers
    the host."""
    url = yarl.URL(host)
    proxies = getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or proxy_bypass(url.host or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


@dataclass
class _Shared:
    """State shared by a client and all its impersonating views (one pool, one discovery cache)."""

    credentials: Credentials
    ssl_context: ssl.SSLContext | bool
    http: _Pool
    resources: list[ResourceInfo] | None = None
    discovery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    matches: dict[tuple[str, str | None], ResourceInfo | None] = field(default_factory=dict)
    """``resolve``'s answers from the resources ``matched_in`` (discovery read again: asked again)."""
    matched_in: list[ResourceInfo] | None = None

    def match(self, served: list[ResourceInfo], wanted: str, api_version: str | None) -> ResourceInfo | None:
        if served is not self.matched_in or len(self.matches) >= MAX_MATCHES:
            self.matches, self.matched_in = {}, served
        key = (wanted, api_version)
        if key not in self.matches:
            self.matches[key] = _match(served, wanted, api_version)
        return self.matches[key]


def _ssl_context(cfg: Any) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file and cfg.key_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


def _status_error(status: int, reason: str | None, content: bytes, method: str, path: str) -> KubeError:
    reason = reason or "Error"
    message = content.decode("utf-8", errors="replace").strip()[:2000]
    message = message or f"{method} {path} returned HTTP {status}"
    try:
        body = jsonlib.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or message)
    return KubeError(status, reason.replace(" ", ""), message)


def _text(content: bytes, charset: str | None) -> str:
    """A body as text, in the charset its Content-Type names (UTF-8 when none, or one Python lacks)."""
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def _query_value(value: Any) -> str:
    """A query parameter as httpx wrote it: booleans in lower case, everything else as ``str``."""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


class KubeClient:
    """Async access to one cluster, optionally impersonating an identity, optionally as a preview.

    ``impersonating()`` and ``previewing()`` return views that share the connection pool and the discovery
    cache, so one client per server process is enough. A previewing view (``dry_run``) sends every write
    (POST, PUT, PATCH, DELETE, subresources such as scale and eviction included) with ``dryRun=All``, so
    the API server runs admission and validation and answers with the object as it would be, but stores
    nothing; a tool given such a client cannot change the cluster whatever it calls, and no view made from
    it writes for real.
    """

    def __init__(self, shared: _Shared, identity: Identity | None = None, *, dry_run: bool = False) -> None:
        self._shared = shared
        self.identity = identity
        self.dry_run = dry_run
        self._impersonation: list[tuple[str, str]] = []
        if identity is not None:
            self._impersonation.append(("Impersonate-User", identity.user))
            self._impersonation.extend(("Impersonate-Group", g) for g in identity.impersonated_groups)

    # ----- construction -------------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None
    ) -> KubeClient:
        """A client for the kubeconfig at ``path`` (default ``$KUBECONFIG``), or without either for the
        pod's own ServiceAccount."""
        config_path = os.fspath(path) if path is not None else os.environ.get("KUBECONFIG")
        if config_path:
            return cls.from_credentials(Credentials.from_kubeconfig(config_path, context=context))
        return cls.from_credentials(Credentials.in_cluster())

    @classmethod
    def from_configuration(cls, cfg: Any) -> KubeClient:
        """A client for a ``kubernetes.client.Configuration`` built by hand (its own refresh hook, if any,
        still runs before every request)."""
        return cls.from_credentials(Credentials(cfg))

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> KubeClient:
        """Client certificates and the CA are read once, here; tokens are asked of ``credentials`` before
        every request."""
        ctx = _ssl_context(credentials.configuration)
        return cls(_Shared(credentials=credentials, ssl_context=ctx, http=_Pool(credentials.host, ctx)))

    def impersonating(self, identity: Identity | None) -> KubeClient:
        """A view acting as ``identity`` (None: the client's own credentials), in this client's mode."""
        return KubeClient(self._shared, identity, dry_run=self.dry_run)

    def forwarding(self, token: str) -> KubeClient:
        """A view that authenticates with ``token`` (``Credentials.forwarded``) instead of this client's
        credentials, sharing its connection pool: a console serving many people over one pool, each request
        made as the person whose token it carries. It never impersonates."""
        if self.credentials.configuration.cert_file:
            raise ValueError(
                "cannot forward a token over a client-certificate connection: the certificate would "
                "authenticate instead; build the client from Credentials.cluster_only"
            )
        credentials = Credentials.forwarded(self.credentials, token)
        return KubeClient(_Shared(credentials, self._shared.ssl_context, self._shared.http))

    def previewing(self) -> KubeClient:
        """A view, as the same identity, whose every write is a server-side dry run."""
        return KubeClient(self._shared, self.identity, dry_run=True)

    async def aclose(self) -> None:
        await self._shared.http.aclose()

    @property
    def credentials(self) -> Credentials:
        return self._shared.credentials

    @property
    def ssl_context(self) -> ssl.SSLContext | bool:
        """The TLS settings of the API server connection (False: not verified), for other transports."""
        return self._shared.ssl_context

    # ----- low level ----------------------------------------------------------------------------------

    def headers(self, authorization: str | None, accept: str | None = None) -> list[tuple[str, str]]:
        """Accept, Authorization and impersonation headers of a request made as this client, in order
        (impersonated groups are one header each), for this client's requests and the exec websocket."""
        items: list[tuple[str, str]] = [("Accept", accept)] if accept else []
        if authorization:
            items.append(("Authorization", authorization))
        items.extend(self._impersonation)
        return items

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- per-request httpx timeout, not a deadline
        raw: bool = False,
        accept: str = "application/json",
    ) -> Any:
        """One API call; raises KubeError for any non-2xx answer or transport failure.

        A 401 answer is retried once if the credentials, loaded again, differ (an expired or rotated
        token). ``raw=True`` returns the body as text (pod logs are plain text, not JSON). On a previewing
        client every write is sent as a dry run (:func:`_as_dry_run`).
        """
        if self.dry_run and method.upper() in WRITE_METHODS:
            params, json = _as_dry_run(params, json)
        content = jsonlib.dumps(json).encode() if json is not None else None
        limit = timeout if timeout is not None else DEFAULT_TIMEOUT
        timeouts = aiohttp.ClientTimeout(total=None, connect=limit, sock_read=limit)
        response = await self._send(method, path, params, content, content_type, accept, timeouts)
        try:
            body = await response.read()
        except Exception as exc:
            raise self._transport_error(exc, method, path, limit) from exc
        finally:
            response.release()
        if response.status >= 400:
            raise _status_error(response.status, response.reason, body, method, path)
        if raw:
            return _text(body, response.charset)
        if not body:
            return {}
        return jsonlib.loads(body)

    def _url(self, path: str, params: Mapping[str, Any] | None) -> yarl.URL:
        """The URL of ``path`` (already quoted where names may need it) with ``params`` (None values left
        out) on the API server, below the path of its address if it has one (an API server behind a
        proxy, such as Rancher's)."""
        query = urlencode(
            [(k, _query_value(v)) for k, v in (params or {}).items() if v is not None], quote_via=quote
        )
        return yarl.URL(f"{self._shared.http.host}{path}?{query}" if query else self._shared.http.host + path)

    def _transport_error(self, exc: BaseException, method: str, path: str, limit: float) -> KubeError:
        """A request that got no answer (a timeout, a broken connection, a refused one) as a KubeError."""
        if isinstance(exc, TimeoutError):
            record_api_error(method, 504)
            return KubeError(504, "Timeout", f"{method} {path} got no answer within {limit:g}s")
        if isinstance(exc, aiohttp.ClientError | OSError | ValueError):
            record_api_error(method, 503)
            host = self._shared.credentials.host
            return KubeError(503, "ServiceUnavailable", f"cannot reach the API server at {host}: {exc}")
        raise exc

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        content_type: str | None,
        accept: str,
        timeouts: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Send one request as this client and return its answer with the body unread (the caller reads
        it and releases the answer); a 401 answer is sent once more with renewed credentials."""
        credentials = self._shared.credentials
        pool = self._shared.http
        url = self._url(path, params)
        session = pool.session()
        limit = timeouts.sock_read or timeouts.connect or DEFAULT_TIMEOUT

        async def send(authorization: str | None) -> aiohttp.ClientResponse:
            headers = self.headers(authorization, accept)
            if content is not None:
                headers.append(("Content-Type", content_type or "application/json"))
            try:
                return await session.request(
                    method,
                    url,
                    data=content,
                    headers=headers,
                    timeout=timeouts,
                    allow_redirects=False,
                    proxy=pool.proxy,
                )
            except Exception as exc:
                raise self._transport_error(exc, method, path, limit) from exc

        authorization = await credentials.authorization()
        response = await send(authorization)
        if response.status == 401:
            renewed = await credentials.renewed(authorization)
            if renewed is not None:
                with contextlib.suppress(Exception):
                    await response.read()  # so that its connection is reused
                response.release()
                response = await send(renewed)
        if response.status >= 400:
            record_api_error(method, response.status)
        return response

    async def watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        resource_version: str,
        field_selector: str | None = None,
        timeout_seconds: int = WATCH_SECONDS,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The changes to ``info`` objects after ``resource_version`` (take a list's, so that nothing
        between the list and the watch is missed), as the API server streams them: ``{"type": ADDED,
        MODIFIED, DELETED or BOOKMARK, "object": ...}``. It ends when the server closes the watch, after
        ``timeout_seconds``; watch again from the last ``resourceVersion`` seen. An ERROR event raises
        KubeError (410 Gone: that version is too old, list again). Close it with ``contextlib.aclosing``
        when stopping early."""
        path = info.path(namespace)
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
        }
        # No event may come for the whole watch: wait for the server's end of it, with a margin.
        silence = aiohttp.ClientTimeout(
            total=None, connect=DEFAULT_TIMEOUT, sock_read=timeout_seconds + DEFAULT_TIMEOUT
        )
        response = await self._send("GET", path, params, None, None, "application/json", silence)
        try:
            if response.status >= 400:
                raise _status_error(response.status, response.reason, await response.read(), "GET", path)
            pending = bytearray()
            async for chunk in response.content.iter_any():
                start = 0
                while (end := chunk.find(b"\n", start)) >= 0:
                    pending += chunk[start:end]
                    start = end + 1
                    line, pending = bytes(pending), bytearray()
                    if line.strip():
                        yield self._watch_event(line, path)
                pending += chunk[start:]
            if bytes(pending).strip():
                yield self._watch_event(bytes(pending), path)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # broken off, or silent too long
            raise KubeError(503, "ServiceUnavailable", f"the watch of {path} broke off: {exc}") from exc
        finally:
            response.close()

    @staticmethod
    def _watch_event(line: bytes, path: str) -> dict[str, Any]:
        event: dict[str, Any] = jsonlib.loads(line)
        if event.get("type") == "ERROR":
            failure = event.get("object") or {}
            raise KubeError(
                int(failure.get("code") or 500),
                str(failure.get("reason") or "Error"),
                str(failure.get("message") or f"the watch of {path} failed"),
            )
        return event

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
            match = self._shared.match(await self.resources(refresh=refresh), wanted, api_version)
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
        continue_from: str | None = None,
    ) -> dict[str, Any]:
        """One listing, or with ``limit`` one page of it; ``continue_from`` is the ``metadata.continue`` of
        the page before. A token expires once etcd compacted the listing's revision (kube-apiserver compacts
        every 5 minutes): the API server then answers 410."""
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_from,
        }
        result: dict[str, Any] = await self.request("GET", info.path(namespace), params=params)
        return result

    async def create(
        self, info: ResourceInfo, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        params = {"fieldManager": "bosun"}
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
        field_manager: str = "bosun",
        force: bool = False,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"fieldManager": field_manager}
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
        propagation_policy: str = "Background",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation_policy,
        }
        result: dict[str, Any] = await self.request("DELETE", info.path(namespace, name), json=body)
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


def _as_dry_run(params: Mapping[str, Any] | None, body: Any) -> tuple[dict[str, Any], Any]:
    """A write's query and body changed so that the API server stores nothing.

    ``?dryRun=All`` covers every write, except where the body carries options of its own that the API
    server reads instead: a DELETE with ``DeleteOptions`` in its body, and an Eviction (a POST to
    ``pods/eviction``) with ``deleteOptions``. Both say ``dryRun: [All]`` as well, or a preview would
    delete or evict for real."""
    query = {**(params or {}), "dryRun": "All"}
    if isinstance(body, Mapping) and body.get("kind") == "DeleteOptions":
        body = {**body, "dryRun": ["All"]}
    elif isinstance(body, Mapping) and body.get("kind") == "Eviction":
        body = {**body, "deleteOptions": {**(body.get("deleteOptions") or {}), "dryRun": ["All"]}}
    return query, body


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
