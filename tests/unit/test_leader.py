"""Leader election's rules without an API server: the records written, when a holder still counts, the
timing settings that keep a leader and a standby from acting at once, and what the probes answer.

The protocol against the real API server (two electors, release, a stolen Lease, a blocked event loop)
is in tests/e2e/test_failover.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bosun.config import LeaderElection, OperatorConfig
from bosun.health import Health, required_access
from bosun.leader import LeaseRecord, Observation, candidate_identity, micro_time, observe

AT = datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)


def test_a_free_lease_is_taken_without_counting_a_transition() -> None:
    record = LeaseRecord().claimed("a", 15, AT)
    assert record == LeaseRecord("a", 15, "2026-11-24T09:00:00.123456Z", "2026-11-24T09:00:00.123456Z", 0)
    assert record.spec() == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-24T09:00:00.123456Z",
        "renewTime": "2026-11-24T09:00:00.123456Z",
        "leaseTransitions": 0,
    }
    assert LeaseRecord.from_spec(record.spec()) == record


def test_a_renewal_keeps_the_acquire_time_and_a_new_holder_counts_a_transition() -> None:
    first = LeaseRecord().claimed("a", 15, AT)
    later = AT.replace(second=10)
    renewed = first.claimed("a", 15, later)
    assert (renewed.acquired, renewed.renewed, renewed.transitions) == (first.acquired, micro_time(later), 0)
    taken = renewed.claimed("b", 15, later)
    assert (taken.holder, taken.acquired, taken.transitions) == ("b", micro_time(later), 1)


def test_a_released_lease_is_free_and_expires_at_once() -> None:
    released = LeaseRecord("a", 15, "x", "y", 3).released(AT)
    assert (released.holder, released.duration, released.transitions) == ("", 1, 3)
    assert not Observation(released, at=100.0).held_by_another("b", now=100.0)
    # Taking a released lease is not a transition from anyone.
    assert released.claimed("b", 15, AT).transitions == 3


def test_another_holder_counts_until_its_record_was_unchanged_for_its_duration() -> None:
    seen = observe(None, LeaseRecord("a", 15, "t0", "t0"), now=100.0)
    assert seen.held_by_another("b", now=114.9)
    assert not seen.held_by_another("b", now=115.0)
    assert not seen.held_by_another("a", now=101.0), "one's own record never blocks"
    # The same record read again keeps its first sighting; a renewal (a new renewTime) restarts the clock.
    assert observe(seen, LeaseRecord("a", 15, "t0", "t0"), now=110.0) is seen
    renewed = observe(seen, LeaseRecord("a", 15, "t0", "t1"), now=110.0)
    assert renewed.held_by_another("b", now=124.0)


def test_observed_time_is_the_standbys_own_clock_not_the_renew_time_written() -> None:
    """A renewTime far in the past (a leader whose clock is behind) still counts from when it was seen."""
    skewed = LeaseRecord("a", 15, "1999-01-01T00:00:00.000000Z", "1999-01-01T00:00:00.000000Z")
    assert observe(None, skewed, now=5.0).held_by_another("b", now=19.0)


def test_candidate_identities_are_unique_per_process_start() -> None:
    first, second = candidate_identity(), candidate_identity()
    assert first != second
    assert first.split("_", 1)[0] == second.split("_", 1)[0], "both start with the host (pod) name"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOSUN_LEASE_DURATION_SECONDS": "10"}, "must be greater than BOSUN_RENEW_DEADLINE_SECONDS"),
        ({"BOSUN_RETRY_PERIOD_SECONDS": "9"}, "1.2 times BOSUN_RETRY_PERIOD_SECONDS"),
        ({"BOSUN_RENEW_DEADLINE_SECONDS": "ten"}, "is not a number"),
    ],
)
def test_timings_that_would_let_two_replicas_act_are_refused(env: dict[str, str], message: str) -> None:
    full = {"BOSUN_LEADER_ELECTION": "true", "BOSUN_LEADER_ELECTION_NAMESPACE": "bosun-system", **env}
    with pytest.raises(ValueError, match=message):
        OperatorConfig.from_env(full)


def test_leader_election_settings_from_the_environment() -> None:
    assert OperatorConfig.from_env({}).leader_election is None
    on = {"BOSUN_LEADER_ELECTION": "true", "BOSUN_LEADER_ELECTION_NAMESPACE": "bosun-system"}
    assert OperatorConfig.from_env(on).leader_election == LeaderElection(
        "bosun-system", "bosun-operator", 15.0, 10.0, 2.0
    )
    assert LeaderElection.from_env({"BOSUN_LEADER_ELECTION": "true"}, lambda: "from-pod") == LeaderElection(
        "from-pod"
    )
    with pytest.raises(ValueError, match="set BOSUN_LEADER_ELECTION_NAMESPACE"):
        LeaderElection.from_env({"BOSUN_LEADER_ELECTION": "yes"}, lambda: None)


def test_health_port_and_log_settings_are_checked() -> None:
    config = OperatorConfig.from_env({"BOSUN_HEALTH_PORT": "8080", "BOSUN_LOG_FORMAT": "JSON"})
    assert (config.health_port, config.log_format, config.log_level) == (8080, "json", "info")
    with pytest.raises(ValueError, match="is not a TCP port"):
        OperatorConfig.from_env({"BOSUN_HEALTH_PORT": "http"})
    with pytest.raises(ValueError, match="BOSUN_LOG_FORMAT='xml' is not one of text, json"):
        OperatorConfig.from_env({"BOSUN_LOG_FORMAT": "xml"})


def test_the_lease_rights_are_checked_only_with_leader_election() -> None:
    plain = required_access(OperatorConfig(namespaces=("shop",)))
    namespaced = [r for r in plain if r["resource"] != "namespaces"]
    assert all(r["namespace"] == "shop" for r in namespaced)
    assert not [r for r in plain if r["resource"] == "leases"]
    # The Namespaces' policy annotations are watched cluster-wide: a task may target other namespaces.
    assert sorted(r["verb"] for r in plain if r["resource"] == "namespaces") == ["list", "watch"]
    assert not [r for r in plain if r["resource"] == "namespaces" and r.get("namespace")]
    electing = required_access(
        OperatorConfig(leader_election=LeaderElection("bosun-system"), namespaces=("shop",))
    )
    leases = [r for r in electing if r["resource"] == "leases"]
    assert sorted(r["verb"] for r in leases) == ["create", "get", "update"]
    assert {r["namespace"] for r in leases} == {"bosun-system"}


def test_readiness_starting_standby_and_leader() -> None:
    health = Health()
    ready, body = health.readiness()
    assert not ready
    assert "startup checks" in body["problem"]
    health.problem = "the CRD agenttasks.bosun.dev is not installed: kubectl apply -f crds/"
    assert health.readiness() == (False, {"ready": False, "role": "starting", "problem": health.problem})
    assert health.liveness()[0], "a pod that waits for a fix is alive: restarting it fixes nothing"

    health.problem, health.role, health.holder = None, "standby", lambda: "pod-a_1"
    assert health.readiness() == (True, {"ready": True, "role": "standby", "leader": "pod-a_1"})

    health.role = "leader"
    assert not health.readiness()[0], "a leader is ready only once kopf watches"
    health.watching = lambda: True
    assert health.readiness() == (True, {"ready": True, "role": "leader"})
    health.running = lambda: False
    assert health.liveness() == (False, {"alive": False, "problem": "kopf stopped while this process leads"})
