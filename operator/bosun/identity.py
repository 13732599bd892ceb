"""Who asked and who approved, as the API server authenticated them (safety rule 2).

A MutatingAdmissionPolicy (GA in Kubernetes 1.36; generated into ``crds/identity-policy.yaml``) stamps the
authenticated user and groups into annotations at admission, overwriting whatever a client wrote:

- AgentTask CREATE: ``bosun.dev/requester`` and ``bosun.dev/requester-groups``;
- AgentTask UPDATE that sets or changes the ``approve`` annotation: ``bosun.dev/approved-by`` (+ groups);
- ApprovalGrant CREATE: ``bosun.dev/approver`` (+ groups).

Group lists are one annotation each, joined with ``,`` after escaping ``\\`` and ``,`` with a backslash
(``encode_groups``/``decode_groups``), so a group named ``a,b`` is impersonated as itself, never as ``a``
and ``b``.

On UPDATE the stamped annotations are restored from the stored object, so they cannot be edited later;
the operator copies the requester into ``status.requester`` at first sight anyway (status needs its own
RBAC). The operator refuses to trust these annotations unless the policy is installed (fail closed; see
``policy_installed`` in the handlers), because without it they would be ordinary client input.

Annotation approvals are recorded as ApprovalGrants created by the operator; such a grant's stamped creator
is the operator itself, so only then is ``bosun.dev/on-behalf-of`` (copied from the task's stamped
``approved-by``) believed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bosun_tools.kube import Identity

from bosun.models import DNS_SUBDOMAIN, GROUP, UserRef

POLICY_NAME = "bosun-identity"
REQUESTER = f"{GROUP}/requester"
REQUESTER_GROUPS = f"{GROUP}/requester-groups"
APPROVED_BY = f"{GROUP}/approved-by"
APPROVED_BY_GROUPS = f"{GROUP}/approved-by-groups"
APPROVER = f"{GROUP}/approver"
APPROVER_GROUPS = f"{GROUP}/approver-groups"
ON_BEHALF_OF = f"{GROUP}/on-behalf-of"
ON_BEHALF_OF_GROUPS = f"{GROUP}/on-behalf-of-groups"
APPROVE_ANNOTATION = "approve"
"""``kubectl annotate agenttask X approve=true``: short on purpose, it is what people type."""
EXECUTION_SERVICE_ACCOUNT = f"{GROUP}/execution-service-account"
"""Namespace annotation overriding ``BOSUN_EXECUTION_SERVICE_ACCOUNT`` (see ``execution_identity``)."""


_GROUPS_EXPR = (
    "has(request.userInfo.groups) ? request.userInfo.groups"
    r".map(g, g.replace('\\', '\\\\').replace(',', '\\,')).join(',') : ''"
)
"""Groups joined with ``,`` after escaping ``\\`` and ``,`` with a backslash (CEL strings extension), so a
group named ``a,b`` stays one group: split naively it would impersonate groups ``a`` and ``b``."""


def encode_groups(groups: Iterable[str]) -> str:
    """The annotation form of a group list, exactly as ``_GROUPS_EXPR`` writes it at admission."""
    return ",".join(g.replace("\\", "\\\\").replace(",", "\\,") for g in groups)


def decode_groups(text: str) -> list[str]:
    """Inverse of ``encode_groups``: split on unescaped commas, drop the escapes, skip empty names."""
    groups: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ",":
            groups.append("".join(current))
            current = []
        else:
            current.append(char)
    groups.append("".join(current))
    return [g for g in groups if g]


def _annotations_expr(keys: tuple[str, str]) -> str:
    user, groups = keys
    return (
        f'Object{{metadata: Object.metadata{{annotations: {{"{user}": request.userInfo.username, '
        f'"{groups}": {_GROUPS_EXPR}}}}}}}'
    )


def _restore_expr(keys: tuple[str, ...]) -> str:
    """Put back the stamped annotations the stored object had (absent ones stay as the client sent)."""
    entries = ", ".join(f'"{key}": oldObject.metadata.annotations["{key}"]' for key in keys)
    condition = " && ".join(f'"{key}" in oldObject.metadata.annotations' for key in keys)
    return f"{condition} ? Object{{metadata: Object.metadata{{annotations: {{{entries}}}}}}} : Object{{}}"


def _policy(
    name: str, resource: str, operations: list[str], conditions: list[dict[str, str]], expr: str
) -> Any:
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "bosun"}},
            "spec": {
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": ["*"],
                            "operations": operations,
                            "resources": [resource],
                        }
                    ]
                },
                "matchConditions": conditions,
                "mutations": [
                    {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": expr}}
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "bosun"}},
            "spec": {"policyName": name},
        },
    ]


def admission_policies() -> list[dict[str, Any]]:
    """The policies (and bindings) that stamp identities; fail closed (``failurePolicy: Fail``)."""
    has_old = "has(oldObject.metadata.annotations)"

    def same(key: str) -> str:
        return (
            f"(({has_old} && '{key}' in oldObject.metadata.annotations) ? "
            f"oldObject.metadata.annotations['{key}'] : '') == "
            f"object.metadata.annotations[?'{key}'].orValue('')"
        )

    # Stamp when approve is set or changed, and also when a client writes approved-by itself: then the
    # writer becomes the recorded approver, which is the truth about who re-affirmed the approval.
    approve_changed = (
        f"has(object.metadata.annotations) && '{APPROVE_ANNOTATION}' in object.metadata.annotations && "
        f"!({same(APPROVE_ANNOTATION)} && {same(APPROVED_BY)} && {same(APPROVED_BY_GROUPS)})"
    )
    return [
        *_policy(
            f"{POLICY_NAME}-task-requester",
            "agenttasks",
            ["CREATE"],
            [],
            _annotations_expr((REQUESTER, REQUESTER_GROUPS)),
        ),
        *_policy(
            f"{POLICY_NAME}-task-keep",
            "agenttasks",
            ["UPDATE"],
            [{"name": "had-requester", "expression": has_old}],
            _restore_expr((REQUESTER, REQUESTER_GROUPS)),
        ),
        *_policy(
            f"{POLICY_NAME}-task-approve",
            "agenttasks",
            ["UPDATE"],
            [{"name": "approve-changed", "expression": approve_changed}],
            _annotations_expr((APPROVED_BY, APPROVED_BY_GROUPS)),
        ),
        *_policy(
            f"{POLICY_NAME}-grant-approver",
            "approvalgrants",
            ["CREATE"],
            [],
            _annotations_expr((APPROVER, APPROVER_GROUPS)),
        ),
        *_policy(
            f"{POLICY_NAME}-grant-keep",
            "approvalgrants",
            ["UPDATE"],
            [{"name": "had-approver", "expression": has_old}],
            _restore_expr((APPROVER, APPROVER_GROUPS)),
        ),
    ]


def policy_names() -> list[str]:
    return [
        doc["metadata"]["name"] for doc in admission_policies() if doc["kind"] == "MutatingAdmissionPolicy"
    ]


def _user(annotations: Mapping[str, str], user_key: str, groups_key: str) -> UserRef | None:
    user = annotations.get(user_key)
    if not user:
        return None
    return UserRef(user=user, groups=decode_groups(annotations.get(groups_key, "")))


def requester_of(meta: Mapping[str, Any]) -> UserRef | None:
    return _user(meta.get("annotations") or {}, REQUESTER, REQUESTER_GROUPS)


def annotation_approver_of(meta: Mapping[str, Any]) -> UserRef | None:
    """Who last set ``approve`` on a task."""
    return _user(meta.get("annotations") or {}, APPROVED_BY, APPROVED_BY_GROUPS)


def grant_origin(meta: Mapping[str, Any], operator: Identity | None) -> tuple[UserRef | None, bool]:
    """The authenticated decider of a grant, and whether it came from an ``approve`` annotation: a grant's
    decider is its creator, except for the operator's own annotation-approval records, whose decider is the
    user the operator copied from the task's stamped annotation."""
    annotations = meta.get("annotations") or {}
    creator = _user(annotations, APPROVER, APPROVER_GROUPS)
    if creator is not None and operator is not None and creator.user == operator.user:
        on_behalf = _user(annotations, ON_BEHALF_OF, ON_BEHALF_OF_GROUPS)
        if on_behalf is not None:
            return on_behalf, True
    return creator, False


