"""What a tool call reaches, and whether a task may reach it: the agent stays inside what the task names.

The decision is kept pure (no I/O, no clients) so that every case can be tested as a table, and it lives
in one place: ``bosun.ports.gateway.ToolGateway.scope_error`` turns a call into a ``Call`` with ``call_of``,
refuses what the arguments alone rule out with ``argument_error``, asks the API server's discovery about
each kind the call names, and hands those facts to ``resource_error``.

Whether an object is cluster-scoped comes from discovery, never from the arguments: a ``namespace``
argument or a ``metadata.namespace`` on a ClusterRoleBinding does not make it namespaced, and a kind the
API server does not serve is refused (its scope is unknown) rather than guessed.

The rules:

- Every namespace the arguments name anywhere must be one of the task's ``targetNamespaces``, and none
  may be the operator's own namespace (that one is refused for reads too: it holds Bosun's credentials).
- A namespaced object needs a namespace: without one a call reaches every namespace (``k8s_get`` listing
  pods, ``helm_get`` listing releases, the evictions of ``k8s_drain``), which needs cluster-scope consent.
- Cluster-scoped objects may be read (RBAC decides); changing one needs cluster-scope consent, which the
  task's spec gives (``cluster_scope``); without it the change is refused. Consent does not widen the
  target namespaces: changing a Namespace object changes that namespace, so it must be a target too.
- The deny-list (``DENIED_GROUPS``, Namespace objects of the operator's namespace and ServiceAccount token
  Secrets) is never changed by the agent, whatever RBAC or consent allow. Reads of those kinds are allowed:
  they change nothing, RBAC already limits them, and diagnosis needs them (a RoleBinding explains a
  Forbidden, a webhook explains a rejected pod, and the model may describe a task).

What is not checked here: the objects inside a Helm chart (a release is namespaced, but its chart may
hold cluster-scoped objects; the approver sees them in the rendered dry-run diff, and they are created
with the requester's RBAC), what a Jenkins job does (it runs outside the cluster; its own RBAC check on
``jenkinsjobs.bosun.dev`` applies), and what a pod the agent runs or execs into does with its own
ServiceAccount.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from bosun.api.models import GROUP

DENIED_GROUPS: Mapping[str, str] = {
    GROUP: "Bosun's own resources (tasks, grants) decide what Bosun may do",
    "rbac.authorization.k8s.io": "RBAC decides what everyone may do",
    "admissionregistration.k8s.io": "admission configuration includes the policies that stamp who asked",
    "apiextensions.k8s.io": "CustomResourceDefinitions define (and remove) whole APIs, Bosun's included",
    "apiregistration.k8s.io": "APIServices hand whole API groups to other servers",
    "certificates.k8s.io": "certificate signing requests and their approval mint credentials",
}
"""API groups the agent never changes, with why (the reason is part of the refusal)."""

SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
"""A Secret of this type asks the API server for a ServiceAccount token: the one token request a tool can
make (no tool calls the ``serviceaccounts/token`` subresource)."""

Lookup = tuple[str, str | None]
"""What discovery is asked: the kind as the call writes it (``deploy``, ``ClusterRoleBinding``,
``rollouts.argoproj.io``) and the apiVersion when the call gives one (manifests do)."""


@dataclass(frozen=True)
class Resource:
    """What API discovery says about one resource type."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


HELM_RELEASE = Resource("helm.sh", "v3", "Release", "releases", namespaced=True)
"""A Helm release is not an API kind: it lives in the namespace its tools name (its revisions are Secrets
there), so its scope is known without discovery."""


@dataclass(frozen=True)
class Target:
    """One object (``name``) or every object (``name`` None) of a kind that a call reads or changes."""

    kind: str
    api_version: str | None = None
    name: str | None = None
    namespace: str | None = None
    secret_type: str | None = None
    known: Resource | None = None
    """Set when the scope is not an API server's to say (Helm releases); None: ask discovery."""

    @property
    def lookup(self) -> Lookup:
        return (self.kind, self.api_version)


@dataclass(frozen=True)
class Call:
    """A tool call as the scope check sees it."""

    tool: str
    read_only: bool
    namespaces: frozenset[str]
    """Every namespace the arguments name anywhere (manifests included)."""
    targets: tuple[Target, ...]
    problem: str | None = None
    """Why the arguments cannot be read as objects (then nothing else is decided)."""

    @property
    def lookups(self) -> frozenset[Lookup]:
        """The kinds discovery has to be asked about."""
        return frozenset(t.lookup for t in self.targets if t.known is None)


