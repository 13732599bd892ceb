"""The plugin's connection to the API server: kubectl's flags, the operator's credential path, and the
reads, writes and watches the commands make.

Credentials come from ``bosun_tools.client.kube.Credentials``, the operator's own loader, so whatever a
kubeconfig uses (client certificates, tokens, token files, exec plugins, OIDC) works as it does there. The
plugin impersonates only when told to: ``--as``/``--as-group``, or ``as``/``as-groups`` in the kubeconfig's
user entry, as kubectl does. A refusal of the API server becomes ``NotAllowed`` or ``NotFound``, naming what
was refused, so the command line can say what to ask for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun_tools.client.kube import Credentials, KubeClient, KubeError, ResourceInfo
from bosun_tools.identity import Identity
from kubernetes.config.config_exception import ConfigException

from bosun.api.models import GROUP, VERSION
from bosun.cli.render import not_allowed

AGENT_TASKS = ResourceInfo(GROUP, VERSION, "AgentTask", "agenttasks", namespaced=True, verbs=())
APPROVAL_GRANTS = ResourceInfo(GROUP, VERSION, "ApprovalGrant", "approvalgrants", namespaced=True, verbs=())
EVENTS = ResourceInfo("", "v1", "Event", "events", namespaced=True, verbs=())
FIELD_MANAGER = "kubectl-bosun"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


class UsageError(Exception):
    """The command line cannot be acted on; the message says what to change."""


class NotAllowed(Exception):
    """RBAC refused a request: the verb, the resource and the namespace (None: all of them), and what the
    API server said; who was refused is asked afterwards (``whoami``), only when it is to be told."""

    def __init__(self, verb: str, resource: str, namespace: str | None, server: str) -> None:
        super().__init__(server)
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        self.server = server

    def told(self, user: str | None) -> str:
        """The refusal as ``user`` (None: "you") is told it: what they may not do where, and whom to ask
        for which role (``render.not_allowed``)."""
        return not_allowed(user, self.verb, self.resource, self.namespace, self.server)


class NotFound(Exception):
    """The named object does not exist (or no longer does) in the namespace."""

    def __init__(self, kind: str, name: str, namespace: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} not found")
        self.kind = kind
        self.name = name
        self.namespace = namespace


def default_kubeconfig() -> str | None:
    """kubectl's choice: ``$KUBECONFIG`` (``:``-separated files), else ``~/.kube/config`` when it exists."""
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    home = Path.home() / ".kube" / "config"
    return str(home) if home.exists() else None


@dataclass
class Connection:
    """One user's access to one cluster, in one namespace (the default for commands without ``-A``)."""

    client: KubeClient
    namespace: str

    @classmethod
    def open(
        cls,
        *,
        kubeconfig: str | None,
        context: str | None,
        namespace: str | None,
        as_user: str | None,
        as_groups: Sequence[str],
    ) -> Connection:
        """The connection kubectl would make with these flags; the namespace is ``-n``, else the
        context's, else ``default``."""
        if as_groups and not as_user:
            raise UsageError("--as-group needs --as: name the user to act as, as kubectl requires")
        path = kubeconfig or default_kubeconfig()
        try:
            if path:
                credentials = Credentials.from_kubeconfig(path, context=context)
                context_namespace = credentials.namespace
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                credentials = Credentials.in_cluster()
                context_namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
            else:
                raise UsageError(
                    "no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config"
                )
        except (ConfigException, OSError) as exc:
            raise UsageError(f"cannot load the kubeconfig {path or '(in-cluster)'}: {exc}") from exc
        identity = Identity(as_user, tuple(as_groups)) if as_user else credentials.acting_as
        client = KubeClient.from_credentials(credentials).impersonating(identity)
        return cls(client, namespace or context_namespace or "default")

    async def aclose(self) -> None:
        await self.client.aclose()

    # ----- reads and writes ---------------------------------------------------------------------------

    async def get(self, info: ResourceInfo, name: str) -> dict[str, Any]:
        with _refusals("get", info, self.namespace, name):
            return await self.client.get(info, name, self.namespace)

    async def list(self, info: ResourceInfo, *, all_namespaces: bool = False) -> dict[str, Any]:
        namespace = None if all_namespaces else self.namespace
        with _refusals("list", info, namespace):
            return await self.client.list(info, namespace)

    async def create(self, info: ResourceInfo, body: dict[str, Any]) -> dict[str, Any]:
        with _refusals("create", info, self.namespace):
            created: dict[str, Any] = await self.client.request(
                "POST", info.path(self.namespace), params={"fieldManager": FIELD_MANAGER}, json=body
            )
            return created

    async def whoami(self) -> str | None:
        """The user the API server authenticates these requests as (impersonation applied), or None when
        it will not say."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            answer = await self.client.request("POST", SELF_SUBJECT_REVIEWS, json=review)
        except KubeError:
            return None
        user: str | None = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
        return user

    # ----- watches ------------------------------------------------------------------------------------

    async def changes(
        self,
        info: ResourceInfo,
        *,
        all_namespaces: bool = False,
        name: str | None = None,
        field_selector: str | None = None,
        current: bool = True,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Every version of the objects (only the one called ``name``, when given) from now on, as
        (ADDED|MODIFIED|DELETED, object): first those that exist (unless ``current`` is False), then each
        change as the API server streams it. A watch the server ends is resumed where it was. One whose
        version is too old (410 Gone, e.g. after etcd compacted) starts over from a fresh list, of which
        only what differs from what was seen is yielded, as an informer does; an object deleted during
        that gap is not reported. Close it with ``contextlib.aclosing`` when stopping early, so the
        watch's connection closes at once."""
        namespace = None if all_namespaces else self.namespace
        selectors = [
            *([f"metadata.name={name}"] if name else []),
            *([field_selector] if field_selector else []),
        ]
        selector = ",".join(selectors) or None
        seen: dict[str, str] = {}  # uid -> resourceVersion as last yielded or listed: news after a 410
        while True:
            with _refusals("list", info, namespace):
                listing = await self.client.list(info, namespace, field_selector=selector)
            listed = {_uid(item): _version(item) for item in listing.get("items", [])}
            if current:
                for item in listing.get("items", []):
                    if seen.get(_uid(item)) != _version(item):
                        yield "ADDED" if _uid(item) not in seen else "MODIFIED", item
            seen, current = listed, True
            version = str(listing["metadata"]["resourceVersion"])
            try:
                while True:
                    with _refusals("watch", info, namespace):
                        async with contextlib.aclosing(
                            self.client.watch(
                                info, namespace, resource_version=version, field_selector=selector
                            )
                        ) as events:
                            async for event in events:
                                kind, obj = event["type"], event["object"]
                                version = _version(obj)
                                if kind == "BOOKMARK":
                                    continue
                                if kind == "DELETED":
                                    seen.pop(_uid(obj), None)
                                else:
                                    seen[_uid(obj)] = version
                                yield kind, obj
            except KubeError as exc:
                if exc.status != 410:
                    raise


def _uid(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("uid"))


def _version(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


@contextlib.contextmanager
def _refusals(
    verb: str, info: ResourceInfo, namespace: str | None, name: str | None = None
) -> Iterator[None]:
    """403 and 404 answers as ``NotAllowed`` and ``NotFound``, naming what was asked."""
    try:
        yield
    except KubeError as exc:
        if exc.status == 403:
            raise NotAllowed(verb, info.qualified, namespace, exc.message) from exc
        if exc.status == 404 and name is not None and namespace is not None:
            raise NotFound(info.kind.lower(), name, namespace) from exc
        raise
