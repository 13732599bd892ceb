"""The generated CRDs: structural and readable with kubectl (that ``crds/`` matches the models is
tests/unit/test_golden.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from bosun.api import crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _walk(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths violating structural-schema rules (every node typed, no refs, no anyOf/null types)."""
    problems = []
    if "$ref" in schema or "anyOf" in schema or schema.get("type") == "null":
        problems.append(path)
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(path)
    for name, sub in (schema.get("properties") or {}).items():
        problems += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += _walk(schema["items"], f"{path}[]")
    return problems


def test_schemas_are_structural_and_described() -> None:
    for crd in (crdgen.agenttask_crd(), crdgen.approvalgrant_crd()):
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(schema) == []
        spec = schema["properties"]["spec"]
        assert all("description" in prop for prop in spec["properties"].values())
        assert {"rule": "self == oldSelf"}.items() <= spec["x-kubernetes-validations"][0].items()


def test_agenttask_shape() -> None:
    crd = crdgen.agenttask_crd()
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["agt"]
    assert crd["spec"]["names"]["categories"] == ["bosun"]
    columns = {c["name"]: (c["jsonPath"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": (".status.phase", 0),
        "Reason": ('.status.conditions[?(@.type=="Ready")].reason', 0),
        "Message": (".status.message", 0),
        "Requester": (".metadata.annotations.bosun\\.dev/requester", 0),
        "Age": (".metadata.creationTimestamp", 0),
        "Pending": (".status.pendingSteps", 1),
        "Hash": (".status.proposal.shortHash", 1),
        "Follow-Up-Of": (".spec.followUpOf", 1),
        "Request": (".status.requestPreview", 1),
    }
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    args = status["proposal"]["properties"]["steps"]["items"]["properties"]["args"]
    assert args == {
        "description": args["description"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert status["steps"]["maxItems"] == 50
    assert "shortHash" not in status["proposal"]["required"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["maxIterations"]["default"] == 3
    assert spec["required"] == ["request"]


def test_the_approval_policy_in_status_is_bounded_and_typed() -> None:
    """``status.approvalPolicy``: what approving the proposal takes, every list and text bounded so that a
    policy of many namespaces can never make a status write fail."""
    crd = crdgen.agenttask_crd()
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    policy = status["approvalPolicy"]
    fields = policy["properties"]
    assert {name: fields[name]["type"] for name in fields} == {
        "fourEyes": "boolean",
        "requiredApprovals": "integer",
        "destructiveApproverGroups": "array",
        "annotationApprovals": "boolean",
        "maxGrantAgeSeconds": "number",
        "problem": "string",
        "summary": "string",
    }
    assert (fields["requiredApprovals"]["minimum"], fields["requiredApprovals"]["maximum"]) == (1, 8)
    assert fields["maxGrantAgeSeconds"]["minimum"] == 0
    assert fields["summary"]["maxLength"] == 1088
    rules = fields["destructiveApproverGroups"]
    assert rules["maxItems"] == 21  # the task's namespace and up to 20 targets, one requirement each
    rule = rules["items"]["properties"]
    assert (rule["groups"]["maxItems"], rule["groups"]["items"]["maxLength"]) == (8, 253)
    assert rule["source"]["maxLength"] == 128
    assert policy["required"] == [
        "fourEyes",
        "requiredApprovals",
        "annotationApprovals",
        "maxGrantAgeSeconds",
        "summary",
    ]
    assert all("description" in prop for prop in fields.values())


def test_a_status_nobody_wrote_reads_as_generation_zero_observed() -> None:
    """kstatus compares status.observedGeneration with metadata.generation; without this default a task
    or grant the operator has not looked at yet has no status at all and reads as Current."""
    for crd in (crdgen.agenttask_crd(), crdgen.approvalgrant_crd()):
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["default"] == {"observedGeneration": 0}


def test_identity_policies_are_generated_fail_closed() -> None:
    docs = list(yaml.safe_load_all((CRDS / "identity-policy.yaml").read_text()))
    policies = [d for d in docs if d["kind"] == "MutatingAdmissionPolicy"]
    bindings = {d["spec"]["policyName"] for d in docs if d["kind"] == "MutatingAdmissionPolicyBinding"}
    assert {p["metadata"]["name"] for p in policies} == bindings
    assert all(p["spec"]["failurePolicy"] == "Fail" for p in policies)