@dataclass(frozen=True)
class Scope:
    """What a task may reach: its target namespaces, whether its spec consents to cluster-scoped changes,
    and the operator's own namespace (None: the operator runs outside a cluster, there is none)."""

    target_namespaces: tuple[str, ...]
    cluster_scope: bool = False
    operator_namespace: str | None = None

    @property
    def allowed(self) -> str:
        return ", ".join(self.target_namespaces) or "(none)"


class _Unreadable(Exception):
    """The arguments cannot be read as objects; the message says why and what to send instead."""


def _text(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    return value if isinstance(value, str) and value else None


def _required(args: Mapping[str, Any], key: str) -> str:
    value = _text(args, key)
    if value is None:
        raise _Unreadable(f"it has no {key} argument, so the objects it reaches are unknown; pass {key}")
    return value


Rule = Callable[[Mapping[str, Any]], tuple[Target, ...]]


def _one(kind: str | None = None, api_version: str | None = None, *, name: str = "name") -> Rule:
    """The call reaches one object of ``kind`` (or its ``kind`` argument) named by argument ``name``, or
    every object of that kind in its namespace (in every namespace without one) when it names none."""

    def rule(args: Mapping[str, Any]) -> tuple[Target, ...]:
        return (
            Target(kind or _required(args, "kind"), api_version, _text(args, name), _text(args, "namespace")),
        )

    return rule


def _none(args: Mapping[str, Any]) -> tuple[Target, ...]:
    """The call reaches no cluster object (discovery, access reviews, chart repositories, Jenkins)."""
    return ()


def _release(args: Mapping[str, Any]) -> tuple[Target, ...]:
    return (
        Target(
            "release", known=HELM_RELEASE, name=_text(args, "release"), namespace=_text(args, "namespace")
        ),
    )


def _top(args: Mapping[str, Any]) -> tuple[Target, ...]:
    return (Target(_required(args, "kind"), "metrics.k8s.io/v1beta1", None, _text(args, "namespace")),)


def _drain(args: Mapping[str, Any]) -> tuple[Target, ...]:
    """A drain changes the node and evicts its pods, which may be in any namespace."""
    return (Target("nodes", "v1", _text(args, "name")), Target("pods", "v1"))


def _job_from_cronjob(args: Mapping[str, Any]) -> tuple[Target, ...]:
    namespace = _text(args, "namespace")
    return (
        Target("cronjobs", "batch/v1", _text(args, "cronjob"), namespace),
        Target("jobs", "batch/v1", _text(args, "job_name"), namespace),
    )


def _manifest(args: Mapping[str, Any]) -> tuple[Target, ...]:
    """Every document of the manifest, in the namespace ``k8s_apply`` puts it (its own, else the call's)."""
    try:
        documents = [d for d in yaml.safe_load_all(str(args.get("manifest", ""))) if d]
    except yaml.YAMLError as exc:
        raise _Unreadable(f"its manifest is not valid YAML ({exc}); send a valid manifest") from None
    if not documents:
        raise _Unreadable("its manifest holds no document; send at least one object")
    targets = []
    for index, document in enumerate(documents, 1):
        kind = document.get("kind") if isinstance(document, Mapping) else None
        api_version = document.get("apiVersion") if isinstance(document, Mapping) else None
        if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
            raise _Unreadable(
                f"document {index} of its manifest has no kind and apiVersion; every document needs "
                "apiVersion, kind and metadata.name"
            )
        metadata = document.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        targets.append(
            Target(
                kind,
                api_version,
                _text(metadata, "name"),
                _text(metadata, "namespace") or _text(args, "namespace"),
                secret_type=_text(document, "type"),
            )
        )
    return tuple(targets)


ROLLOUTS = "rollouts.argoproj.io"


def _rollouts_get(args: Mapping[str, Any]) -> tuple[Target, ...]:
    """A rollout (every rollout without a name), or the experiments or analysis runs of a namespace (its
    ``name`` then names the rollout that owns them, not one of them)."""
    owned = {"experiments": "experiments.argoproj.io", "analysis-runs": "analysisruns.argoproj.io"}
    kind = owned.get(str(args.get("show")))
    if kind is not None:
        return (Target(kind, None, None, _text(args, "namespace")),)
    return _one(ROLLOUTS)(args)


RULES: Mapping[str, Rule] = {
    # Kubernetes, read-only
    "k8s_get": _one(),
    "k8s_logs": _one("pods", "v1"),
    "k8s_top": _top,
    "k8s_api_resources": _none,
    "k8s_rollout_status": _one(),
    "k8s_rollout_history": _one(),
    "k8s_can_i": _none,
    # Kubernetes, mutating
    "k8s_apply": _manifest,
    "k8s_patch": _one(),
    "k8s_scale": _one(),
    "k8s_set_image": _one(),
    "k8s_rollout_restart": _one(),
    "k8s_rollout_undo": _one(),
    "k8s_delete": _one(),
    "k8s_cordon": _one("nodes", "v1"),
    "k8s_uncordon": _one("nodes", "v1"),
    "k8s_drain": _drain,
    "k8s_create_job_from_cronjob": _job_from_cronjob,
    "k8s_run_pod": _one("pods", "v1"),
    "k8s_exec": _one("pods", "v1"),
    # Helm: releases; the charts' own objects are not checked (see the module docstring)
    "helm_get": _release,
    "helm_charts": _none,
    "helm_template": _none,  # renders locally; its namespace argument is still checked
    "helm_install": _release,
    "helm_upgrade": _release,
    "helm_rollback": _release,
    "helm_uninstall": _release,
    # Argo Rollouts
    "rollouts_get": _rollouts_get,
    "rollouts_promote": _one(ROLLOUTS),
    "rollouts_pause": _one(ROLLOUTS),
    "rollouts_resume": _one(ROLLOUTS),
    "rollouts_abort": _one(ROLLOUTS),
    "rollouts_retry": _one(ROLLOUTS),
    "rollouts_set_image": _one(ROLLOUTS),
    "rollouts_restart": _one(ROLLOUTS),
    "rollouts_undo": _one(ROLLOUTS),
    # Jenkins acts outside the cluster (its own RBAC check on jenkinsjobs.bosun.dev applies)
    "jenkins_get": _none,
    "jenkins_trigger_build": _none,
    "jenkins_stop_build": _none,
}
"""Which objects each tool reaches, from its arguments (with the tool's defaults filled in). A tool
without a rule is refused: its scope cannot be checked."""


def namespaces_in(args: Mapping[str, Any]) -> frozenset[str]:
    """Every namespace the arguments name, wherever: ``namespace`` keys at any depth (a patch, Jenkins
    parameters) and ``metadata.namespace`` inside manifests. Naming one outside the task is refused even
    where the tool would ignore it: the check stays simple and errs on the side of refusing."""
    found: set[str] = set()

    def visit(value: Any, key: str | None) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k == "namespace" and isinstance(v, str) and v:
                    found.add(v)
                else:
                    visit(v, k)
        elif isinstance(value, list):
            for item in value:
                visit(item, key)
        elif isinstance(value, str) and key is not None and key.startswith("manifest"):
            try:
                documents = list(yaml.safe_load_all(value))
            except yaml.YAMLError:
                return  # call_of refuses the manifest itself
            for document in documents:
                visit(document, None)

    visit(args, None)
    return frozenset(found)


def call_of(tool: str, args: Mapping[str, Any], *, read_only: bool) -> Call:
    """``tool`` called with ``args`` (the tool's defaults filled in), as objects and namespaces."""
    namespaces = namespaces_in(args)
    rule = RULES.get(tool)
    if rule is None:
        problem = (
            f"{tool} refused: Bosun does not know which objects {tool} reaches, so its scope cannot be "
            "checked; use another tool"
        )
        return Call(tool, read_only, namespaces, (), problem)
    try:
        return Call(tool, read_only, namespaces, rule(args))
    except _Unreadable as exc:
        return Call(tool, read_only, namespaces, (), f"{tool} refused: {exc}")


def argument_error(call: Call, scope: Scope) -> str | None:
    """Why the call may not run, judged from its arguments alone (None: discovery has to decide)."""
    if call.problem is not None:
        return call.problem
    if scope.operator_namespace is not None and scope.operator_namespace in call.namespaces:
        return _operator_namespace_refusal(call.tool, scope.operator_namespace)
    return _outside(call.tool, call.namespaces, scope)


def resource_error(call: Call, scope: Scope, discovered: Mapping[Lookup, Resource | None]) -> str | None:
    """Why the call may not run, given what discovery said about each kind it names (None: it may).

    ``discovered`` maps every lookup of ``call`` to its resource, or None when the API server serves no
    such kind; a lookup missing from it counts as not served (fail closed)."""
    for target in call.targets:
        resource = target.known or discovered.get(target.lookup)
        problem = (
            _unserved(call.tool, target) if resource is None else _target_error(call, target, resource, scope)
        )
        if problem is not None:
            return problem
    return None


def touches_cluster(call: Call, discovered: Mapping[Lookup, Resource | None]) -> bool:
    """Whether a change reaches beyond one namespace: a cluster-scoped object, or a namespaced kind named
    without a namespace. Such a step is marked cluster-scoped in the proposal and approved as destructive
    (its approvers must be in the destructive approver groups)."""
    if call.read_only:
        return False
    for target in call.targets:
        resource = target.known or discovered.get(target.lookup)
        if resource is not None and (not resource.namespaced or target.namespace is None):
            return True
    return False


def _unserved(tool: str, target: Target) -> str:
    where = f" in apiVersion {target.api_version}" if target.api_version else ""
    return (
        f"{tool} refused: the API server serves no resource type {target.kind!r}{where}, so whether "
        f"{_what(target.kind, target)} is namespaced cannot be told from API discovery; check the kind and "
        "apiVersion (k8s_api_resources lists what the cluster serves)"
    )


def _target_error(call: Call, target: Target, resource: Resource, scope: Scope) -> str | None:
    what = _what(resource.kind, target, resource.namespaced)
    if _is_namespace(resource) and target.name is not None and target.name == scope.operator_namespace:
        return _operator_namespace_refusal(call.tool, target.name)
    if call.read_only:
        if resource.namespaced and target.namespace is None and not scope.cluster_scope:
            return (
                f"{call.tool} refused: {resource.qualified} are namespaced and no namespace was given, so it "
                f"would read every namespace; pass namespace (one of [{scope.allowed}]) — reading across "
                "namespaces needs a task with cluster-scope consent"
            )
        return None
    denied = _denied(resource, target)
    if denied is not None:
        return (
            f"{call.tool} refused: {what} ({resource.qualified}) is never changed by the agent, whatever "
            f"RBAC allows: {denied}; an administrator has to do this by hand"
        )
    if not resource.namespaced and not scope.cluster_scope:
        ignored = f", so its namespace {target.namespace} does not apply" if target.namespace else ""
        return (
            f"{call.tool} refused: {what} is cluster-scoped (API discovery: {resource.qualified}){ignored}; "
            f"without cluster-scope consent a task changes only objects in its targetNamespaces "
            f"[{scope.allowed}]. The task needs cluster-scope consent (its spec, allowed by the operator's "
            "configuration), or an administrator does this by hand"
        )
    if _is_namespace(resource) and target.name is not None:
        # Changing a Namespace object changes that namespace: even with consent it must be a target.
        return _outside(call.tool, [target.name], scope)
    if resource.namespaced and target.namespace is None and not scope.cluster_scope:
        return (
            f"{call.tool} refused: {what} is namespaced and no namespace was given, so it would change "
            f"{resource.qualified} in every namespace; pass namespace (one of [{scope.allowed}]) — "
            "changes across namespaces need a task with cluster-scope consent"
        )
    return None


def _is_namespace(resource: Resource) -> bool:
    return resource.group == "" and resource.kind == "Namespace"


def _denied(resource: Resource, target: Target) -> str | None:
    """Why the agent never changes this object (None: it is not on the deny-list)."""
    for group, why in DENIED_GROUPS.items():
        if resource.group == group or resource.group.endswith(f".{group}"):
            return why
    if resource.group == "" and resource.kind == "Secret" and target.secret_type == SERVICE_ACCOUNT_TOKEN:
        return f"a Secret of type {SERVICE_ACCOUNT_TOKEN} requests a ServiceAccount token"
    return None


def _outside(tool: str, namespaces: Iterable[str], scope: Scope) -> str | None:
    outside = sorted(set(namespaces) - set(scope.target_namespaces))
    if not outside:
        return None
    return (
        f"{tool} refused: namespace {', '.join(outside)} is outside this task's targetNamespaces "
        f"[{scope.allowed}]; stay within them, or create a task whose spec.targetNamespaces includes it"
    )


def _what(kind: str, target: Target, namespaced: bool = True) -> str:
    """``Deployment web in namespace shop``, ``every Node``: the object as a person would name it."""
    place = f" in namespace {target.namespace}" if namespaced and target.namespace else ""
    return f"{kind} {target.name}{place}" if target.name else f"every {kind}{place}"


def _operator_namespace_refusal(tool: str, namespace: str | None) -> str:
    return (
        f"{tool} refused: namespace {namespace} is where the Bosun operator runs, and the agent never "
        "touches it, reads included; an administrator has to do this by hand"
    )
