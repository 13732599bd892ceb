"""A preview changes nothing: every registered mutating tool, previewed the way the operator previews it.

Why: an approver decides on what a preview shows, and a human's approval is the only thing that may let a
change happen. A preview that wrote anything (an object, a Helm revision, a Jenkins build) would make the
change before anyone approved it, so "a preview changes nothing" is a safety rule, not a nicety.

What this proves, for each mutating tool in the registry (the list is derived from
``bosun_tools.registry``, so registering a new mutating tool without a case here fails the guard test):
called through ``ToolGateway`` with ``preview=True`` for a task, as the operator does, with arguments that
would change something if executed (each case checks that the preview says what it would change, and a
preview that fails proves nothing, so it must succeed), the call leaves unchanged

- every object of every namespaced kind in the namespace, by resourceVersion and content (nothing
  created, deleted or written), plus the namespace itself, the nodes the cases use and the cluster-scoped
  object the apply case would create;
- the Helm releases of the namespace and the history of the installed release (no revision added);
- the Jenkins double's builds, queue, triggers and the POST requests it received (no build triggered or
  stopped);
- the file the exec case's command would create (kwok runs a fake container's exec as a local process).

The one write a preview may make by design is the holding Secret of a call that carries secret values
(``bosun_tools.sealing``, tested in test_sealing.py); no case here carries a secret value, so the rule
here is absolute (and each case checks that nothing was sealed).

The cases share one namespace set up once (a Deployment with two revisions, a ConfigMap, a Secret, a
suspended CronJob, a Helm release of tests/charts/web with two revisions, Argo Rollouts, an AgentTask with a
holding Secret, two kwok nodes of this module's own) and one Jenkins double: that is safe because each case
compares snapshots taken right before and right after its own call, so a preview that did write is caught
and named by its own case, whatever the order. The setup waits until the namespace is settled, so that
nothing the controllers still do is mistaken for a preview's write.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import localcluster
import pytest
from bosun.ports.gateway import ToolGateway
from bosun_tools.identity import Identity
from bosun_tools.registry import INTERNAL, REGISTRY, load_toolsets
from bosun_tools.sealing import CLEANUP_TOOL, SEALED_FOR, SEALED_TYPE, TASK_API_VERSION, TaskRef
from bosun_tools.settings import TOOLSETS, HelmSettings, JenkinsSettings, ToolSettings

from tests.conftest import ClusterAccess, Kubectl
from tests.fakes.jenkins import FakeJenkins, Parameter
from tests.integration.test_sealing import agenttask_kind
from tests.integration.test_tools_rollouts import PAUSED_AT_STEP_1, STEPS, rollout_crds
from tests.tools_support import deployment, rollout_replicaset
from tests.waiting import eventually

__all__ = ["agenttask_kind", "rollout_crds"]  # module-scoped fixtures shared with those modules

CHART = Path(__file__).resolve().parents[1] / "charts" / "web"
ADMIN = Identity("bosun-preview-admin", ("system:masters",))
"""Who previews: allowed everything, so no refusal stops a tool before the point where it would write."""
DEPLOY = ["team", "deploy"]
OUR_GROUPS = ("argoproj.io", "bosun.dev")
"""Custom resource groups this module creates objects of; other tests' CRDs come and go, so they are not
listed (no case could create one of their objects here anyway)."""
EVENTS = ("events", "events.events.k8s.io")
"""Left out of the snapshot: controllers and kwok write Events on their own schedule about earlier setup
steps, no tool writes one, and a dry run never does."""
TAINT = "bosun.dev/preview-test"


def mutating_tools() -> list[str]:
    """Every registered tool that is not read-only, the internal toolset's included."""
    load_toolsets()
    specs = [*REGISTRY.specs(), *REGISTRY.specs(INTERNAL)]
    return sorted(spec.name for spec in specs if not spec.safety.read_only)


MUTATING = mutating_tools()


# ----- the world the previews act on -----------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    namespace: str
    task: TaskRef
    kinds: tuple[str, ...]
    """Namespaced kinds whose objects are snapshotted."""
    cordon_node: str
    """A node of the cluster itself (from ``kubectl get nodes``), schedulable."""
    drain_node: str
    """A kwok node of this module, schedulable, running one pod of Deployment pinned."""
    cordoned_node: str
    """A kwok node of this module, cordoned."""
    web_pod: str
    cluster_role: str
    """A ClusterRole the apply case would create (it must not exist afterwards either)."""
    holder: str
    """The holding Secret of ``task`` the internal cleanup tool would delete."""
    jenkins_build: int
    """A running build of team/deploy on the Jenkins double."""
    exec_marker: Path
    """The file the exec case's command would create: kwok runs a fake container's exec as a local process
    in the local cluster's exec directory (on another cluster the file never appears, whatever happens)."""

    @property
    def cluster_refs(self) -> tuple[str, ...]:
        return (
            f"namespace/{self.namespace}",
            f"node/{self.cordon_node}",
            f"node/{self.drain_node}",
            f"node/{self.cordoned_node}",
            f"clusterrole/{self.cluster_role}",
        )


