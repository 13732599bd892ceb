"""The scope decision as a table: what a tool call reaches, and whether a task may reach it.

``bosun.core.scope`` is pure, so these cases hand it the facts API discovery would give (``DISCOVERED`` is
what a Kubernetes 1.36 API server reports for these kinds); tests/integration/test_scope.py asks a real one.
"""

from __future__ import annotations

from typing import Any

import pytest
from bosun.core import scope
from bosun.core.scope import Resource
from bosun_tools.registry import REGISTRY, load_toolsets, safety_of

OPERATOR_NAMESPACE = "bosun-system"

DEPLOYMENT = Resource("apps", "v1", "Deployment", "deployments", namespaced=True)
CONFIG_MAP = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)
SECRET = Resource("", "v1", "Secret", "secrets", namespaced=True)
PODS = Resource("", "v1", "Pod", "pods", namespaced=True)
NODES = Resource("", "v1", "Node", "nodes", namespaced=False)
NAMESPACE = Resource("", "v1", "Namespace", "namespaces", namespaced=False)
STORAGE_CLASS = Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False)
AGENT_TASK = Resource("bosun.dev", "v1alpha1", "AgentTask", "agenttasks", namespaced=True)
GRANT = Resource("bosun.dev", "v1alpha1", "ApprovalGrant", "approvalgrants", namespaced=True)
CLUSTER_ROLE_BINDING = Resource(
    "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False
)
ROLE = Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", namespaced=True)
CRD = Resource(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False
)
WEBHOOK = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
    namespaced=False,
)
ADMISSION_POLICY = Resource(
    "admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies", False
)
API_SERVICE = Resource("apiregistration.k8s.io", "v1", "APIService", "apiservices", namespaced=False)
CSR = Resource(
    "certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", namespaced=False
)
ROLLOUT = Resource("argoproj.io", "v1alpha1", "Rollout", "rollouts", namespaced=True)

DISCOVERED: dict[scope.Lookup, Resource] = {
    ("deployment", None): DEPLOYMENT,
    ("ConfigMap", "v1"): CONFIG_MAP,
    ("Secret", "v1"): SECRET,
    ("pods", "v1"): PODS,
    ("pods", None): PODS,
    ("pods", "metrics.k8s.io/v1beta1"): Resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True),
    ("nodes", "metrics.k8s.io/v1beta1"): Resource("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False),
    ("events", None): Resource("", "v1", "Event", "events", namespaced=True),
    ("nodes", "v1"): NODES,
    ("nodes", None): NODES,
    ("namespace", None): NAMESPACE,
    ("namespaces", None): NAMESPACE,
    ("StorageClass", "storage.k8s.io/v1"): STORAGE_CLASS,
    ("agenttask", None): AGENT_TASK,
    ("ApprovalGrant", "bosun.dev/v1alpha1"): GRANT,
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"): CLUSTER_ROLE_BINDING,
    ("clusterrolebindings", None): CLUSTER_ROLE_BINDING,
    ("Role", "rbac.authorization.k8s.io/v1"): ROLE,
    ("CustomResourceDefinition", "apiextensions.k8s.io/v1"): CRD,
    ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1"): WEBHOOK,
    ("mutatingadmissionpolicies", None): ADMISSION_POLICY,
    ("APIService", "apiregistration.k8s.io/v1"): API_SERVICE,
    ("certificatesigningrequests", None): CSR,
    ("cronjobs", "batch/v1"): Resource("batch", "v1", "CronJob", "cronjobs", namespaced=True),
    ("jobs", "batch/v1"): Resource("batch", "v1", "Job", "jobs", namespaced=True),
    ("rollouts.argoproj.io", None): ROLLOUT,
    ("experiments.argoproj.io", None): Resource(
        "argoproj.io", "v1alpha1", "Experiment", "experiments", namespaced=True
    ),
    ("analysisruns.argoproj.io", None): Resource(
        "argoproj.io", "v1alpha1", "AnalysisRun", "analysisruns", namespaced=True
    ),
}


