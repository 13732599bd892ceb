"""The patches Bosun computes for Argo Rollouts, checked against the plugin's rules (argo-rollouts v1.8).

What those patches do to real Rollout objects is covered in tests/integration/test_tools_rollouts.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bosun_tools import argo_rollouts
from bosun_tools.argo_rollouts import PlannedPatch
from bosun_tools.errors import ToolError

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "10s"}}]


def canary(
    status: dict[str, Any] | None = None, *, paused: bool = False, steps: list[Any] = STEPS
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "generation": 1},
        "spec": {
            "paused": paused,
            "strategy": {"canary": {"steps": steps}},
            "template": {
                "spec": {
                    "containers": [{"name": "web", "image": "web:1"}, {"name": "proxy", "image": "envoy:1"}]
                }
            },
        },
        "status": status or {},
    }


def test_promote_clears_pause_conditions_when_paused_at_a_step() -> None:
    ro = canary(
        {"currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}], "controllerPause": True}
    )
    assert argo_rollouts.promote_patches(ro, full=False, status_subresource=True) == [
        PlannedPatch({"status": {"pauseConditions": None}}, subresource="status")
    ]


def test_promote_steps_forward_and_unpauses_spec() -> None:
    ro = canary({"currentStepIndex": 2}, paused=True)
    assert argo_rollouts.promote_patches(ro, full=False, status_subresource=True) == [
        PlannedPatch({"status": {"pauseConditions": None, "currentStepIndex": 3}}, subresource="status"),
        PlannedPatch({"spec": {"paused": False}}),
    ]


def test_promote_without_status_subresource_uses_one_unified_patch() -> None:
    ro = canary({"currentStepIndex": 0})
    assert argo_rollouts.promote_patches(ro, full=False, status_subresource=False) == [
        PlannedPatch({"spec": {"paused": False}, "status": {"pauseConditions": None, "currentStepIndex": 1}})
    ]


def test_promote_inconclusive_analysis_also_clears_controller_pause() -> None:
    ro = canary(
        {
            "currentStepIndex": 0,
            "pauseConditions": [{"reason": "InconclusiveAnalysisRun"}],
            "controllerPause": True,
            "canary": {"currentStepAnalysisRunStatus": {"status": "Inconclusive"}},
        }
    )
    (patch,) = argo_rollouts.promote_patches(ro, full=False, status_subresource=True)
    assert patch.patch == {
        "status": {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 1}
    }


def test_full_promotion_only_when_not_already_stable() -> None:
    moving = canary({"currentPodHash": "b", "stableRS": "a"})
    assert argo_rollouts.promote_patches(moving, full=True, status_subresource=True) == [
        PlannedPatch({"status": {"promoteFull": True}}, subresource="status")
    ]
    assert (
        argo_rollouts.promote_patches(
            canary({"currentPodHash": "a", "stableRS": "a"}), full=True, status_subresource=True
        )
        == []
    )


def test_weights_and_phase() -> None:
    assert argo_rollouts.set_weight(canary({"currentStepIndex": 1})) == 20
    assert argo_rollouts.set_weight(canary({"currentStepIndex": 3})) == 50
    assert argo_rollouts.set_weight(canary({"currentStepIndex": 4})) == 100
    assert argo_rollouts.set_weight(canary({"currentStepIndex": 3, "abort": True})) == 0
    assert argo_rollouts.phase_of(canary({"phase": "Healthy", "observedGeneration": "1"})) == ("Healthy", "")
    assert argo_rollouts.phase_of(canary({"phase": "Healthy", "observedGeneration": "0"}))[0] == "Progressing"
    assert argo_rollouts.phase_of(canary({"controllerPause": True}))[1] == "waiting for rollout to unpause"


def test_set_image_pins_container_names() -> None:
    patch = argo_rollouts.set_image_patch(canary(), "proxy", "envoy:2")
    assert patch.patch_type == "json"
    assert patch.patch == [
        {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "proxy"},
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "envoy:2"},
    ]
    assert len(argo_rollouts.set_image_patch(canary(), "*", "x:1").patch) == 4
    with pytest.raises(ToolError, match='no container named "db"; its containers are web, proxy'):
        argo_rollouts.set_image_patch(canary(), "db", "x:1")


def test_restart_patch_uses_utc_seconds() -> None:
    when = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)
    assert argo_rollouts.restart_patch(when).patch == {"spec": {"restartAt": "2026-11-24T09:30:15Z"}}


def rs(revision: int, image: str, owner: str = "u-1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"web-{revision}",
            "annotations": {argo_rollouts.REVISION_ANNOTATION: str(revision)},
            "ownerReferences": [{"kind": "Rollout", "name": "web", "uid": owner, "controller": True}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", argo_rollouts.HASH_LABEL: f"h{revision}"}},
                "spec": {"containers": [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}]},
            }
        },
    }


def test_undo_picks_the_previous_revision_and_strips_the_hash_label() -> None:
    sets = [rs(1, "web:1"), rs(3, "web:3"), rs(2, "web:2")]
    assert argo_rollouts.pick_revision(sets, 0, "web")["metadata"]["name"] == "web-2"
    assert argo_rollouts.pick_revision(sets, 1, "web")["metadata"]["name"] == "web-1"
    with pytest.raises(ToolError, match="has no revision 9 in its history"):
        argo_rollouts.pick_revision(sets, 9, "web")
    with pytest.raises(ToolError, match="no earlier revision"):
        argo_rollouts.pick_revision([rs(1, "web:1")], 0, "web")

    ro = {
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:3"}]},
            }
        }
    }
    patch = argo_rollouts.undo_patch(ro, rs(2, "web:2"))
    assert patch is not None
    assert patch.patch_type == "json"
    assert patch.patch[0]["value"]["metadata"]["labels"] == {"app": "web"}
    assert patch.patch[0]["value"]["spec"]["containers"][0]["image"] == "web:2"
    # The rollout already runs revision 3's template (the ReplicaSet only adds defaults): nothing to do.
    assert argo_rollouts.undo_patch(ro, rs(3, "web:3")) is None


def test_ownership_and_selectors() -> None:
    assert argo_rollouts.owned_by(rs(1, "a"), {"metadata": {"uid": "u-1"}})
    assert not argo_rollouts.owned_by(rs(1, "a", owner="other"), {"metadata": {"uid": "u-1"}})
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
    }
    assert argo_rollouts.selector_string(selector) == "app=web,tier in (a,b)"