@dataclass(frozen=True)
class Case:
    args: Callable[[World], dict[str, Any]]
    shows: Callable[[World], list[str]]
    """What the preview must say it would change (in its text or diff): proof the call was not a no-op."""


def _manifest(world: World) -> str:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": world.namespace},
            "data": {"mode": "fast"},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}, "data": {"a": "b"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": world.cluster_role},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
    ]
    return "\n---\n".join(json.dumps(doc) for doc in docs)


def _target(name: str) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"name": name, "namespace": w.namespace}


CASES: dict[str, Case] = {
    # --- kubernetes ---
    "k8s_apply": Case(
        lambda w: {"manifest": _manifest(w), "namespace": w.namespace, "force": True},
        lambda w: [
            f"configmap/settings -n {w.namespace}: configured",
            f"configmap/extra -n {w.namespace}: created",
            f"clusterrole/{w.cluster_role}: created",
            "data.mode: safe -> fast",
        ],
    ),
    "k8s_patch": Case(
        lambda w: {
            "kind": "secret",
            "name": "db",
            "namespace": w.namespace,
            "patch": {"metadata": {"labels": {"rotated": "yes"}}},
        },
        lambda w: [f"Would patch secret db in namespace {w.namespace}", "rotated"],
    ),
    "k8s_scale": Case(
        lambda w: {"kind": "deployment", "name": "web", "namespace": w.namespace, "replicas": 5},
        lambda w: ["spec.replicas: 2 -> 5"],
    ),
    "k8s_set_image": Case(
        lambda w: {
            "kind": "deployment",
            "name": "web",
            "namespace": w.namespace,
            "container": "web",
            "image": "registry.example/web:3.0",
        },
        lambda w: ["image: registry.example/web:2.0 -> registry.example/web:3.0"],
    ),
    "k8s_rollout_restart": Case(_target("web"), lambda w: ["kubectl.kubernetes.io/restartedAt"]),
    "k8s_rollout_undo": Case(
        _target("web"), lambda w: ["image: registry.example/web:2.0 -> registry.example/web:1.0"]
    ),
    "k8s_delete": Case(
        lambda w: {"kind": "secret", "name": "db", "namespace": w.namespace},
        lambda w: [f"Would delete secret db in namespace {w.namespace}"],
    ),
    "k8s_cordon": Case(lambda w: {"name": w.cordon_node}, lambda w: ["spec.unschedulable: (unset) -> true"]),
    "k8s_uncordon": Case(
        lambda w: {"name": w.cordoned_node}, lambda w: ["spec.unschedulable: true -> (removed)"]
    ),
    "k8s_drain": Case(
        lambda w: {"name": w.drain_node},
        lambda w: ["spec.unschedulable: (unset) -> true", f"evict {w.namespace}/pinned-"],
    ),
    "k8s_create_job_from_cronjob": Case(
        lambda w: {"cronjob": "nightly", "namespace": w.namespace, "job_name": "nightly-now"},
        lambda w: [f"Would create job nightly-now in namespace {w.namespace} from cronjob nightly"],
    ),
    "k8s_run_pod": Case(
        lambda w: {
            "name": "debug",
            "namespace": w.namespace,
            "image": "registry.example/tools:1",
            "command": ["sleep", "60"],
        },
        lambda w: [f"Would create pod debug in namespace {w.namespace}"],
    ),
    "k8s_exec": Case(
        lambda w: {"name": w.web_pod, "namespace": w.namespace, "command": ["touch", w.exec_marker.name]},
        lambda w: [f"Would run ['touch', '{w.exec_marker.name}'] in pod {w.web_pod} container web"],
    ),
    # --- helm ---
    "helm_install": Case(
        lambda w: {"release": "shop-two", "chart": "web", "namespace": w.namespace},
        lambda w: ["Would install release shop-two", "Deployment/shop-two"],
    ),
    "helm_upgrade": Case(
        lambda w: {
            "release": "shop",
            "chart": "web",
            "namespace": w.namespace,
            "values": {"replicaCount": 3},
        },
        lambda w: ["-  replicas: 2", "+  replicas: 3"],
    ),
    "helm_rollback": Case(
        lambda w: {"release": "shop", "namespace": w.namespace},
        lambda w: ["back to revision 1 (now 2)", "-  replicas: 2", "+  replicas: 1"],
    ),
    "helm_uninstall": Case(
        lambda w: {"release": "shop", "namespace": w.namespace},
        lambda w: ["Would uninstall release shop", "Deployment/shop"],
    ),
    # --- rollouts ---
    "rollouts_promote": Case(
        _target("canary"), lambda w: ["status.pauseConditions[0].reason: CanaryPauseStep -> (removed)"]
    ),
    "rollouts_pause": Case(_target("canary"), lambda w: ["spec.paused: (unset) -> true"]),
    "rollouts_resume": Case(_target("held"), lambda w: ["spec.paused: true -> false"]),
    "rollouts_abort": Case(_target("canary"), lambda w: ["status.abort: (unset) -> true"]),
    "rollouts_retry": Case(_target("held"), lambda w: ["status.abort: true -> false"]),
    "rollouts_set_image": Case(
        lambda w: {"name": "canary", "namespace": w.namespace, "container": "web", "image": "r.example/w:2"},
        lambda w: ["image: registry.example/web:1.0 -> r.example/w:2"],
    ),
    "rollouts_restart": Case(_target("canary"), lambda w: ["spec.restartAt: (unset) -> "]),
    "rollouts_undo": Case(
        _target("canary"), lambda w: ["image: registry.example/web:1.0 -> registry.example/web:0.9"]
    ),
    # --- jenkins ---
    "jenkins_trigger_build": Case(
        lambda w: {"job": DEPLOY, "parameters": {"ENV": "prod"}},
        lambda w: ["Would trigger job team/deploy with parameters:"],
    ),
    "jenkins_stop_build": Case(
        lambda w: {"job": DEPLOY, "number": w.jenkins_build},
        lambda w: [f"Would stop the running build #{w.jenkins_build} of job team/deploy"],
    ),
    # --- internal ---
    # The operator only ever executes the cleanup (a finished task's holding Secrets), but the tool honours
    # preview mode with a dry-run delete, so previewing it is meaningful and is held to the same rule.
    CLEANUP_TOOL: Case(
        lambda w: {"namespace": w.namespace, "task_uid": w.task.uid},
        lambda w: [f"Would delete 1 holding Secret(s) of task {w.task.uid}", w.holder],
    ),
}


