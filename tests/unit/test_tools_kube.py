"""Pure parts of ``bosun_tools.client.kube``: the exec status channel and discovery matching (the wire parts
are exercised against the real API server in tests/integration/test_tools_k8s_client.py)."""

from __future__ import annotations

import json

import pytest
from bosun_tools.client.exec import exec_in_pod, exec_result
from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo, _as_dry_run, _match
from bosun_tools.identity import Identity
from kubernetes import client as k8s_client


def _status(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def test_exec_status_channel_gives_the_exit_code_or_the_error() -> None:
    ok = exec_result(b"hello\n", b"", _status({"status": "Success"}))
    assert (ok.stdout, ok.exit_code, ok.error) == ("hello\n", 0, None)
    failed = exec_result(
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
    broken = exec_result(b"", b"", _status({"status": "Failure", "message": "container not found"}))
    assert (broken.exit_code, broken.error) == (None, "container not found")
    assert exec_result(b"x", b"", b"").exit_code is None


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


def test_a_dry_run_write_says_so_in_the_query_and_in_body_options() -> None:
    """The API server reads a DELETE's options, and an Eviction's deleteOptions, from the body and ignores
    ``?dryRun`` then: both places must ask for a dry run."""
    assert _as_dry_run({"fieldManager": "bosun"}, {"kind": "ConfigMap"}) == (
        {"fieldManager": "bosun", "dryRun": "All"},
        {"kind": "ConfigMap"},
    )
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    assert _as_dry_run(None, options) == ({"dryRun": "All"}, {**options, "dryRun": ["All"]})
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
    assert _as_dry_run(None, eviction)[1] == {**eviction, "deleteOptions": {"dryRun": ["All"]}}


async def test_a_previewing_client_never_runs_a_command() -> None:
    """exec cannot be a dry run: a previewing client refuses it before opening any connection."""
    offline = KubeClient.from_configuration(k8s_client.Configuration(host="http://127.0.0.1:9"))
    preview = offline.impersonating(Identity("alice")).previewing()
    assert (preview.dry_run, preview.identity) == (True, Identity("alice"))
    with pytest.raises(KubeError) as refused:
        await exec_in_pod(preview, "shop", "web-0", ["rm", "-rf", "/data"])
    await offline.aclose()
    assert (refused.value.status, refused.value.reason) == (405, "MethodNotAllowed")