def decide(
    tool: str,
    args: dict[str, Any],
    *,
    targets: tuple[str, ...] = ("shop",),
    cluster_scope: bool = False,
    discovered: dict[scope.Lookup, Resource] = DISCOVERED,
) -> str | None:
    """What the gateway decides, with ``discovered`` standing in for the API server."""
    call = scope.call_of(tool, args, read_only=safety_of(tool).read_only)
    limits = scope.Scope(targets, cluster_scope, OPERATOR_NAMESPACE)
    problem = scope.argument_error(call, limits)
    if problem is not None:
        return problem
    found = {lookup: discovered.get(lookup) for lookup in call.lookups}
    return scope.resource_error(call, limits, found)


def doc(api_version: str, kind: str, name: str, namespace: str | None = None) -> str:
    """One manifest document (in ``namespace`` when given)."""
    where = f", namespace: {namespace}" if namespace else ""
    return f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: {name}{where}}}\n"


def manifest(*documents: str) -> str:
    return "\n---\n".join(documents)


CONFIG_MAP_IN_SHOP = doc("v1", "ConfigMap", "a", "shop")
STORAGE_CLASS_FAST = doc("storage.k8s.io/v1", "StorageClass", "fast") + "provisioner: x"
CLUSTER_ADMIN_BINDING = (
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
    "metadata: {name: take-over, namespace: shop}\n"
    "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n"
    "subjects: [{kind: User, name: mallory}]"
)
APPROVE_OTHER = {
    "kind": "agenttask",
    "name": "other-task",
    "namespace": "shop",
    "patch": {"metadata": {"annotations": {"approve": "true"}}},
    "patch_type": "merge",
}

