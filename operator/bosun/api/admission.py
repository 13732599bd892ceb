"""Refuse at admission an AgentTask whose requester cannot even read a namespace it targets.

Without this, ``spec.targetNamespaces: [kube-system]`` from someone with no rights there is admitted and only
fails minutes later, at planning or at the dry-run, far from the ``kubectl apply`` that caused it. A
ValidatingAdmissionPolicy (generated into ``crds/identity-policy.yaml`` beside the identity policies, so the
chart and ``make operator`` install it with them) asks the API server's authorizer about the *requesting
user* (the CEL ``authorizer`` variable; for an impersonated request, the impersonated user) and refuses the
create with a message naming ``spec.targetNamespaces[i]``, the namespace and what to do.

"Can read" means: may ``list`` ``pods`` in that namespace. It is what the built-in ``view`` role (and so
``edit`` and ``admin``) grants, what every investigation starts with, and needs no knowledge of which
resources a request will touch. It is a floor, not the authority: every later call still runs as the
requester, so their RBAC decides each one. The task's own namespace is not checked, whether implied (no
``targetNamespaces``) or listed: creating a task there is the consent that counts, as it always was.

Cost: the API server charges a fixed 350,000 per authorization check, against 1,000,000 per expression and
10,000,000 per policy binding (``k8s.io/apiserver/pkg/cel/library/cost.go``, ``pkg/apis/cel/config.go``), so
one expression cannot walk the whole list. There is one validation per list position instead, each making at
most one check: 20 positions (the schema's ``maxItems``) cost at most 7,000,000.
"""

from __future__ import annotations

from typing import Any

from annotated_types import MaxLen

from bosun.api.models import GROUP, AgentTaskSpec

TARGETS_POLICY_NAME = "bosun-target-namespaces"
READ_CHECK = ("", "pods", "list")
"""(API group, resource, verb) that proves a requester can read a namespace."""

_FIELD = "spec.targetNamespaces"


def _max_targets() -> int:
    """The schema's ``maxItems`` for ``targetNamespaces``, so the positions checked follow the model."""
    field = AgentTaskSpec.model_fields["target_namespaces"]
    limits = [m.max_length for m in field.metadata if isinstance(m, MaxLen)]
    if not limits:
        raise RuntimeError("AgentTaskSpec.target_namespaces lost its max_length; the policy needs a bound")
    return limits[0]


def _validation(index: int) -> dict[str, str]:
    group, resource, verb = READ_CHECK
    target = f"variables.targets[{index}]"
    return {
        "expression": (
            f"size(variables.targets) <= {index} || {target} == request.namespace || "
            f"authorizer.group('{group}').resource('{resource}').namespace({target}).check('{verb}').allowed()"
        ),
        # A static message is what the API server shows if the messageExpression itself fails.
        "message": f"{_FIELD}: the requester may not {verb} {resource} in one of these namespaces",
        "messageExpression": (
            f"'{_FIELD}[{index}]: ' + request.userInfo.username + "
            f"' may not {verb} {resource} in namespace ' + {target} + "
            "', so Bosun could not even read it on their behalf. Ask an admin of ' + "
            f"{target} + ' for read access (e.g. a RoleBinding to the view ClusterRole there), or remove ' + "
            f"{target} + ' from {_FIELD}.'"
        ),
        "reason": "Forbidden",
    }


def target_namespace_policies() -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy (and its Deny binding) checking ``spec.targetNamespaces`` on CREATE;
    fail closed (``failurePolicy: Fail``). The spec is immutable, so CREATE is the only moment to check."""
    labels = {"app.kubernetes.io/part-of": "bosun"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": TARGETS_POLICY_NAME, "labels": labels},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": ["*"],
                            "operations": ["CREATE"],
                            "resources": ["agenttasks"],
                        }
                    ]
                },
                "variables": [
                    {"name": "targets", "expression": "object.spec.?targetNamespaces.orValue([])"},
                ],
                "validations": [_validation(i) for i in range(_max_targets())],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": TARGETS_POLICY_NAME, "labels": labels},
            "spec": {"policyName": TARGETS_POLICY_NAME, "validationActions": ["Deny"]},
        },
    ]
