"""Pure parts of ``bosun_tools.client.kube``: the exec status channel and discovery matching (the wire parts
are exercised against the real API server in tests/integration/test_tools_k8s_client.py)."""

from __future__ import annotations

import json

from bosun_tools.client.kube import ResourceInfo, _exec_result, _match


def _status(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def test_exec_status_channel_gives_the_exit_code_or_the_error() -> None:
    ok = _exec_result(b"hello\n", b"", _status({"status": "Success"}))
    assert (ok.stdout, ok.exit_code, ok.error) == ("hello\n", 0, None)
    failed = _exec_result(
        b"",
        b"no such file\n",
        _status(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
            }
        ),
    )
    assert (failed.stderr, failed.exit_code, failed.error) == ("no such file\n", 2, None)
    broken = _exec_result(b"", b"", _status({"status": "Failure", "message": "container not found"}))
    assert (broken.exit_code, broken.error) == (None, "container not found")
    assert _exec_result(b"x", b"", b"").exit_code is None


def test_matching_prefers_the_first_served_version_and_honours_groups() -> None:
    def info(group: str, version: str, kind: str, plural: str, short: tuple[str, ...] = ()) -> ResourceInfo:
        return ResourceInfo(group, version, kind, plural, True, ("get",), kind.lower(), short)

    served = [
        info("", "v1", "Event", "events", ("ev",)),
        info("events.k8s.io", "v1", "Event", "events", ("ev",)),
        info("argoproj.io", "v1alpha1", "Rollout", "rollouts", ("ro",)),
        info("apps", "v1", "Deployment", "deployments", ("deploy",)),
    ]
    assert _match(served, "ev", None) == served[0]
    assert _match(served, "events.events.k8s.io", None) == served[1]
    assert _match(served, "events", "events.k8s.io/v1") == served[1]
    assert _match(served, "rollouts.argoproj.io", None) == served[2]
    assert _match(served, "Rollout", None) == served[2]
    assert _match(served, "deploy", "apps/v2") is None
    assert _match(served, "rollout", "v1") is None
