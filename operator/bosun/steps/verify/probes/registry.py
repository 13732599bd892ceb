"""Which checks follow each mutating tool.

``CHECKS`` holds one entry per mutating tool of ``bosun_tools.registry`` (a unit test walks the registry,
so a tool cannot be added without one).

RBAC objects need no access-review check: changes to ``rbac.authorization.k8s.io`` (and the other groups
of ``bosun.core.scope.DENIED_GROUPS``) are refused before they are proposed, so they are never executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bosun_tools.registry import defaults_of

from bosun.steps.verify.probes.base import Builder, Probe, decided
from bosun.steps.verify.probes.helm import helm_probes, helm_uninstall_probes
from bosun.steps.verify.probes.jenkins import stop_build_probes, trigger_probes
from bosun.steps.verify.probes.kubernetes import (
    apply_probes,
    delete_probes,
    exec_probes,
    job_probes,
    patch_probes,
    run_pod_probes,
)
from bosun.steps.verify.probes.rollouts import (
    abort_probes,
    pause_probes,
    promote_probes,
    resume_probes,
    retry_probes,
    rollouts_restart_probes,
    rollouts_set_image_probes,
    rollouts_undo_probes,
)
from bosun.steps.verify.probes.workloads import (
    cordon_probes,
    drain_probes,
    restart_probes,
    scale_probes,
    set_image_probes,
    uncordon_probes,
    undo_probes,
)

CHECKS: Mapping[str, Builder] = {
    "k8s_apply": apply_probes,
    "k8s_patch": patch_probes,
    "k8s_scale": scale_probes,
    "k8s_set_image": set_image_probes,
    "k8s_rollout_restart": restart_probes,
    "k8s_rollout_undo": undo_probes,
    "k8s_delete": delete_probes,
    "k8s_cordon": cordon_probes,
    "k8s_uncordon": uncordon_probes,
    "k8s_drain": drain_probes,
    "k8s_create_job_from_cronjob": job_probes,
    "k8s_run_pod": run_pod_probes,
    "k8s_exec": exec_probes,
    "helm_install": helm_probes,
    "helm_upgrade": helm_probes,
    "helm_rollback": helm_probes,
    "helm_uninstall": helm_uninstall_probes,
    "rollouts_promote": promote_probes,
    "rollouts_pause": pause_probes,
    "rollouts_resume": resume_probes,
    "rollouts_abort": abort_probes,
    "rollouts_retry": retry_probes,
    "rollouts_set_image": rollouts_set_image_probes,
    "rollouts_restart": rollouts_restart_probes,
    "rollouts_undo": rollouts_undo_probes,
    "jenkins_trigger_build": trigger_probes,
    "jenkins_stop_build": stop_build_probes,
}
"""Each mutating tool's checks, built from the call's arguments (tool defaults filled in) and its
recorded output data."""


def probes_for(tool: str, args: Mapping[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The objective checks of one executed call; a tool without a known check gets one that fails and
    says so (it never passes silently)."""
    build = CHECKS.get(tool)
    if build is None:
        return [decided(f"{tool} call", ("unsure", f"no objective check is known for {tool}"))]
    try:
        return build({**defaults_of(tool), **args}, data)
    except (KeyError, TypeError, ValueError) as exc:
        return [decided(f"{tool} call", ("unsure", f"its arguments do not say what to check ({exc!r})"))]