# ----- setup -----------------------------------------------------------------------------------------------


def _apply(kubectl: Kubectl, namespace: str | None, *docs: Mapping[str, Any]) -> None:
    where = ["-n", namespace] if namespace else []
    body = {"apiVersion": "v1", "kind": "List", "items": list(docs)}
    kubectl("apply", *where, "-f", "-", input=json.dumps(body))


def _status(kubectl: Kubectl, namespace: str, ref: str, status: Mapping[str, Any]) -> None:
    patch = json.dumps({"status": status})
    kubectl("patch", ref, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)


def _node(name: str, *, cordoned: bool) -> dict[str, Any]:
    """A kwok node of our own, tainted so that only this module's pods land on it."""
    spec: dict[str, Any] = {"taints": [{"key": TAINT, "value": name, "effect": "NoSchedule"}]}
    if cordoned:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": name, "type": "kwok"},
        },
        "spec": spec,
        "status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "50"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "50"},
        },
    }


def _rollout(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(deployment(name, 1, image="registry.example/web:1.0"))
    body["spec"]["template"]["spec"]["containers"][0]["name"] = "web"
    body.update(apiVersion="argoproj.io/v1alpha1", kind="Rollout")
    body["spec"].update(strategy={"canary": {"steps": STEPS}}, **spec)
    return body


def _secret(name: str, data: Mapping[str, str], **more: Any) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded, **more}


