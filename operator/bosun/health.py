"""Startup checks and the probe endpoints (``BOSUN_HEALTH_PORT``: ``/healthz`` and ``/readyz``).

The checks run before kopf starts, so a pod that cannot work says so instead of looking healthy: it stays
unready, logs what to fix, and checks again with backoff (installing the missing CRDs, policies or RBAC is
enough; no restart needed). They are: credentials load and the API server accepts them (not
``system:anonymous``), the CRDs are served, the operator's RBAC allows what it does, and the identity
admission policies are installed (without them the requester and approver annotations are whatever a
client wrote, so nobody could be acted as or counted as an approver).

Readiness: ready once the checks passed and, on the leader, kopf's startup finished and its watches on
AgentTasks and ApprovalGrants run. A standby (leader election) is ready too: it passed the same checks and
is ready to take over. There is no Service in front of the operator, so readiness routes nothing; what
reads it is a rolling update (a new pod must become ready for the old one to go, and with two replicas the
new pod is a standby) and the PodDisruptionBudget, which should count a healthy standby as available.

Liveness: the event loop answers, and on the leader kopf is still running. These endpoints are served by
the process itself rather than by kopf's liveness endpoint (``kopf.operator(liveness_endpoint=...)``),
because kopf serves that only once its startup handlers finished — never in a standby or while a startup
check fails, where a liveness probe would restart a healthy pod over and over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from bosun_tools.client.kube import Credentials, KubeClient, KubeError
from bosun_tools.identity import Identity

from bosun.config import OperatorConfig
from bosun.ports.store import Store

log = logging.getLogger("bosun")

CRDS = ("agenttasks.bosun.dev", "approvalgrants.bosun.dev")


class StartupProblem(Exception):
    """A startup check failed; the message says what to fix."""


@dataclass(frozen=True)
class Started:
    """What the checks established, handed to kopf's startup handler."""

    kube: KubeClient
    store: Store
    identity: Identity


def required_access(config: OperatorConfig) -> list[dict[str, str]]:
    """The operator's own API rights, as SelfSubjectAccessReview attributes (the chart's ClusterRole)."""
    where = [{"namespace": n} for n in config.namespaces] or [{}]
    rights = [
        {"verb": verb, "group": "bosun.dev", "resource": resource}
        for resource in ("agenttasks", "approvalgrants")
        for verb in ("list", "watch", "patch")
    ]
    rights += [
        {"verb": "patch", "group": "bosun.dev", "resource": "agenttasks", "subresource": "status"},
        {"verb": "create", "group": "", "resource": "events"},
    ]
    wanted = [right | scope for right in rights for scope in where]
    # The watch of Namespaces (their approval-policy annotations) is cluster-wide whatever BOSUN_NAMESPACES
    # says: a task's target namespaces may lie outside the watched ones.
    wanted += [{"verb": verb, "group": "", "resource": "namespaces"} for verb in ("list", "watch")]
    lease = config.leader_election
    if lease is not None:
        leases = {"group": "coordination.k8s.io", "resource": "leases", "namespace": lease.namespace}
        wanted += [
            leases | {"verb": "create"},
            leases | {"verb": "get", "name": lease.name},
            leases | {"verb": "update", "name": lease.name},
        ]
    return wanted


def _describe(right: dict[str, str]) -> str:
    resource = right["resource"] + (f"/{right['subresource']}" if right.get("subresource") else "")
    group = f".{right['group']}" if right.get("group") else ""
    named = f" {right['name']}" if right.get("name") else ""
    where = f" in namespace {right['namespace']}" if right.get("namespace") else " in all namespaces"
    return f"{right['verb']} {resource}{group}{named}{where}"


