"""The MutatingAdmissionPolicies that stamp who asked and who approved, generated into
``crds/identity-policy.yaml`` (by ``bosun.api.crdgen``, beside the ``bosun.api.admission`` policy).

The API server, not client YAML, must say who someone is: these policies (GA in Kubernetes 1.36) write the
authenticated user and groups into annotations at admission, overwriting whatever a client wrote:

- AgentTask CREATE: ``bosun.dev/requester`` and ``bosun.dev/requester-groups``; ``approve`` and its stamps
  are removed, so nothing written at creation approves anything.
- AgentTask UPDATE that sets or changes ``approve`` (or touches a stamp): ``bosun.dev/approved-by`` (+
  groups) and ``bosun.dev/approved-hash``, the hash of the proposal the stored task showed as awaiting
  approval at that moment ('' when none). An annotation approval therefore names the hash it approves,
  exactly like an ApprovalGrant's ``spec.planHash``, and approves nothing else: not a later revision, not
  a proposal that appeared after it was set.
- ApprovalGrant CREATE: ``bosun.dev/approver`` (+ groups).

On UPDATE the requester and approver stamps are restored from the stored object, so they cannot be edited
later. What the annotations mean, and when the operator believes them, is ``bosun.core.identity``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bosun.api.models import GROUP
from bosun.core.identity import (
    APPROVAL_STAMPS,
    APPROVE_ANNOTATION,
    APPROVED_BY,
    APPROVED_BY_GROUPS,
    APPROVED_HASH,
    APPROVER,
    APPROVER_GROUPS,
    REQUESTER,
    REQUESTER_GROUPS,
)

POLICY_NAME = "bosun-identity"
"""The prefix of every identity policy's name."""

_GROUPS_EXPR = (
    "has(request.userInfo.groups) ? request.userInfo.groups"
    r".map(g, g.replace('\\', '\\\\').replace(',', '\\,')).join(',') : ''"
)
"""Groups joined with ``,`` after escaping ``\\`` and ``,`` with a backslash (CEL strings extension), so a
group named ``a,b`` stays one group: split naively it would impersonate groups ``a`` and ``b``. The same
encoding as ``bosun.core.identity.encode_groups``, which the operator reads back with ``decode_groups``."""


def _path(key: str) -> str:
    """A CEL expression for the JSON-patch path of one annotation (``/`` in keys escaped as ``~1``)."""
    return f'"/metadata/annotations/" + jsonpatch.escapeKey("{key}")'


def _set_annotations_expr(values: Mapping[str, str], remove: Iterable[str] = ()) -> str:
    """A JSON patch (as a CEL list) that removes ``remove`` and sets each key of ``values`` to its CEL value.

    JSON patches rather than apply configurations: an apply configuration converts the whole object to its
    schema type first, so a task with a type error (``maxIterations: "three"``) was refused with this
    policy's name instead of the API server's schema error naming the field."""
    removed = ", ".join(f'"{key}"' for key in remove)
    strip = (
        f"[{removed}].filter(k, k in object.metadata.annotations)"
        '.map(k, JSONPatch{op: "remove", path: "/metadata/annotations/" + jsonpatch.escapeKey(k)})'
    )
    sets = ", ".join(
        f'JSONPatch{{op: "add", path: {_path(key)}, value: {expr}}}' for key, expr in values.items()
    )
    # string(): values read from ``oldObject`` are typed dyn, and a CEL map literal needs one value type.
    whole = ", ".join(f'"{key}": string({expr})' for key, expr in values.items())
    existing = f"{strip} + [{sets}]" if removed else f"[{sets}]"
    return (
        f"has(object.metadata.annotations) ? {existing} : "
        f'[JSONPatch{{op: "add", path: "/metadata/annotations", value: {{{whole}}}}}]'
    )


def _old(key: str) -> str:
    return f'oldObject.metadata.annotations["{key}"]'


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
                "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": expr}}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "bosun"}},
            "spec": {"policyName": name},
        },
    ]


PROPOSAL_AWAITING_EXPR = (
    "(has(oldObject.status) && has(oldObject.status.phase) && oldObject.status.phase == 'AwaitingApproval' "
    "&& has(oldObject.status.proposal) && has(oldObject.status.proposal.hash)) "
    "? oldObject.status.proposal.hash : ''"
)
"""The hash of the proposal the stored task shows as awaiting approval, '' when there is none: what the
person setting ``approve`` could see. ``oldObject`` is the stored object, whose status only the status
subresource writes, so the annotating client cannot choose it."""