def _helm(cluster: ClusterAccess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc


def _cluster_node(kubectl: Kubectl) -> str:
    """The oldest schedulable, untainted node of the cluster: one of its own, not a test's spare node."""
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    usable = [
        n
        for n in nodes
        if not n["spec"].get("unschedulable") and not n["spec"].get("taints") and "deletionTimestamp" not in n
    ]
    assert usable, "the cluster has no schedulable node without taints to preview a cordon of"
    oldest = min(usable, key=lambda n: (n["metadata"]["creationTimestamp"], n["metadata"]["name"]))
    return str(oldest["metadata"]["name"])


def _snapshot_kinds(kubectl: Kubectl) -> tuple[str, ...]:
    # check=False: discovery answers partially (exit 1) while another test's CRD is being deleted.
    listed = kubectl(
        "api-resources", "--namespaced", "--verbs=list", "-o", "name", check=False
    ).stdout.split()
    crds = json.loads(kubectl("get", "crd", "-o", "json").stdout)["items"]
    foreign = {c["metadata"]["name"] for c in crds if c["spec"]["group"] not in OUR_GROUPS}
    kinds = tuple(k for k in listed if k not in EVENTS and k not in foreign)
    needed = {"pods", "secrets", "configmaps", "deployments.apps", "rollouts.argoproj.io", "jobs.batch"}
    assert needed <= set(kinds), f"API discovery did not list {needed - set(kinds)}"
    return kinds


@pytest.fixture(scope="module")
def jenkins() -> Iterator[FakeJenkins]:
    with FakeJenkins(token="jenkins-api-token-previews-0123") as fake:
        env = Parameter("ENV", "choice", choices=["staging", "prod"])
        fake.add_job(DEPLOY, parameters=[env, Parameter("VERSION", default="1")])
        yield fake


@pytest.fixture(scope="module")
def world(
    kubectl: Kubectl,
    cluster: ClusterAccess,
    jenkins: FakeJenkins,
    agenttask_kind: None,
    rollout_crds: None,
) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:6]
    namespace = f"t-previews-change-nothing-{suffix}"
    drain_node, cordoned_node = f"preview-drain-{suffix}", f"preview-cordoned-{suffix}"
    cluster_role = f"bosun-preview-{suffix}"
    exec_marker = localcluster.STATE_DIR / "exec" / f"preview-exec-{suffix}"
    kubectl("create", "namespace", namespace)
    try:
        kubectl("label", "namespace", namespace, "bosun.dev/test=true")
        yield _build_world(
            kubectl, cluster, jenkins, namespace, drain_node, cordoned_node, cluster_role, exec_marker
        )
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
        kubectl(
            "delete", "node", drain_node, cordoned_node, "--wait=false", "--ignore-not-found", check=False
        )
        kubectl("delete", "clusterrole", cluster_role, "--ignore-not-found", check=False)
        exec_marker.unlink(missing_ok=True)