ALLOWED: list[tuple[str, dict[str, Any]]] = [
    ("k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}),
    ("k8s_apply", {"manifest": CONFIG_MAP_IN_SHOP}),
    ("k8s_apply", {"manifest": doc("v1", "ConfigMap", "a"), "namespace": "shop"}),
    (
        "k8s_apply",
        {"manifest": doc("v1", "Secret", "s") + "type: Opaque", "namespace": "shop"},
    ),
    ("k8s_get", {"kind": "nodes", "name": "node-1"}),  # cluster-scoped reads: RBAC decides
    ("k8s_get", {"kind": "namespaces"}),
    ("k8s_get", {"kind": "pods", "namespace": "shop"}),
    ("k8s_get", {"kind": "events", "namespace": "shop"}),
    ("k8s_top", {"kind": "nodes"}),
    # Bosun's kinds may be read
    ("k8s_get", {"kind": "agenttask", "name": "t1", "namespace": "shop", "output": "describe"}),
    ("k8s_get", {"kind": "clusterrolebindings", "name": "cluster-admin"}),  # so may the deny-list's
    ("k8s_can_i", {"verb": "delete", "resource": "nodes"}),
    ("k8s_api_resources", {}),
    ("k8s_create_job_from_cronjob", {"cronjob": "nightly", "namespace": "shop"}),
    ("helm_upgrade", {"release": "web", "chart": "web", "namespace": "shop"}),
    ("helm_charts", {}),
    ("helm_get", {"release": "web", "namespace": "shop", "show": "values"}),
    ("rollouts_get", {"name": "web", "namespace": "shop", "show": "analysis-runs"}),
    ("rollouts_promote", {"name": "web", "namespace": "shop"}),
    ("jenkins_trigger_build", {"job": ["team", "deploy"]}),
]


@pytest.mark.parametrize(("tool", "args"), ALLOWED)
def test_allowed(tool: str, args: dict[str, Any]) -> None:
    assert decide(tool, args) is None


REFUSED: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "k8s_scale",
        {"kind": "deployment", "name": "web", "namespace": "prod", "replicas": 5},
        [
            "k8s_scale refused",
            "namespace prod is outside this task's targetNamespaces [shop]",
            "spec.targetNamespaces",
        ],
    ),
    (
        "k8s_apply",
        {"manifest": manifest(CONFIG_MAP_IN_SHOP, STORAGE_CLASS_FAST), "namespace": "shop"},
        [
            "k8s_apply refused",
            "StorageClass fast is cluster-scoped",
            "storageclasses.storage.k8s.io",
            "consent",
        ],
    ),
    (
        "k8s_apply",
        {"manifest": manifest(CONFIG_MAP_IN_SHOP, doc("v1", "ConfigMap", "b", "other"))},
        ["namespace other is outside this task's targetNamespaces [shop]"],
    ),
    (
        "k8s_delete",
        {"kind": "namespace", "name": "other", "namespace": "shop"},
        [
            "k8s_delete refused",
            "Namespace other is cluster-scoped",
            "its namespace shop does not apply",
            "consent",
        ],
    ),
    ("k8s_cordon", {"name": "node-1"}, ["k8s_cordon refused", "Node node-1 is cluster-scoped"]),
    ("k8s_drain", {"name": "node-1"}, ["k8s_drain refused", "Node node-1 is cluster-scoped"]),
    (
        "k8s_patch",
        {"kind": "deployment", "name": "w", "patch": {"metadata": {"namespace": "x"}}},
        ["namespace x is outside"],
    ),
    (
        "k8s_patch",
        {"kind": "deployment", "name": "w", "patch": {"spec": {"replicas": 1}}},
        ["Deployment w is namespaced and no namespace was given", "pass namespace (one of [shop])"],
    ),
    ("k8s_get", {"kind": "pods"}, ["k8s_get refused", "pods are namespaced", "would read every namespace"]),
    ("k8s_get", {"kind": "events"}, ["k8s_get refused", "would read every namespace"]),
    ("k8s_top", {"kind": "pods"}, ["would read every namespace"]),
    ("helm_get", {}, ["helm_get refused", "releases.helm.sh are namespaced", "every namespace"]),
    ("rollouts_get", {}, ["rollouts_get refused", "every namespace"]),
    (
        "rollouts_get",
        {"name": "web", "show": "experiments"},
        ["rollouts_get refused", "experiments.argoproj.io are namespaced", "every namespace"],
    ),
    (
        "k8s_apply",
        {"manifest": doc("example.com/v1", "Gizmo", "g"), "namespace": "shop"},
        [
            "k8s_apply refused",
            "serves no resource type 'Gizmo' in apiVersion example.com/v1",
            "k8s_api_resources",
        ],
    ),
    ("k8s_get", {"kind": "gizmos", "name": "g"}, ["serves no resource type 'gizmos'"]),
    ("k8s_apply", {"manifest": "kind: [unclosed", "namespace": "shop"}, ["manifest is not valid YAML"]),
    (
        "k8s_apply",
        {"manifest": "kind: ConfigMap\nmetadata: {name: a}", "namespace": "shop"},
        ["no kind and apiVersion"],
    ),
    ("k8s_apply", {"manifest": "---\n", "namespace": "shop"}, ["holds no document"]),
    (
        "kubectl_nuke",
        {"all": True},
        ["kubectl_nuke refused", "does not know which objects kubectl_nuke reaches"],
    ),
]


@pytest.mark.parametrize(("tool", "args", "said"), REFUSED)
def test_refused(tool: str, args: dict[str, Any], said: list[str]) -> None:
    problem = decide(tool, args)
    assert problem is not None
    for part in said:
        assert part in problem


