"""What the tool server is configured with, and nothing else: the registry, the server and the toolsets
all read these types, so they live in a module that imports none of them.

No field is ever chosen by a model: an administrator sets them through ``BOSUN_TOOLS_*`` environment
variables (``ToolSettings.from_env``) or the operator builds them in process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bosun_tools.identity import Identity

Toolset = Literal["kubernetes", "helm", "rollouts", "jenkins", "internal"]
TOOLSETS: tuple[Toolset, ...] = ("kubernetes", "helm", "rollouts", "jenkins")
"""The toolsets a server may be configured to offer (Bosun's internal toolset is always served)."""


@dataclass(frozen=True)
class HelmSettings:
    """How the server runs helm; only an administrator chooses these, never the model."""

    binary: str = "helm"
    kubeconfig: str | None = None  # None: the tool server's kubeconfig (or in-cluster)
    kube_context: str | None = None
    repositories: Mapping[str, str] = field(default_factory=dict)  # name -> https:// or oci:// URL
    charts: Mapping[str, str] = field(default_factory=dict)  # name -> local chart directory or .tgz
    timeout: float = 120.0  # a helm process is killed after this many seconds
    wait_timeout: float = 90.0  # --wait/--timeout given to helm; below ``timeout`` so helm reports it
    output_cap: int = 16_000
    read_limit: int = 16_000_000  # bytes kept from helm's stdout (release JSON carries the whole chart)


@dataclass(frozen=True)
class JenkinsSettings:
    """Where the Jenkins credentials live and how patient the tools are; set by the server operator."""

    secret_namespace: str
    secret_name: str
    timeout: float = 15.0
    queue_poll_interval: float = 1.0
    queue_max_polls: int = 30
    console_cap: int = 16_384

    @property
    def secret_ref(self) -> str:
        return f"{self.secret_namespace}/{self.secret_name}"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ToolSettings:
    """Everything the tool server is configured with; no field is ever chosen by a model."""

    kubeconfig: str | None = None  # None: $KUBECONFIG, else the in-cluster service account
    context: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    operator_token: str | None = None
    external_token: str | None = None
    allow_external_mutations: bool = False
    # Who external (untrusted) clients act as; None means the server's own identity.
    external_identity: Identity | None = None
    toolsets: tuple[str, ...] = TOOLSETS
    helm: HelmSettings = field(default_factory=HelmSettings)
    # None: the Jenkins tools answer that no Jenkins is configured.
    jenkins: JenkinsSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ToolSettings:
        env = os.environ if env is None else env
        user = env.get("BOSUN_TOOLS_EXTERNAL_USER")
        groups = tuple(g for g in env.get("BOSUN_TOOLS_EXTERNAL_GROUPS", "").split(",") if g.strip())
        toolsets = tuple(t.strip() for t in env.get("BOSUN_TOOLS_TOOLSETS", ",".join(TOOLSETS)).split(","))
        return cls(
            kubeconfig=env.get("KUBECONFIG") or None,
            context=env.get("BOSUN_TOOLS_KUBE_CONTEXT") or None,
            host=env.get("BOSUN_TOOLS_HOST", "127.0.0.1"),
            port=int(env.get("BOSUN_TOOLS_PORT", "8765")),
            operator_token=env.get("BOSUN_TOOLS_OPERATOR_TOKEN") or None,
            external_token=env.get("BOSUN_TOOLS_EXTERNAL_TOKEN") or None,
            allow_external_mutations=_flag(env.get("BOSUN_TOOLS_ALLOW_EXTERNAL_MUTATIONS")),
            external_identity=Identity(user, tuple(g.strip() for g in groups)) if user else None,
            toolsets=tuple(t for t in toolsets if t),
            helm=HelmSettings(
                binary=env.get("BOSUN_TOOLS_HELM", "helm"),
                kubeconfig=env.get("KUBECONFIG") or None,
                repositories=_pairs(env.get("BOSUN_TOOLS_HELM_REPOSITORIES", "")),
                charts=_pairs(env.get("BOSUN_TOOLS_HELM_CHARTS", "")),
            ),
            jenkins=_jenkins(env.get("BOSUN_TOOLS_JENKINS_SECRET", "")),
        )


def _pairs(text: str) -> dict[str, str]:
    """``name=value,name=value`` (how lists of repositories or charts fit in one env variable)."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"expected name=value in {text!r}, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _jenkins(ref: str) -> JenkinsSettings | None:
    if not ref:
        return None
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name:
        raise ValueError(f"BOSUN_TOOLS_JENKINS_SECRET must be <namespace>/<name>, got {ref!r}")
    return JenkinsSettings(secret_namespace=namespace, secret_name=name)