async def _check(kube: KubeClient, host: str, config: OperatorConfig) -> Started:
    store = Store(kube)
    try:
        identity = await store.whoami()
    except KubeError as exc:
        if exc.status == 401:
            raise StartupProblem(
                f"the API server at {host} rejected this process's credentials (401 {exc.reason}): the "
                "token is expired, revoked or for another cluster; check the ServiceAccount token mount or "
                "KUBECONFIG"
            ) from None
        if exc.status == 403:
            raise StartupProblem(
                f"the API server at {host} refused to say who this process is ({exc.message}); if it names "
                "system:anonymous, no credentials reached it: mount the ServiceAccount token "
                "(automountServiceAccountToken) or put a user with a token or client certificate in "
                "KUBECONFIG"
            ) from None
        raise StartupProblem(f"cannot reach the API server at {host}: {exc}") from None
    if identity.user == "system:anonymous" or not identity.user:
        raise StartupProblem(
            f"the API server at {host} sees this process as system:anonymous: no credentials reached it; "
            "mount the ServiceAccount token (automountServiceAccountToken) or fix the user in KUBECONFIG"
        )
    # The rest is asked at once, so a start waits for the slowest answer rather than for their sum; what is
    # wrong is still reported in this order: the CRDs, then the rights, then the policies.
    rights = required_access(config)
    answers = await asyncio.gather(
        *(kube.resolve(crd) for crd in CRDS),
        *(kube.access_review(right) for right in rights),
        store.missing_policies(),
        return_exceptions=True,
    )
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, KubeError):
            raise answer
    for crd, found in zip(CRDS, answers, strict=False):
        if isinstance(found, KubeError) and found.status == 404:
            raise StartupProblem(
                f"the CRD {crd} is not installed: kubectl apply -f crds/ (helm installs it from the chart's "
                "crds/ folder unless --skip-crds was given)"
            )
        if isinstance(found, KubeError):
            raise StartupProblem(f"cannot read API discovery from {host}: {found}")
    reviews, missing = answers[len(CRDS) : -1], answers[-1]
    refused = []
    for right, review in zip(rights, reviews, strict=True):
        if isinstance(review, BaseException):
            raise review
        if not cast(dict[str, Any], review).get("allowed"):
            refused.append(_describe(right))
    if isinstance(missing, BaseException):
        raise missing
    missing = cast(list[str], missing)
    if refused:
        raise StartupProblem(
            f"Forbidden: {identity.user} may not {'; '.join(refused)}; grant it these rights (the "
            "chart's ClusterRole <release>-bosun-operator holds them, and its Role on leases when leader "
            "election is on)"
        )
    if missing:
        raise StartupProblem(
            f"the identity admission policies are missing or unreadable ({', '.join(missing)}), so "
            "requesters and approvers cannot be trusted: install them (kubectl apply -f "
            "crds/identity-policy.yaml, or the chart with identityPolicies.install=true) and let the "
            "operator get them"
        )
    return Started(kube, store, identity)


def credentials_from_environment() -> Credentials:
    """``$KUBECONFIG``, else the pod's ServiceAccount (as ``KubeClient.from_kubeconfig`` chooses)."""
    path = os.environ.get("KUBECONFIG")
    return Credentials.from_kubeconfig(path) if path else Credentials.in_cluster()


async def startup_checks(
    config: OperatorConfig, connect: Callable[[], Credentials] = credentials_from_environment
) -> Started:
    """Run every check once; raises ``StartupProblem`` (the client is closed then)."""
    try:
        credentials = connect()
    except Exception as exc:  # kubernetes' ConfigException, an exec plugin failing, an unreadable file
        raise StartupProblem(
            f"no Kubernetes credentials ({exc}): run in a pod with its ServiceAccount token mounted "
            "(automountServiceAccountToken: true), or set KUBECONFIG to a kubeconfig file"
        ) from None
    kube = KubeClient.from_credentials(credentials)
    try:
        return await _check(kube, credentials.host, config)
    except BaseException:
        await kube.aclose()
        raise


class Health:
    """What the probes answer; ``bosun.__main__`` moves it from starting to standby or leader."""

    def __init__(self) -> None:
        self.problem: str | None = "starting: the startup checks have not finished"
        self.role = "starting"
        self.holder: Callable[[], str] = str
        self.watching: Callable[[], bool] = bool
        self.running: Callable[[], bool] = lambda: True

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.problem is not None:
            return False, {"ready": False, "role": self.role, "problem": self.problem}
        if self.role == "standby":
            return True, {"ready": True, "role": "standby", "leader": self.holder()}
        if self.role == "leader" and not self.watching():
            return False, {"ready": False, "role": "leader", "problem": "kopf's watches are not running yet"}
        return True, {"ready": True, "role": self.role}

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        if not self.running():
            return False, {"alive": False, "problem": "kopf stopped while this process leads"}
        return True, {"alive": True, "role": self.role}

    async def serve(self, port: int) -> web.AppRunner:
        def answer(probe: Callable[[], tuple[bool, dict[str, Any]]]) -> Any:
            async def handle(request: web.Request) -> web.Response:
                ok, body = probe()
                return web.Response(
                    status=200 if ok else 503, text=json.dumps(body), content_type="application/json"
                )

            return handle

        app = web.Application()
        app.add_routes(
            [web.get("/healthz", answer(self.liveness)), web.get("/readyz", answer(self.readiness))]
        )
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", port).start()  # the kubelet probes the pod's IP
        log.info("serving /healthz and /readyz on port %d", port)
        return runner
