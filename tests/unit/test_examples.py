"""The example YAMLs people copy are valid against the models (the e2e tests apply them for real)."""

from __future__ import annotations

from pathlib import Path

import yaml
from bosun.api.models import API_VERSION, AgentTaskSpec, ApprovalGrantSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_match_the_models() -> None:
    kinds = {"AgentTask": AgentTaskSpec, "ApprovalGrant": ApprovalGrantSpec}
    seen = set()
    for path in sorted(EXAMPLES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["apiVersion"] == API_VERSION, path
        kinds[doc["kind"]].model_validate(doc["spec"])
        seen.add(path.name)
    assert {"scale-task.yaml", "grant.yaml", "readonly-task.yaml"} <= seen
