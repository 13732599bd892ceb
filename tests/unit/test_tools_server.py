"""Tool server configuration and the trust rules that need no cluster (identity and mode in ``_meta``)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.server import build_server, parse_identity
from bosun_tools.settings import ToolSettings
from fastmcp import Client
from fastmcp.exceptions import ToolError as McpToolError


def test_settings_from_environment() -> None:
    settings = ToolSettings.from_env(
        {
            "KUBECONFIG": "/etc/kube/config",
            "BOSUN_TOOLS_HOST": "0.0.0.0",
            "BOSUN_TOOLS_PORT": "9000",
            "BOSUN_TOOLS_OPERATOR_TOKEN": "op",
            "BOSUN_TOOLS_EXTERNAL_TOKEN": "ext",
            "BOSUN_TOOLS_ALLOW_EXTERNAL_MUTATIONS": "yes",
            "BOSUN_TOOLS_EXTERNAL_USER": "mcp-reader",
            "BOSUN_TOOLS_EXTERNAL_GROUPS": "viewers, auditors",
            "BOSUN_TOOLS_TOOLSETS": "kubernetes,helm",
            "BOSUN_TOOLS_HELM_REPOSITORIES": "bitnami=https://charts.example/bitnami",
            "BOSUN_TOOLS_JENKINS_SECRET": "bosun-system/jenkins",
        }
    )
    assert (settings.host, settings.port, settings.kubeconfig) == ("0.0.0.0", 9000, "/etc/kube/config")
    assert (settings.operator_token, settings.external_token, settings.allow_external_mutations) == (
        "op",
        "ext",
        True,
    )
    assert settings.external_identity == Identity("mcp-reader", ("viewers", "auditors"))
    assert settings.toolsets == ("kubernetes", "helm")
    assert settings.helm.repositories == {"bitnami": "https://charts.example/bitnami"}
    assert settings.jenkins is not None
    assert settings.jenkins.secret_ref == "bosun-system/jenkins"
    defaults = ToolSettings.from_env({})
    assert (defaults.host, defaults.allow_external_mutations, defaults.external_identity) == (
        "127.0.0.1",
        False,
        None,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOSUN_TOOLS_JENKINS_SECRET": "no-namespace"}, "must be <namespace>/<name>"),
        ({"BOSUN_TOOLS_HELM_REPOSITORIES": "bitnami"}, "expected name=value"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ToolSettings.from_env(env)


def test_unknown_toolset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown toolset 'kubectl'"):
        build_server(ToolSettings(toolsets=("kubectl",)))


def test_identity_meta_must_be_well_formed() -> None:
    assert parse_identity(None) is None
    assert parse_identity({"user": "alice", "groups": ["sre"]}) == Identity("alice", ("sre",))
    with pytest.raises(ToolError, match="must be"):
        parse_identity({"groups": ["sre"]})
    with pytest.raises(ToolError, match="groups must be a list of strings"):
        parse_identity({"user": "alice", "groups": "sre"})


async def test_bad_mode_or_identity_in_meta_fail_before_any_kubernetes_call() -> None:
    args: dict[str, Any] = {"kind": "pods", "namespace": "shop"}
    async with Client(build_server(ToolSettings(toolsets=("kubernetes",)))) as client:
        with pytest.raises(McpToolError, match=r'"bosun\.dev/mode" must be "preview" or "execute"'):
            await client.call_tool("k8s_get", args, meta={"bosun.dev/mode": "dry"})
        with pytest.raises(McpToolError, match=r'"bosun\.dev/identity" must be'):
            await client.call_tool("k8s_get", args, meta={"bosun.dev/identity": "alice"})


def test_the_server_refuses_to_start_without_an_operator_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSUN_TOOLS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bosun_tools"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "BOSUN_TOOLS_OPERATOR_TOKEN is not set" in proc.stderr