@pytest.mark.parametrize(
    ("tool", "args", "said"),
    [
        (
            "k8s_apply",
            {"manifest": CLUSTER_ADMIN_BINDING, "namespace": "shop"},
            "ClusterRoleBinding take-over (clusterrolebindings.rbac.authorization.k8s.io)",
        ),
        (
            "k8s_apply",
            {"manifest": doc("rbac.authorization.k8s.io/v1", "Role", "r", "shop")},
            "Role r in namespace shop (roles.rbac.authorization.k8s.io)",
        ),
        ("k8s_patch", APPROVE_OTHER, "AgentTask other-task in namespace shop (agenttasks.bosun.dev)"),
        (
            "k8s_apply",
            {
                "manifest": doc("bosun.dev/v1alpha1", "ApprovalGrant", "g"),
                "namespace": "shop",
            },
            "ApprovalGrant g in namespace shop (approvalgrants.bosun.dev)",
        ),
        (
            "k8s_apply",
            {"manifest": doc("apiextensions.k8s.io/v1", "CustomResourceDefinition", "x.y")},
            "CustomResourceDefinition x.y (customresourcedefinitions.apiextensions.k8s.io)",
        ),
        (
            "k8s_apply",
            {"manifest": doc("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "w")},
            "ValidatingWebhookConfiguration w",
        ),
        (
            "k8s_delete",
            {"kind": "mutatingadmissionpolicies", "name": "bosun-identity"},
            "MutatingAdmissionPolicy bosun-identity",
        ),
        (
            "k8s_apply",
            {"manifest": doc("apiregistration.k8s.io/v1", "APIService", "v1.x.y")},
            "APIService v1.x.y",
        ),
        (
            "k8s_patch",
            {
                "kind": "certificatesigningrequests",
                "name": "csr-1",
                "patch": {"status": {"conditions": [{"type": "Approved"}]}},
            },
            "CertificateSigningRequest csr-1",
        ),
        (
            "k8s_apply",
            {
                "manifest": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tok\n  annotations:\n"
                "    kubernetes.io/service-account.name: default\ntype: kubernetes.io/service-account-token",
                "namespace": "shop",
            },
            "ServiceAccount token",
        ),
    ],
)
@pytest.mark.parametrize("cluster_scope", [False, True])
def test_deny_list_is_never_changed_even_with_consent(
    tool: str, args: dict[str, Any], said: str, cluster_scope: bool
) -> None:
    problem = decide(tool, args, cluster_scope=cluster_scope)
    assert problem is not None
    assert problem.startswith(f"{tool} refused: ")
    assert said in problem
    assert "is never changed by the agent, whatever RBAC allows" in problem
    assert "an administrator has to do this by hand" in problem


@pytest.mark.parametrize("group", sorted(scope.DENIED_GROUPS))
def test_every_denied_group_may_be_read_but_not_changed(group: str) -> None:
    """Any kind of a denied group (and its subgroups), whichever way it is scoped."""
    for namespaced in (True, False):
        for served in (group, f"sub.{group}"):
            thing = Resource(served, "v1", "Thing", "things", namespaced)
            facts = {("things", None): thing}
            where = {"namespace": "shop"} if namespaced else {}
            assert decide("k8s_get", {"kind": "things", "name": "t", **where}, discovered=facts) is None
            changed = decide("k8s_delete", {"kind": "things", "name": "t", **where}, discovered=facts)
            assert changed is not None
            assert scope.DENIED_GROUPS[group] in changed


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("k8s_get", {"kind": "pods", "name": "operator", "namespace": OPERATOR_NAMESPACE}),
        ("k8s_get", {"kind": "secrets", "namespace": OPERATOR_NAMESPACE}),
        ("k8s_get", {"kind": "namespace", "name": OPERATOR_NAMESPACE}),
        ("k8s_delete", {"kind": "namespace", "name": OPERATOR_NAMESPACE}),
        ("helm_uninstall", {"release": "bosun", "namespace": OPERATOR_NAMESPACE}),
    ],
)
@pytest.mark.parametrize("cluster_scope", [False, True])
def test_the_operator_namespace_is_never_touched(
    tool: str, args: dict[str, Any], cluster_scope: bool
) -> None:
    """Even when a task names it as a target, and reads included (it holds Bosun's credentials)."""
    problem = decide(tool, args, targets=("shop", OPERATOR_NAMESPACE), cluster_scope=cluster_scope)
    assert problem is not None
    assert f"namespace {OPERATOR_NAMESPACE} is where the Bosun operator runs" in problem
    assert "reads included" in problem


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("k8s_apply", {"manifest": manifest(CONFIG_MAP_IN_SHOP, STORAGE_CLASS_FAST), "namespace": "shop"}),
        ("k8s_cordon", {"name": "node-1"}),
        ("k8s_drain", {"name": "node-1"}),
        ("k8s_delete", {"kind": "namespace", "name": "shop"}),
        ("k8s_get", {"kind": "pods"}),
        ("k8s_get", {"kind": "events"}),
        ("helm_get", {}),
    ],
)
def test_cluster_scope_consent_allows_cluster_scoped_changes_and_reads(
    tool: str, args: dict[str, Any]
) -> None:
    assert decide(tool, args) is not None
    assert decide(tool, args, cluster_scope=True) is None


