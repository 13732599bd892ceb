"""Who asked and who approved, as the API server authenticated them: the stamped annotations read back,
and whom Bosun acts as.

Bosun acts as the person who asked, so who that is must come from the API server, never from client YAML:
MutatingAdmissionPolicies (``bosun.api.identity_policies``) stamp the authenticated user and groups at
admission, overwriting whatever a client wrote: the requester when a task is created, the approver when a
grant is created, and on a task who set ``approve`` and the hash of the proposal they could see then. The
operator refuses to trust any of these annotations unless the policies are installed (fail closed),
because without them they would be ordinary client input.

Group lists are one annotation each, joined with ``,`` after escaping ``\\`` and ``,`` with a backslash
(``encode_groups``/``decode_groups``), so a group named ``a,b`` is impersonated as itself, never as ``a``
and ``b``.

Annotation approvals are recorded as ApprovalGrants created by the operator; such a grant's stamped creator
is the operator itself, so only then is ``bosun.dev/on-behalf-of`` (copied from the task's stamped
``approved-by``) believed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bosun_tools.identity import Identity

from bosun.api.models import DNS_SUBDOMAIN, GROUP, UserRef

REQUESTER = f"{GROUP}/requester"
REQUESTER_GROUPS = f"{GROUP}/requester-groups"
APPROVED_BY = f"{GROUP}/approved-by"
APPROVED_BY_GROUPS = f"{GROUP}/approved-by-groups"
APPROVER = f"{GROUP}/approver"
APPROVER_GROUPS = f"{GROUP}/approver-groups"
ON_BEHALF_OF = f"{GROUP}/on-behalf-of"
ON_BEHALF_OF_GROUPS = f"{GROUP}/on-behalf-of-groups"
APPROVED_HASH = f"{GROUP}/approved-hash"
APPROVE_ANNOTATION = "approve"
"""``kubectl annotate agenttask X approve=true``: short on purpose, it is what people type."""
APPROVAL_STAMPS = (APPROVED_BY, APPROVED_BY_GROUPS, APPROVED_HASH)
"""What admission stamps beside ``approve``: who set it, and the hash of the proposal they could see."""
EXECUTION_SERVICE_ACCOUNT = f"{GROUP}/execution-service-account"
"""Namespace annotation overriding ``BOSUN_EXECUTION_SERVICE_ACCOUNT`` (see ``execution_identity``)."""


def encode_groups(groups: Iterable[str]) -> str:
    """The annotation form of a group list, exactly as the identity policies write it at admission."""
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


def _user(annotations: Mapping[str, str], user_key: str, groups_key: str) -> UserRef | None:
    user = annotations.get(user_key)
    if not user:
        return None
    return UserRef(user=user, groups=decode_groups(annotations.get(groups_key, "")))


def requester_of(meta: Mapping[str, Any]) -> UserRef | None:
    return _user(meta.get("annotations") or {}, REQUESTER, REQUESTER_GROUPS)


@dataclass(frozen=True)
class AnnotationApproval:
    """An ``approve`` annotation as admission stamped it: who set it and the hash they could see
    ('' when no proposal was awaiting approval then, which approves nothing)."""

    value: str
    approver: UserRef | None
    plan_hash: str


def annotation_approval(meta: Mapping[str, Any]) -> AnnotationApproval | None:
    """The ``approve`` annotation of a task, or None when there is none."""
    annotations = meta.get("annotations") or {}
    if APPROVE_ANNOTATION not in annotations:
        return None
    return AnnotationApproval(
        value=str(annotations[APPROVE_ANNOTATION]),
        approver=_user(annotations, APPROVED_BY, APPROVED_BY_GROUPS),
        plan_hash=str(annotations.get(APPROVED_HASH, "")),
    )


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


DEFAULT_PRIVILEGED_GROUPS = ("system:masters",)
DEFAULT_PROTECTED_NAMESPACES = ("kube-system",)


def impersonation_refusal(
    requester: UserRef, privileged_groups: Iterable[str], protected_namespaces: Iterable[str]
) -> str | None:
    """Why Bosun will not act as this requester (None: it will).

    RBAC can allow the operator to impersonate names but never exclude some, so whoever holds the
    operator's credentials could act as anyone its rules admit; Bosun itself at least never lends its
    hands to the identities that hold unbounded power: members of privileged groups (``system:masters``
    bypasses authorization altogether, and constrained impersonation refuses it anyway), the cluster's own
    ``system:`` users (controllers, nodes) and the ServiceAccounts of protected namespaces."""
    user = requester.user
    privileged = sorted(set(requester.groups) & set(privileged_groups))
    if privileged:
        return (
            f"{user} is in {', '.join(privileged)}, whose rights no RBAC binding grants or limits; "
            "Bosun does not act as such a user (BOSUN_PRIVILEGED_GROUPS). Create the task as an identity "
            "whose rights come from RoleBindings or ClusterRoleBindings, e.g. one bound to the "
            "cluster-admin ClusterRole"
        )
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2] if user.count(":") >= 3 else ""
        if namespace in set(protected_namespaces):
            return (
                f"{user} is a ServiceAccount of {namespace}, where the cluster's own controllers live; Bosun "
                "does not act as one (BOSUN_PROTECTED_NAMESPACES). Create the task as another identity"
            )
        return None
    if user.startswith("system:"):
        return (
            f"{user} is one of the cluster's own system identities; Bosun does not act as one. Create the "
            "task as a person or a ServiceAccount"
        )
    return None


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
