"""Generate ``crds/`` from the pydantic models: ``python -m bosun.api.crdgen crds/``.

The models are the one source of the schemas; a unit test (``tests/unit/test_golden.py``) regenerates them
and fails with a diff when ``crds/`` is stale. Besides the two CRDs this writes the admission policies
(``identity-policy.yaml``): those that stamp identities (``bosun.api.identity_policies``: the API server,
not client YAML, says who created a task or a grant and who set ``approve=true``, because Bosun acts as
them) and the one refusing a task whose requester cannot read its ``targetNamespaces``
(``bosun.api.admission``). One file, so everything installing the identity policies (the chart,
``make operator``, the e2e tests) installs it too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from bosun.api import admission, identity_policies
from bosun.api.models import (
    GROUP,
    VERSION,
    AgentTaskSpec,
    AgentTaskStatus,
    ApprovalGrantSpec,
    ApprovalGrantStatus,
)
from bosun.core.identity import REQUESTER

_DROP = frozenset({"title", "additionalProperties", "$defs", "readOnly"})


def structural(model: type[BaseModel], *, keep_defaults: bool) -> dict[str, Any]:
    """A structural OpenAPI v3 schema (what CRDs require) from a pydantic model's JSON schema: refs
    inlined, ``anyOf [T, null]`` made plain optional ``T``, titles dropped, descriptions kept. Computed
    fields (``readOnly``, e.g. ``shortHash``) are described but not required: the operator derives them,
    and a status written without them is still whole."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs: dict[str, Any] = raw.get("$defs", {})

    def walk(node: Any, top: bool) -> Any:
        if isinstance(node, list):
            return [walk(item, False) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**target, **rest}, top)
        options = node.get("anyOf")
        if isinstance(options, list):
            concrete = [o for o in options if o != {"type": "null"}]
            if len(concrete) == 1:
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                rest.pop("default", None)
                return walk({**concrete[0], **rest}, top)
        out: dict[str, Any] = {}
        derived = {name for name, sub in (node.get("properties") or {}).items() if sub.get("readOnly")}
        for key, value in node.items():
            if key in _DROP or (key == "default" and not (keep_defaults and top)):
                continue
            if key == "const":
                out["enum"] = [value]
            elif key == "properties":
                out[key] = {name: walk(sub, keep_defaults and node is raw) for name, sub in value.items()}
            elif key == "required":
                out[key] = [name for name in value if name not in derived]
            else:
                out[key] = walk(value, False)
        if out.get("x-kubernetes-preserve-unknown-fields"):
            out["type"] = "object"
        return out

    schema: dict[str, Any] = walk(raw, True)
    return schema


UNOBSERVED = {"observedGeneration": 0}
"""The status of an object the operator has not written yet, as every reader sees it (the API server applies
schema defaults when it reads from etcd). Without it kstatus reads a new task or grant as Current ("no
conditions: nothing to do") until the operator first looks; with it, generation 1 against observed
generation 0 reads as in progress, which is the truth."""


def _columns(*columns: tuple[str, str, str, int]) -> list[dict[str, Any]]:
    out = []
    for name, kind, path, priority in columns:
        column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
        if priority:
            column["priority"] = priority
        out.append(column)
    return out


def crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    description: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["bosun"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": structural(spec, keep_defaults=True),
                                "status": {
                                    **structural(status, keep_defaults=False),
                                    "default": UNOBSERVED,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def agenttask_crd() -> dict[str, Any]:
    return crd(
        kind="AgentTask",
        plural="agenttasks",
        short_names=["agt"],  # not "task": kubectl get task would clash with Tekton's Task
        description="A request to Bosun, the AI operations agent: it investigates with read-only tools, "
        "proposes exact mutating calls with dry-run diffs, waits for an ApprovalGrant (or the annotation "
        "approve=true) bound to that proposal, executes it as the requester, verifies and records the story.",
        spec=AgentTaskSpec,
        status=AgentTaskStatus,
        # What people act on first (phase, why, who), then what -o wide adds; every text column is one
        # short line (kubectl never cuts a column). The requester is the admission stamp, there from the
        # first second, not status.requester, which the operator copies when it starts the task.
        columns=_columns(
            ("Phase", "string", ".status.phase", 0),
            ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', 0),
            ("Message", "string", ".status.message", 0),
            ("Requester", "string", ".metadata.annotations." + REQUESTER.replace(".", "\\."), 0),
            ("Age", "date", ".metadata.creationTimestamp", 0),
            ("Pending", "integer", ".status.pendingSteps", 1),
            ("Hash", "string", ".status.proposal.shortHash", 1),
            ("Follow-Up-Of", "string", ".spec.followUpOf", 1),
            ("Request", "string", ".status.requestPreview", 1),
        ),
    )


def approvalgrant_crd() -> dict[str, Any]:
    return crd(
        kind="ApprovalGrant",
        plural="approvalgrants",
        short_names=["ag", "grant"],
        description="One decision (Approve or Deny) about one AgentTask proposal, bound to its hash. "
        "The approver is the authenticated user who created it; grants are immutable.",
        spec=ApprovalGrantSpec,
        status=ApprovalGrantStatus,
        # Reason beside State: an accepted Deny reads "Accepted  Denied", never like an approval.
        columns=_columns(
            ("Task", "string", ".spec.taskRef.name", 0),
            ("Decision", "string", ".spec.decision", 0),
            ("State", "string", ".status.state", 0),
            ("Reason", "string", ".status.reason", 0),
            ("Approver", "string", ".status.approver.user", 0),
            ("Age", "date", ".metadata.creationTimestamp", 0),
        ),
    )


def dump(documents: list[dict[str, Any]]) -> str:
    header = (
        "# Generated by `python -m bosun.api.crdgen crds/` from operator/bosun/api/models.py; do not edit.\n"
    )
    return header + yaml.safe_dump_all(documents, sort_keys=False, width=1000, allow_unicode=True)


def manifests() -> dict[str, str]:
    """File name -> content of everything in ``crds/``."""
    return {
        f"{GROUP}_agenttasks.yaml": dump([agenttask_crd()]),
        f"{GROUP}_approvalgrants.yaml": dump([approvalgrant_crd()]),
        "identity-policy.yaml": dump(
            identity_policies.admission_policies() + admission.target_namespace_policies()
        ),
    }


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in manifests().items():
        path = directory / name
        path.write_text(content)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bosun.api.crdgen DIRECTORY", file=sys.stderr)
        return 2
    for path in write(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