def test_consent_does_not_widen_the_target_namespaces() -> None:
    problem = decide("k8s_delete", {"kind": "namespace", "name": "other"}, cluster_scope=True)
    assert problem is not None
    assert "namespace other is outside this task's targetNamespaces [shop]" in problem
    scale = {"kind": "deployment", "name": "web", "namespace": "prod", "replicas": 1}
    assert decide("k8s_scale", scale, cluster_scope=True) is not None


def test_the_namespace_of_a_cluster_scoped_object_is_not_believed() -> None:
    """One manifest, with a namespace field: what discovery says about its kind decides, not the field."""
    binding = Resource("example.com", "v1", "Binding", "bindings", namespaced=False)
    binding_doc = doc("example.com/v1", "Binding", "b", "shop")
    problem = decide(
        "k8s_apply",
        {"manifest": binding_doc, "namespace": "shop"},
        discovered={("Binding", "example.com/v1"): binding},
    )
    assert problem is not None
    assert "Binding b is cluster-scoped (API discovery: bindings.example.com)" in problem
    assert "so its namespace shop does not apply" in problem
    same_kind_namespaced = {
        ("Binding", "example.com/v1"): Resource("example.com", "v1", "Binding", "bindings", True)
    }
    assert (
        decide("k8s_apply", {"manifest": binding_doc, "namespace": "shop"}, discovered=same_kind_namespaced)
        is None
    )


def test_what_discovery_is_asked() -> None:
    """Every document of a manifest, the kind argument as written, fixed kinds of fixed-purpose tools; a
    Helm release or a Jenkins job asks nothing."""

    def lookups(tool: str, args: dict[str, Any]) -> frozenset[scope.Lookup]:
        return scope.call_of(tool, args, read_only=safety_of(tool).read_only).lookups

    mixed = manifest(CONFIG_MAP_IN_SHOP, STORAGE_CLASS_FAST, CLUSTER_ADMIN_BINDING)
    assert lookups("k8s_apply", {"manifest": mixed}) == {
        ("ConfigMap", "v1"),
        ("StorageClass", "storage.k8s.io/v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
    }
    assert lookups("k8s_patch", APPROVE_OTHER) == {("agenttask", None)}
    assert lookups("k8s_drain", {"name": "n"}) == {("nodes", "v1"), ("pods", "v1")}
    assert lookups("k8s_logs", {"name": "p", "namespace": "shop"}) == {("pods", "v1")}
    assert lookups("helm_install", {"release": "r", "chart": "c", "namespace": "shop"}) == frozenset()
    assert lookups("jenkins_trigger_build", {"job": ["a"]}) == frozenset()


def test_an_unanswered_lookup_counts_as_not_served() -> None:
    call = scope.call_of(
        "k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop"}, read_only=False
    )
    problem = scope.resource_error(call, scope.Scope(("shop",)), {})
    assert problem is not None
    assert "serves no resource type 'deployment'" in problem


def test_every_tool_has_a_scope_rule() -> None:
    """A tool added without a rule would be refused everywhere; a rule for a tool that is gone is dead."""
    load_toolsets()
    assert set(scope.RULES) == {spec.name for spec in REGISTRY.specs()}
