"""How the Helm tools build helm's argument vectors and clean its output (no helm process here).

Running the real helm binary against the cluster is covered in tests/integration/test_tools_helm.py.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from bosun_tools.client import helm as helm_client
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.settings import HelmSettings
from bosun_tools.toolsets import helm

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
    argv = helm_client.helm_argv(
        SETTINGS, ["list", "-n", "shop"], Identity("alice", ("sre", "dev")), "/bin/helm"
    )
    assert argv == [
        "/bin/helm", "list", "-n", "shop", "--kubeconfig=/etc/kube/config",
        "--kube-as-user=alice", "--kube-as-group=sre", "--kube-as-group=dev",
    ]  # fmt: skip
    assert helm_client.helm_argv(HelmSettings(), ["version"], None) == ["helm", "version"]
    # A ServiceAccount is impersonated by name only: the API server adds its groups, and refuses named ones.
    robot = Identity("system:serviceaccount:shop:deployer", ("system:serviceaccounts",))
    assert helm_client.helm_argv(HelmSettings(), ["list"], robot) == [
        "helm", "list", "--kube-as-user=system:serviceaccount:shop:deployer",
    ]  # fmt: skip


def test_charts_come_only_from_configuration() -> None:
    assert helm_client.chart_args(SETTINGS, "web", None) == ["/srv/charts/web"]
    assert helm_client.chart_args(SETTINGS, "/srv/charts/web", None) == ["/srv/charts/web"]
    assert helm_client.chart_args(SETTINGS, "bitnami/redis", "18.1.0") == [
        "redis", "--repo=https://charts.example/bitnami", "--version=18.1.0",
    ]  # fmt: skip
    assert helm_client.chart_args(SETTINGS, "internal/api", None) == ["oci://registry.example/charts/api"]
    for refused in ("other/redis", "/etc/passwd", "./web", "bitnami/../x", "bitnami/a/b"):
        with pytest.raises(ToolError, match="is not allowed; use a configured repository or chart"):
            helm_client.chart_args(SETTINGS, refused, None)
    with pytest.raises(ToolError, match="local chart with a fixed version"):
        helm_client.chart_args(SETTINGS, "web", "1.0.0")


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


def test_values_redaction_goes_by_structure_and_shape_not_only_by_key_name() -> None:
    values = {
        "db": {"url": "postgres://app:hunter22@db:5432/app", "host": "db"},
        "session": "Zq3xV9pL2mN8rT4wY6bK1cH5",
        "extraEnv": [{"name": "SMTP_PASSWORD", "value": "mail-secret"}, {"name": "MODE", "value": "x"}],
        "image": {"tag": "sha-3f2a9bc1d2e3f4a5b6c7d8e9"},
    }
    assert helm.redact_values(values) == {
        "db": {"url": "<redacted>", "host": "db"},
        "session": "<redacted>",
        "extraEnv": [{"name": "SMTP_PASSWORD", "value": "<redacted>"}, {"name": "MODE", "value": "x"}],
        "image": {"tag": "sha-3f2a9bc1d2e3f4a5b6c7d8e9"},
    }


SCHEMA = {
    "type": "object",
    "properties": {
        "admin": {"type": "object", "properties": {"login": {"type": "string", "format": "password"}}},
        "webhook": {"type": "string", "writeOnly": True},
        "users": {"type": "object", "additionalProperties": {"type": "string", "format": "password"}},
        "replicas": {"type": "integer"},
    },
}


def test_a_charts_values_schema_marks_secret_values_whatever_their_names() -> None:
    values = {
        "admin": {"login": "x"},
        "webhook": "https://hooks.example/abc",
        "users": {"ann": "y"},
        "replicas": 2,
    }
    assert helm.schema_secret_paths(values, SCHEMA) == [("admin", "login"), ("webhook",), ("users", "ann")]
    assert helm.schema_secret_paths(values, None) == []


def test_the_values_schema_of_a_local_chart_is_read_from_its_directory_or_archive(tmp_path: Path) -> None:
    chart = tmp_path / "web"
    chart.mkdir()
    (chart / "values.schema.json").write_text(json.dumps(SCHEMA))
    archive = tmp_path / "web-0.1.0.tgz"
    with tarfile.open(archive, "w:gz") as tgz:
        tgz.add(chart, arcname="web")
    settings = HelmSettings(charts={"dir": str(chart), "tgz": str(archive), "none": str(tmp_path / "absent")})
    assert helm_client.chart_schema(settings, "dir") == SCHEMA
    assert helm_client.chart_schema(settings, "tgz") == SCHEMA
    assert helm_client.chart_schema(settings, "none") is None
    assert helm_client.chart_schema(settings, "bitnami/redis") is None  # a repository chart: not read


def test_values_file_is_private_and_removed() -> None:
    with helm_client.values_file({"replicaCount": 3}) as args:
        assert args[0] == "-f"
        path = Path(args[1])
        assert json.loads(path.read_text()) == {"replicaCount": 3}
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert not path.exists()
    with helm_client.values_file(None) as none:
        assert none == []
    with pytest.raises(ToolError, match="the limit is"), helm_client.values_file({"x": "y" * 300_000}):
        pass
