"""Operator settings that the environment can get wrong."""

from __future__ import annotations

import re

import pytest
from bosun.config import OperatorConfig


def test_watched_namespaces_are_exact_names() -> None:
    """A shard names its namespaces: kopf would watch what a pattern matches, but the sweep would list the
    pattern itself and never find those tasks again (docs/scaling.md)."""
    listed = OperatorConfig.from_env({"BOSUN_NAMESPACES": " shop, payments ,"})
    assert listed.namespaces == ("shop", "payments")
    assert OperatorConfig.from_env({}).namespaces == ()
    for pattern in ("team-*", "!kube-system", "Shop"):
        with pytest.raises(ValueError, match=re.escape(f"BOSUN_NAMESPACES: '{pattern}' is not")):
            OperatorConfig.from_env({"BOSUN_NAMESPACES": f"shop,{pattern}"})


def test_parallel_tasks_is_a_positive_count() -> None:
    assert OperatorConfig.from_env({}).parallel_tasks == 20
    assert OperatorConfig.from_env({"BOSUN_PARALLEL_TASKS": "64"}).parallel_tasks == 64
    for wrong in ("0", "-3", "many", "2.5"):
        with pytest.raises(ValueError, match=re.escape(f"BOSUN_PARALLEL_TASKS={wrong!r} is not a positive")):
            OperatorConfig.from_env({"BOSUN_PARALLEL_TASKS": wrong})