def _build_world(
    kubectl: Kubectl,
    cluster: ClusterAccess,
    jenkins: FakeJenkins,
    namespace: str,
    drain_node: str,
    cordoned_node: str,
    cluster_role: str,
    exec_marker: Path,
) -> World:
    _apply(kubectl, None, _node(drain_node, cordoned=False), _node(cordoned_node, cordoned=True))
    pinned = {
        "nodeSelector": {"kubernetes.io/hostname": drain_node},
        "tolerations": [{"key": TAINT, "operator": "Exists"}],
    }
    credentials = {"url": jenkins.url, "user": jenkins.user, "token": jenkins.token}
    _apply(
        kubectl,
        namespace,
        json.loads(deployment("web", 2, image="registry.example/web:1.0")),
        json.loads(deployment("pinned", 1, **pinned)),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "safe"}},
        _secret("db", {"user": "app", "password": "the-db-password"}),
        _secret("jenkins", credentials),
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly"},
            "spec": {
                "schedule": "0 3 * * *",
                "suspend": True,  # the CronJob controller must not start a Job while we watch
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "report", "image": "registry.example/report:1"}],
                            }
                        }
                    }
                },
            },
        },
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "AgentTask",
            "metadata": {"name": "previews"},
            "spec": {"request": "preview every mutating tool"},
        },
        _rollout("canary"),
        _rollout("held", paused=True),
    )
    _status(kubectl, namespace, "rollout/canary", PAUSED_AT_STEP_1)
    _status(kubectl, namespace, "rollout/held", {"phase": "Degraded", "abort": True})
    canary = json.loads(kubectl("get", "rollout", "canary", "-n", namespace, "-o", "json").stdout)
    _apply(
        kubectl,
        namespace,
        rollout_replicaset(canary, 1, [{"name": "web", "image": "registry.example/web:0.9"}]),
        rollout_replicaset(canary, 2, [{"name": "web", "image": "registry.example/web:1.0"}]),
    )
    task_uid = kubectl(
        "get", "agenttask", "previews", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    task = TaskRef(namespace, "previews", task_uid)
    holder = f"bosun-sealed-{namespace}"
    owner = {"apiVersion": TASK_API_VERSION, "kind": "AgentTask", "name": task.name, "uid": task.uid}
    sealed = _secret(holder, {"k": "sealed-value"}, type=SEALED_TYPE, immutable=True)
    sealed["metadata"].update(labels={SEALED_FOR: task.uid}, ownerReferences=[owner])
    _apply(kubectl, namespace, sealed)

    # Two revisions of Deployment web and of Helm release shop, for the undo and rollback previews.
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    kubectl("set", "image", "-n", namespace, "deployment/web", "web=registry.example/web:2.0")
    release = ["shop", str(CHART), "-n", namespace, "--wait", "--timeout=90s"]
    _helm(cluster, "install", *release)
    _helm(cluster, "upgrade", *release, "--set", "replicaCount=2")
    for name in ("web", "pinned", "shop"):
        kubectl("rollout", "status", "-n", namespace, f"deployment/{name}", "--timeout=90s")
    jenkins_build = jenkins.add_build(DEPLOY, result=None).number

    kubectl("wait", "--for=condition=Ready", f"node/{drain_node}", f"node/{cordoned_node}", "--timeout=60s")
    world = World(
        namespace=namespace,
        task=task,
        kinds=_snapshot_kinds(kubectl),
        cordon_node=_cluster_node(kubectl),
        drain_node=drain_node,
        cordoned_node=cordoned_node,
        web_pod="",
        cluster_role=cluster_role,
        holder=holder,
        jenkins_build=jenkins_build,
        exec_marker=exec_marker,
    )
    _settle(kubectl, world)
    pods = kubectl(
        "get", "pods", "-n", namespace, "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"
    )
    return replace(world, web_pod=pods.stdout)


def _settle(kubectl: Kubectl, world: World) -> None:
    """Wait until the controllers are done with the setup: every pod Ready and none terminating, the
    node lifecycle controller done with our nodes' taints, then the whole snapshot quiet for a while."""
    ns = world.namespace

    def pods_ready() -> bool:
        pods = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
        return len(pods) == 5 and all(
            "deletionTimestamp" not in p["metadata"]
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            for p in pods
        )

    eventually("the 5 pods of the namespace to be Ready and no other pod left", pods_ready, timeout=90)

    def node_taints(name: str, expected: set[str]) -> Callable[[], bool]:
        def check() -> bool:
            node = json.loads(kubectl("get", "node", name, "-o", "json").stdout)
            return {t["key"] for t in node["spec"].get("taints", [])} == expected

        return check

    eventually(
        f"node {world.drain_node} to carry only our taint",
        node_taints(world.drain_node, {TAINT}),
        timeout=60,
    )
    eventually(
        f"node {world.cordoned_node} to carry our taint and the unschedulable one",
        node_taints(world.cordoned_node, {TAINT, "node.kubernetes.io/unschedulable"}),
        timeout=60,
    )
    quiet = {"last": None, "same": 0}

    def unchanged() -> bool:
        now = _observe(kubectl, world)
        quiet["same"] = quiet["same"] + 1 if now == quiet["last"] else 0
        quiet["last"] = now
        return quiet["same"] >= 3

    eventually("the namespace, nodes and Helm releases to stop changing", unchanged, timeout=90)


# ----- snapshots -------------------------------------------------------------------------------------------


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['apiVersion']} {obj['kind']} {where}{meta['name']}"