def admission_policies() -> list[dict[str, Any]]:
    """The policies (and bindings) that stamp identities; fail closed (``failurePolicy: Fail``)."""
    user = "request.userInfo.username"
    has_old = "has(oldObject.metadata.annotations)"

    def same(key: str) -> str:
        return (
            f"(({has_old} && '{key}' in oldObject.metadata.annotations) ? "
            f"oldObject.metadata.annotations['{key}'] : '') == "
            f"object.metadata.annotations[?'{key}'].orValue('')"
        )

    # Stamp when approve is set or changed, and also when a client writes a stamp itself: then the writer
    # becomes the recorded approver of the proposal it could see, which is the truth about who approved.
    approve_changed = (
        f"has(object.metadata.annotations) && '{APPROVE_ANNOTATION}' in object.metadata.annotations && "
        f"!({' && '.join(same(key) for key in (APPROVE_ANNOTATION, *APPROVAL_STAMPS))})"
    )
    keep = " && ".join(f"'{key}' in oldObject.metadata.annotations" for key in (REQUESTER, REQUESTER_GROUPS))
    keep_grant = " && ".join(
        f"'{key}' in oldObject.metadata.annotations" for key in (APPROVER, APPROVER_GROUPS)
    )
    return [
        *_policy(
            f"{POLICY_NAME}-task-requester",
            "agenttasks",
            ["CREATE"],
            [],
            _set_annotations_expr(
                {REQUESTER: user, REQUESTER_GROUPS: _GROUPS_EXPR},
                remove=(APPROVE_ANNOTATION, *APPROVAL_STAMPS),
            ),
        ),
        *_policy(
            f"{POLICY_NAME}-task-keep",
            "agenttasks",
            ["UPDATE"],
            [{"name": "had-requester", "expression": f"{has_old} && {keep}"}],
            _set_annotations_expr({REQUESTER: _old(REQUESTER), REQUESTER_GROUPS: _old(REQUESTER_GROUPS)}),
        ),
        *_policy(
            f"{POLICY_NAME}-task-approve",
            "agenttasks",
            ["UPDATE"],
            [{"name": "approve-changed", "expression": approve_changed}],
            _set_annotations_expr(
                {APPROVED_BY: user, APPROVED_BY_GROUPS: _GROUPS_EXPR, APPROVED_HASH: PROPOSAL_AWAITING_EXPR}
            ),
        ),
        *_policy(
            f"{POLICY_NAME}-grant-approver",
            "approvalgrants",
            ["CREATE"],
            [],
            _set_annotations_expr({APPROVER: user, APPROVER_GROUPS: _GROUPS_EXPR}),
        ),
        *_policy(
            f"{POLICY_NAME}-grant-keep",
            "approvalgrants",
            ["UPDATE"],
            [{"name": "had-approver", "expression": f"{has_old} && {keep_grant}"}],
            _set_annotations_expr({APPROVER: _old(APPROVER), APPROVER_GROUPS: _old(APPROVER_GROUPS)}),
        ),
    ]


POLICY_API_VERSIONS = ("v1", "v1beta1", "v1alpha1")
"""admissionregistration.k8s.io versions of MutatingAdmissionPolicy, newest first: v1 from Kubernetes 1.36;
v1beta1 (1.34, 1.35) and v1alpha1 (1.32, 1.33) only behind the MutatingAdmissionPolicy feature gate and
``--runtime-config``. The fields Bosun uses are the same in all three."""

NO_POLICY_API = (
    "this cluster serves no MutatingAdmissionPolicy API (admissionregistration.k8s.io v1, v1beta1 or "
    "v1alpha1), so nothing can stamp who asked or approved: upgrade to Kubernetes 1.36, or start "
    "kube-apiserver with --feature-gates=MutatingAdmissionPolicy=true and "
    "--runtime-config=admissionregistration.k8s.io/v1beta1=true (1.34, 1.35) or .../v1alpha1=true "
    "(1.32, 1.33)"
)


def policy_api_version(served: Iterable[str]) -> str | None:
    """The version to read the identity policies through: the newest of ``served`` (the versions discovery
    lists for mutatingadmissionpolicies), or None when the cluster serves the API in none of them."""
    available = set(served)
    return next((version for version in POLICY_API_VERSIONS if version in available), None)


def policy_names() -> list[str]:
    return [
        doc["metadata"]["name"] for doc in admission_policies() if doc["kind"] == "MutatingAdmissionPolicy"
    ]
