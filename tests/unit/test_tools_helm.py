"""How the Helm tools build helm's argument vectors and clean its output (no helm process here).

Running the real helm binary against the cluster is covered in tests/integration/test_tools_helm.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bosun_tools import helm
from bosun_tools.helm import HelmSettings
from bosun_tools.kube import Identity
from fastmcp.exceptions import ToolError

SETTINGS = HelmSettings(
    kubeconfig="/etc/kube/config",
    repositories={"bitnami": "https://charts.example/bitnami", "internal": "oci://registry.example/charts"},
    charts={"web": "/srv/charts/web"},
)

MANIFEST = """---
# Source: web/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: web-auth
stringData:
  password: "hunter2"
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
"""


def test_argv_is_a_list_with_impersonation_flags() -> None:
    argv = helm.helm_argv(SETTINGS, ["list", "-n", "shop"], Identity("alice", ("sre", "dev")), "/bin/helm")
    assert argv == [
        "/bin/helm", "list", "-n", "shop", "--kubeconfig=/etc/kube/config",
        "--kube-as-user=alice", "--kube-as-group=sre", "--kube-as-group=dev",
    ]  # fmt: skip
    assert helm.helm_argv(HelmSettings(), ["version"], None) == ["helm", "version"]


def test_charts_come_only_from_configuration() -> None:
    assert helm.chart_args(SETTINGS, "web", None) == ["/srv/charts/web"]
    assert helm.chart_args(SETTINGS, "/srv/charts/web", None) == ["/srv/charts/web"]
    assert helm.chart_args(SETTINGS, "bitnami/redis", "18.1.0") == [
        "redis", "--repo=https://charts.example/bitnami", "--version=18.1.0",
    ]  # fmt: skip
    assert helm.chart_args(SETTINGS, "internal/api", None) == ["oci://registry.example/charts/api"]
    for refused in ("other/redis", "/etc/passwd", "./web", "bitnami/../x", "bitnami/a/b"):
        with pytest.raises(ToolError, match="is not allowed; use a configured repository or chart"):
            helm.chart_args(SETTINGS, refused, None)
    with pytest.raises(ToolError, match="local chart with a fixed version"):
        helm.chart_args(SETTINGS, "web", "1.0.0")


def test_secret_values_are_redacted_from_manifests_and_diffs() -> None:
    redacted = helm.redact_manifest(MANIFEST)
    assert "hunter2" not in redacted
    assert "password: <redacted 7 bytes>" in redacted
    assert "# Source: web/templates/secret.yaml" in redacted
    assert helm.manifest_resources(MANIFEST) == ["Secret/web-auth", "Deployment/web"]
    changed = MANIFEST.replace("replicas: 1", "replicas: 3").replace("hunter2", "swordfish")
    diff = helm.manifest_diff(MANIFEST, changed, "web")
    assert "-  replicas: 1" in diff
    assert "+  replicas: 3" in diff
    assert "hunter2" not in diff
    assert "swordfish" not in diff
    assert "<redacted 9 bytes>" in diff  # a changed secret shows up as a size change only


def test_values_redaction_keeps_references() -> None:
    values = {
        "auth": {"password": "p", "existingSecret": "db-creds", "apiKey": "k"},
        "replicas": 2,
        "tokens": [],
    }
    assert helm.redact_values(values) == {
        "auth": {"password": "<redacted>", "existingSecret": "db-creds", "apiKey": "<redacted>"},
        "replicas": 2,
        "tokens": [],
    }


def test_values_file_is_private_and_removed() -> None:
    with helm.values_file({"replicaCount": 3}) as args:
        assert args[0] == "-f"
        path = Path(args[1])
        assert json.loads(path.read_text()) == {"replicaCount": 3}
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert not path.exists()
    with helm.values_file(None) as none:
        assert none == []
    with pytest.raises(ToolError, match="the limit is"), helm.values_file({"x": "y" * 300_000}):
        pass
