"""Golden files: what Bosun generates, compared with what is checked in, so every change shows in review.

- The CRDs and admission policies (the identity MutatingAdmissionPolicies and the ValidatingAdmissionPolicy
  for target namespaces): their golden copy is ``crds/`` itself, the files `make crds` writes and the
  chart, `make operator` and the e2e tests install, so there is no second copy to drift.
- The tool definitions the model is offered (lean schemas): the first turn's, and every tool's once all
  toolsets are loaded, in ``tests/golden/``. They cost tokens on every model turn and are what the model
  reads about each tool, so a change there deserves the same review as a schema change.

A mismatch fails with a unified diff. To accept a change, regenerate and review the result in `git diff`:
``BOSUN_UPDATE_GOLDEN=1 uv run pytest -q tests/unit/test_golden.py``. That rewrites ``crds/`` too; `make
crds` does the same and also copies them into the chart, which tests/integration/test_chart.py checks.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bosun.api import crdgen
from bosun.core.words import is_true
from bosun.planner.toolsets import DEFAULT_TOOLSETS, offered_toolsets, openai_tools
from bosun.ports.gateway import ToolGateway
from bosun_tools.settings import ToolSettings

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
GOLDEN = ROOT / "tests" / "golden"
UPDATE = is_true(os.environ.get("BOSUN_UPDATE_GOLDEN", ""))
DIFF_LINES = 200
"""Lines of diff shown on a mismatch; enough to read, not so many that the failure scrolls away."""


def check(path: Path, generated: str, how_to_update: str) -> None:
    """Fail with a readable diff when ``path`` differs from ``generated``; rewrite it when updating."""
    where = path.relative_to(ROOT)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated)
        return
    if not path.exists():
        pytest.fail(f"{where} is missing: {how_to_update}", pytrace=False)
    checked_in = path.read_text()
    if checked_in == generated:
        return
    diff = list(
        difflib.unified_diff(
            checked_in.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            fromfile=f"{where} (checked in)",
            tofile=f"{where} (generated now)",
        )
    )
    shown = "".join(diff[:DIFF_LINES])
    more = f"\n... {len(diff) - DIFF_LINES} more diff lines" if len(diff) > DIFF_LINES else ""
    pytest.fail(f"{where} is stale: {how_to_update}\n{shown}{more}", pytrace=False)


@pytest.mark.parametrize("name", sorted(crdgen.manifests()))
def test_crds_and_admission_policies_match_crds_directory(name: str) -> None:
    check(CRDS / name, crdgen.manifests()[name], "run `make crds` and review the diff")


def test_crds_directory_holds_nothing_else() -> None:
    assert {p.name for p in CRDS.glob("*.yaml")} == set(crdgen.manifests())


def _json(definitions: list[dict[str, Any]]) -> str:
    return json.dumps(definitions, indent=2, ensure_ascii=False) + "\n"


@pytest.fixture
async def gateway() -> AsyncIterator[ToolGateway]:
    """The real tool server in-process: listing its tools needs no cluster."""
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


async def test_tool_definitions_of_the_first_turn(gateway: ToolGateway) -> None:
    definitions = await openai_tools(gateway, DEFAULT_TOOLSETS)
    check(
        GOLDEN / "tool_definitions_first_turn.json",
        _json(definitions),
        "rerun with BOSUN_UPDATE_GOLDEN=1 and review the diff",
    )


async def test_tool_definitions_of_every_toolset(gateway: ToolGateway) -> None:
    definitions = await openai_tools(gateway, await offered_toolsets(gateway))
    check(
        GOLDEN / "tool_definitions_all.json",
        _json(definitions),
        "rerun with BOSUN_UPDATE_GOLDEN=1 and review the diff",
    )