def approver_of(meta: Mapping[str, Any], operator: Identity | None) -> UserRef | None:
    return grant_origin(meta, operator)[0]


def as_identity(user: UserRef) -> Identity:
    return Identity(user.user, tuple(g for g in user.groups if g != "system:authenticated"))


# ----- execution identity ----------------------------------------------------------------------------------

_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)


def service_account_setting(raw: str, where: str) -> str:
    """A ServiceAccount name, or "" for the requester; ``where`` names the variable or annotation to fix."""
    value = raw.strip()
    if value and (len(value) > 253 or not _SUBDOMAIN.match(value)):
        raise ValueError(
            f"{where}={raw!r} is not a ServiceAccount name (a DNS-1123 subdomain: lower-case letters, "
            "digits, '-' and '.'); set it to e.g. bosun-executor, or remove it to execute as the requester"
        )
    return value


def service_account_identity(namespace: str, name: str) -> Identity:
    """What the API server authenticates a ServiceAccount token as, so impersonating it gets the same
    rights, including those bound to the ServiceAccount groups."""
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclass(frozen=True)
class ExecutionChoice:
    """Who runs a task's approved calls; ``problem`` (nothing runs) names the annotation to fix."""

    identity: Identity
    service_account: str | None = None
    problem: str | None = None


def execution_identity(
    requester: Identity,
    task_namespace: str,
    default: str,
    annotations: Mapping[str, Mapping[str, str]],
) -> ExecutionChoice:
    """Execute as the requester unless every namespace the task touches opts into the same ServiceAccount.

    ``annotations`` maps the task's namespace and each target namespace to its Namespace annotations;
    ``bosun.dev/execution-service-account`` there overrides ``default`` (``BOSUN_EXECUTION_SERVICE_ACCOUNT``,
    "" = the requester). The account is the one of that name in the task's namespace. Only when all
    these namespaces name the same account does it run the approved calls; if any says "" or another name,
    the calls run as the requester, so a task placed in a namespace that delegates to an account cannot
    carry that delegation into a namespace whose admin did not agree to it. A value that is not a
    ServiceAccount name stops the task (fail closed) rather than silently running as someone else.
    """
    settings: set[str] = set()
    for namespace, found in annotations.items():
        raw = found.get(EXECUTION_SERVICE_ACCOUNT, default)
        try:
            settings.add(service_account_setting(raw, f"namespace {namespace} {EXECUTION_SERVICE_ACCOUNT}"))
        except ValueError as exc:
            return ExecutionChoice(
                requester,
                problem=f"{exc}; a cluster admin must fix it (kubectl annotate namespace {namespace} "
                f"{EXECUTION_SERVICE_ACCOUNT}=<name> --overwrite); nothing was run",
            )
    if len(settings) != 1 or "" in settings:
        return ExecutionChoice(requester)
    [name] = settings
    return ExecutionChoice(service_account_identity(task_namespace, name), service_account=name)