def _node_view(node: dict[str, Any]) -> dict[str, Any]:
    """A node as a tool could change it: kwok's heartbeat rewrites its status on its own schedule (every
    10-20 minutes, moving the resourceVersion), and no tool writes a node's status (cordon and drain write
    its spec), so the status and the status entries of managedFields are left out of the comparison."""
    meta = {k: v for k, v in node["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    meta["managedFields"] = [
        f for f in node["metadata"].get("managedFields", []) if f.get("subresource") != "status"
    ]
    return {**{k: v for k, v in node.items() if k != "status"}, "metadata": meta}


def _observe(kubectl: Kubectl, world: World) -> dict[str, Any]:
    """Everything a preview could change, keyed by object (resourceVersion and content)."""
    ns = world.namespace
    listed = json.loads(kubectl("get", ",".join(world.kinds), "-n", ns, "-o", "json").stdout)["items"]
    out = kubectl("get", *world.cluster_refs, "--ignore-not-found", "-o", "json").stdout
    cluster_scoped = json.loads(out)["items"] if out.strip() else []
    seen: dict[str, Any] = {}
    for obj in [*listed, *cluster_scoped]:
        if obj["kind"] == "Node":
            seen[_key(obj)] = _node_view(obj)
        else:
            seen[_key(obj)] = {"resourceVersion": obj["metadata"]["resourceVersion"], "object": obj}
    return seen


def _observe_all(
    kubectl: Kubectl, cluster: ClusterAccess, world: World, jenkins: FakeJenkins
) -> dict[str, Any]:
    ns = world.namespace
    releases = json.loads(_helm(cluster, "list", "--all", "-n", ns, "-o", "json").stdout)
    # Not checked: an uninstall would make helm answer "release: not found", which is then the change.
    shop = _helm(cluster, "history", "shop", "-n", ns, "-o", "json", check=False)
    history = json.loads(shop.stdout) if shop.returncode == 0 else shop.stderr.strip()
    # Read without the double's lock: the call has returned, so no request of it is still in flight.
    double = {
        "posts": [r for r in jenkins.requests if r[0] != "GET"],
        "triggered": list(jenkins.triggered),
        "queue": {i: (q.build_number, q.cancelled) for i, q in jenkins.queue.items()},
        "jobs": {
            "/".join(path): {
                "next build": job.next_build_number,
                "builds": {n: (b.building, b.result) for n, b in job.builds.items()},
            }
            for path, job in jenkins.jobs.items()
        },
    }
    return {
        "kubernetes": _observe(kubectl, world),
        "helm releases": releases,
        "helm history of shop": history,
        "jenkins": double,
        "exec marker file exists": world.exec_marker.exists(),
    }


def _changes(before: Any, after: Any, where: str = "") -> list[str]:
    """Readable differences: which object was created, deleted or changed, and in which fields."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in after:
                found.append(f"{path}: gone")
            elif key not in before:
                found.append(f"{path}: new {json.dumps(after[key], default=str)[:300]}")
            else:
                found.extend(_changes(before[key], after[key], path))
        return found
    if before != after:
        shown = [json.dumps(v, default=str)[:300] for v in (before, after)]
        return [f"{where}: {shown[0]} -> {shown[1]}"]
    return []


@pytest.fixture(scope="module")
async def gateway(cluster: ClusterAccess, world: World) -> AsyncIterator[ToolGateway]:
    """The operator's gateway to an in-process tool server with every toolset."""
    settings = ToolSettings(
        kubeconfig=str(cluster.kubeconfig),
        toolsets=TOOLSETS,
        helm=HelmSettings(binary=str(cluster.bin_dir / "helm"), charts={"web": str(CHART)}),
        jenkins=JenkinsSettings(world.namespace, "jenkins", queue_poll_interval=0.01),
    )
    gw = ToolGateway.in_process(settings)
    try:
        yield gw
    finally:
        await gw.aclose()


# ----- the tests -------------------------------------------------------------------------------------------


def test_every_mutating_tool_has_a_case() -> None:
    """A mutating tool registered without a case here would escape the rule: fail until one is added."""
    assert set(CASES) == set(MUTATING), (
        f"mutating tools without a case: {sorted(set(MUTATING) - set(CASES))}; "
        f"cases of tools that are not registered mutating tools: {sorted(set(CASES) - set(MUTATING))}"
    )


@pytest.mark.cluster
@pytest.mark.parametrize("tool", MUTATING)
async def test_a_preview_changes_nothing(
    tool: str,
    gateway: ToolGateway,
    world: World,
    kubectl: Kubectl,
    cluster: ClusterAccess,
    jenkins: FakeJenkins,
) -> None:
    case = CASES.get(tool)
    if case is None:
        pytest.fail(f"{tool} is a registered mutating tool with no case in this module: add one")
    args = case.args(world)
    before = _observe_all(kubectl, cluster, world, jenkins)
    outcome = await gateway.preview(tool, args, identity=ADMIN, task=world.task)
    after = _observe_all(kubectl, cluster, world, jenkins)

    changed = _changes(before, after)
    assert not changed, f"the preview of {tool} changed:\n" + "\n".join(changed)
    # A preview that fails, or that would change nothing anyway, proves nothing.
    assert outcome.ok, f"the preview of {tool} failed: {outcome.error}"
    shown = f"{outcome.text}\n{outcome.diff or ''}"
    for expected in case.shows(world):
        assert expected in shown, f"the preview of {tool} does not show {expected!r}:\n{shown}"
    assert outcome.sealed_args is None, f"{tool} sealed values, so it wrote a holding Secret"
