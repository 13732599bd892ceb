"""Helm tools: the real helm CLI (``bosun_tools.client.helm``), run as the requester, with argument vectors
only.

Names are validated against helm's own release-name rule before anything runs (Skyflo split command
strings on spaces, so ``name="foo --all"`` became a flag; here it is a validation error), and Secret
manifests are redacted before any text leaves the server.

Charts come only from configuration: a repository name listed in the settings (``repo/chart``) or a local
chart listed there. A model cannot add a repository URL or point at an arbitrary path.

Values are not Secrets, but charts take passwords and tokens through them: values under secret-looking
keys or with a secret's shape (``bosun_tools.secrets``), and those a local chart's ``values.schema.json``
marks (``"format": "password"`` or ``"writeOnly": true``), are sealed in previews and redacted everywhere.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field

from bosun_tools.client.helm import HelmFailed, HelmRun, chart_args, chart_schema, run_helm, values_file
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.output import ToolOutput, redact, table, to_yaml
from bosun_tools.registry import Namespace, bosun_tool, current
from bosun_tools.secrets import Found
from bosun_tools.settings import HelmSettings

# helm's releaseNameRegex plus its 53-character limit (release names end up in label values and in the
# names of the release's Secrets).
RELEASE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ReleaseName = Annotated[str, Field(pattern=RELEASE_PATTERN, min_length=1, max_length=53)]
ChartRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9_./][A-Za-z0-9_./-]*$", max_length=256)]
"""A configured local chart, or ``repo/chart`` of a configured repository (``helm_charts`` lists them)."""
ChartVersion = Annotated[str, Field(pattern=r"^v?[0-9]+(\.[0-9]+){0,2}([-+][0-9A-Za-z.-]+)?$", max_length=64)]
Revision = Annotated[int, Field(ge=1, le=1_000_000)]
ReleaseView = Literal["status", "history", "values", "all-values", "manifest"]
Values = dict[str, Any]
"""Chart values, nested as in a values.yaml file."""


def helm_error(exc: HelmFailed, action: str, identity: Identity | None) -> ToolError:
    """helm's message, prefixed the way Kubernetes tools report the same failures."""
    message = exc.message
    who = identity.user if identity else "the tool server's own identity"
    lowered = message.lower()
    if "forbidden" in lowered:
        return ToolError(f"Forbidden: {action} as {who}: {message}; the requester needs RBAC rights for it")
    if "not found" in lowered:
        return ToolError(f"NotFound: {action}: {message}; check the release name and namespace with helm_get")
    return ToolError(f"{action} failed: {message}")


# --- redaction and diffs ------------------------------------------------------------------------------------


def redact_manifest(manifest: str) -> str:
    """Replace Secret values in a multi-document manifest, keeping helm's ``# Source:`` comments."""
    out: list[str] = []
    for doc in re.split(r"(?m)^---[ \t]*$", manifest):
        if not doc.strip():
            continue
        try:
            obj = yaml.safe_load(doc)
        except yaml.YAMLError:
            obj = None
            if re.search(r"(?m)^kind:\s*Secret\s*$", doc):
                out.append("# (a Secret document that could not be parsed was removed)")
                continue
        if isinstance(obj, dict) and obj.get("kind") == "Secret":
            comments = [line for line in doc.strip("\n").splitlines() if line.startswith("#")]
            out.append("\n".join([*comments, to_yaml(redact(obj)).rstrip("\n")]))
        else:
            out.append(doc.strip("\n"))
    return "".join(f"---\n{doc}\n" for doc in out)


def redact_values(values: Any) -> Any:
    """Release values as they may be shown: every value that would be sealed in a write is ``<redacted>``
    (keys that merely reference a Secret, like ``existingSecret``, stay visible)."""
    if not isinstance(values, dict):
        return values
    wrapped = {"values": values}
    return Found.of(wrapped).redacted(wrapped, digests=False)["values"]


def schema_secret_paths(values: Any, schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of string ``values`` a values schema marks secret (``"format": "password"`` or
    ``"writeOnly": true``), following ``properties`` and ``additionalProperties``."""
    if not isinstance(schema, Mapping):
        return []
    if isinstance(values, str):
        return [path] if schema.get("format") == "password" or schema.get("writeOnly") is True else []
    if not isinstance(values, Mapping):
        return []
    properties = schema.get("properties")
    named = properties if isinstance(properties, Mapping) else {}
    found: list[tuple[str, ...]] = []
    for key, value in values.items():
        found += schema_secret_paths(value, named.get(key, schema.get("additionalProperties")), (*path, key))
    return found


def _mark_chart_secrets(settings: HelmSettings, chart: str, values: Mapping[str, Any] | None) -> None:
    """Have the values a chart's schema marks secret sealed and scrubbed like every other secret value."""
    for path in schema_secret_paths(values or {}, chart_schema(settings, chart)):
        current().secrets.mark("values", *path)


def manifest_resources(manifest: str) -> list[str]:
    found = []
    for doc in re.split(r"(?m)^---[ \t]*$", manifest):
        try:
            obj = yaml.safe_load(doc)
        except yaml.YAMLError:
            continue
        if isinstance(obj, dict) and obj.get("kind"):
            found.append(f"{obj['kind']}/{(obj.get('metadata') or {}).get('name', '?')}")
    return found


def manifest_diff(current: str, proposed: str, release: str) -> str:
    """Unified diff of two redacted manifests; empty when nothing changes."""
    lines = difflib.unified_diff(
        redact_manifest(current).splitlines(),
        redact_manifest(proposed).splitlines(),
        f"{release} (deployed)",
        f"{release} (proposed)",
        n=3,
        lineterm="",
    )
    return "\n".join(lines)


# --- shared steps -------------------------------------------------------------------------------------------


def _settings() -> HelmSettings:
    """helm talks to the same cluster as the server's own client unless helm has its own kubeconfig."""
    ctx = current()
    helm = ctx.settings.helm
    return replace(
        helm,
        kubeconfig=helm.kubeconfig or ctx.settings.kubeconfig,
        kube_context=helm.kube_context or ctx.settings.context,
    )


async def _helm(args: Sequence[str], action: str) -> HelmRun:
    ctx = current()
    try:
        return await run_helm(_settings(), args, identity=ctx.identity)
    except HelmFailed as exc:
        raise helm_error(exc, action, ctx.identity) from None


async def _json(args: Sequence[str], action: str) -> Any:
    return _parse(await _helm(args, action), action)


def _parse(run: HelmRun, action: str) -> Any:
    if run.dropped:
        raise ToolError(
            f"{action}: helm's answer exceeded {_settings().read_limit} bytes; narrow the request"
        )
    try:
        return json.loads(run.stdout or "null")
    except ValueError:
        raise ToolError(f"{action}: helm printed something other than JSON") from None


async def deployed_manifest(release: str, namespace: str, revision: int | None = None) -> str | None:
    """The manifest helm recorded for a release (``None`` if there is no such release)."""
    ctx = current()
    args = ["get", "manifest", release, "-n", namespace]
    if revision is not None:
        args += ["--revision", str(revision)]
    try:
        run = await run_helm(_settings(), args, identity=ctx.identity)
    except HelmFailed as exc:
        if "not found" in exc.message.lower() and "forbidden" not in exc.message.lower():
            return None
        raise helm_error(exc, f"helm get manifest {release} in namespace {namespace}", ctx.identity) from None
    return run.stdout


def _release_facts(release: Mapping[str, Any]) -> dict[str, Any]:
    info = release.get("info") or {}
    meta = (release.get("chart") or {}).get("metadata") or {}
    return {
        "release": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": release.get("version"),
        "status": info.get("status"),
        "chart": f"{meta.get('name')}-{meta.get('version')}" if meta else None,
        "app_version": meta.get("appVersion"),
    }


def _output(
    text: str, *, diff: str | None = None, data: dict[str, Any] | None = None, truncated: bool = False
) -> ToolOutput:
    return ToolOutput.capped(text, cap=_settings().output_cap, diff=diff, data=data, truncated=truncated)


# --- read-only tools ----------------------------------------------------------------------------------------


@bosun_tool(toolset="helm", read_only=True, timeout=60)
async def helm_get(
    release: ReleaseName | None = None,
    namespace: Namespace | None = None,
    show: ReleaseView = "status",
    revision: Revision | None = None,
) -> ToolOutput:
    """List releases without release, or show one's status, history, values (all-values: computed too) or
    manifest.

    A list shows releases of every status (``helm list --all``) and a history every kept revision, so
    neither needs an argument of its own."""
    if release is None:
        if show != "status" or revision is not None:
            raise ToolError(f"show={show} and revision need a release; without one, releases are listed")
        return await _list_releases(namespace)
    if namespace is None:
        raise ToolError(f"Helm release {release}: pass its namespace")
    if show == "status":
        return await _status(release, namespace, revision)
    if show == "history":
        if revision is not None:
            raise ToolError("a history shows every revision; revision picks one for status, values, manifest")
        return await _history_table(release, namespace)
    if show == "manifest":
        return await _manifest(release, namespace, revision)
    return await _values(release, namespace, revision, all_values=show == "all-values")


async def _list_releases(namespace: str | None) -> ToolOutput:
    args = ["list", "-o", "json", "--all", "--max", "500"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    where = f"namespace {namespace}" if namespace else "any namespace"
    releases = await _json(args, f"helm list in {where}") or []
    if not releases:
        return _output(f"No Helm releases in {where}.", data={"releases": []})
    rows = [
        [
            r["name"],
            r["namespace"],
            str(r["revision"]),
            r["status"],
            r["chart"],
            r.get("app_version") or "",
            str(r.get("updated", ""))[:19],
        ]
        for r in releases
    ]
    text = table([["NAME", "NAMESPACE", "REVISION", "STATUS", "CHART", "APP VERSION", "UPDATED"], *rows])
    data = {
        "releases": [{"name": r[0], "namespace": r[1], "revision": int(r[2]), "status": r[3]} for r in rows]
    }
    return _output(text, data=data)


async def _status(release: str, namespace: str, revision: int | None) -> ToolOutput:
    """A release's revision, chart, deploy time, description, resources and notes."""
    args = ["status", release, "-n", namespace, "-o", "json"]
    if revision is not None:
        args += ["--revision", str(revision)]
    body = await _json(args, f"helm status {release} in namespace {namespace}")
    facts = _release_facts(body)
    # helm status prints no chart; the history entry of the same revision has it
    entry = next(
        (e for e in await _history(release, namespace) if e.get("revision") == facts["revision"]), {}
    )
    facts["chart"] = entry.get("chart")
    facts["app_version"] = entry.get("app_version")
    info = body.get("info") or {}
    lines = [
        f"Release: {facts['release']}  namespace: {facts['namespace']}",
        f"Status: {facts['status']}  revision: {facts['revision']}  chart: {facts['chart']}"
        f"  app version: {facts['app_version']}",
        f"Last deployed: {info.get('last_deployed', '')}",
        f"Description: {info.get('description', '')}",
    ]
    resources = manifest_resources(body.get("manifest") or "")
    if resources:
        lines.append(f"Resources: {', '.join(resources)}")
    if info.get("notes"):
        lines += ["Notes:", str(info["notes"]).strip()]
    return _output("\n".join(lines), data=facts)


async def _history_table(release: str, namespace: str) -> ToolOutput:
    rows = [
        [
            str(e["revision"]),
            str(e.get("updated", ""))[:19],
            e["status"],
            e["chart"],
            e.get("app_version") or "",
            e.get("description", ""),
        ]
        for e in await _history(release, namespace)
    ]
    text = table([["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION"], *rows])
    data = {
        "release": release,
        "namespace": namespace,
        "revisions": [{"revision": int(r[0]), "status": r[2]} for r in rows],
    }
    return _output(text, data=data)


async def _values(release: str, namespace: str, revision: int | None, *, all_values: bool) -> ToolOutput:
    """The values a release was given, or with ``all_values`` every computed value (Secret-like redacted)."""
    args = ["get", "values", release, "-n", namespace, "-o", "json"]
    if revision is not None:
        args += ["--revision", str(revision)]
    if all_values:
        args.append("--all")
    values = await _json(args, f"helm get values {release} in namespace {namespace}") or {}
    text = to_yaml(redact_values(values)) if values else "(no user-supplied values)"
    return _output(text, data={"release": release, "namespace": namespace})


async def _manifest(release: str, namespace: str, revision: int | None) -> ToolOutput:
    manifest = await deployed_manifest(release, namespace, revision)
    if manifest is None:
        raise ToolError(
            f"NotFound: Helm release {release} not found in namespace {namespace}; "
            "list releases with helm_get without a release"
        )
    return _output(
        redact_manifest(manifest),
        data={"release": release, "namespace": namespace, "resources": manifest_resources(manifest)},
    )


@bosun_tool(toolset="helm", read_only=True, timeout=90)
async def helm_charts(chart: ChartRef | None = None, version: ChartVersion | None = None) -> ToolOutput:
    """List the configured charts and repositories, or show a chart's default values."""
    settings = _settings()
    if chart is None:
        rows = [[name, "repository", url] for name, url in settings.repositories.items()]
        rows += [[name, "local chart", path] for name, path in settings.charts.items()]
        if not rows:
            return _output(
                "No chart repositories or local charts are configured.",
                data={"repositories": [], "charts": []},
            )
        return _output(
            table([["NAME", "TYPE", "SOURCE"], *rows]),
            data={"repositories": list(settings.repositories), "charts": list(settings.charts)},
        )
    run = await _helm(["show", "values", *chart_args(settings, chart, version)], f"helm show values {chart}")
    return _output(
        run.stdout or "(the chart has no default values)", truncated=bool(run.dropped), data={"chart": chart}
    )


@bosun_tool(toolset="helm", group="helm-install", read_only=True, timeout=90)
async def helm_template(
    release: ReleaseName,
    chart: ChartRef,
    namespace: Namespace,
    values: Values | None = None,
    version: ChartVersion | None = None,
) -> ToolOutput:
    """Render a configured chart's manifests without installing.

    Locally, with Secret values redacted, so nothing in the cluster changes or is read."""
    _mark_chart_secrets(_settings(), chart, values)
    with values_file(values) as value_args:
        run = await _helm(
            ["template", release, *chart_args(_settings(), chart, version), "-n", namespace, *value_args],
            f"helm template {chart}",
        )
    return _output(
        redact_manifest(run.stdout),
        truncated=bool(run.dropped),
        data={"chart": chart, "resources": manifest_resources(run.stdout)},
    )


# --- mutating tools -----------------------------------------------------------------------------------------


async def _install_or_upgrade(
    verb: str,
    release: str,
    chart: str,
    namespace: str,
    values: Mapping[str, Any] | None,
    version: str | None,
    extra: list[str],
    wait: bool,
) -> ToolOutput:
    """Both install and upgrade preview the same way: a server-side dry run of ``upgrade --install``
    rendered against the live cluster, diffed with the manifest of the deployed release."""
    ctx = current()
    settings = _settings()
    chart_arg = chart_args(settings, chart, version)
    _mark_chart_secrets(settings, chart, values)
    action = f"helm {verb} {release} in namespace {namespace}"
    with values_file(values) as value_args:
        if ctx.preview:
            current_manifest = await deployed_manifest(release, namespace)
            if verb == "install" and current_manifest is not None:
                raise ToolError(
                    f"Helm release {release} already exists in namespace {namespace}; use helm_upgrade"
                )
            if verb == "upgrade" and current_manifest is None:
                raise ToolError(
                    f"NotFound: Helm release {release} not found in namespace {namespace}; use helm_install"
                )
            base = [
                "upgrade",
                "--install",
                release,
                *chart_arg,
                "-n",
                namespace,
                *value_args,
                *extra,
                "-o",
                "json",
            ]
            try:
                run = await run_helm(settings, [*base, "--dry-run=server"], identity=ctx.identity)
            except HelmFailed as exc:
                if "dry-run" not in exc.message:
                    raise helm_error(exc, f"{action} (dry run)", ctx.identity) from None
                try:
                    run = await run_helm(settings, [*base, "--dry-run"], identity=ctx.identity)
                except HelmFailed as again:
                    raise helm_error(again, f"{action} (dry run)", ctx.identity) from None
            proposed = _parse(run, f"{action} (dry run)") or {}
            diff = manifest_diff(current_manifest or "", proposed.get("manifest") or "", release)
            resources = manifest_resources(proposed.get("manifest") or "")
            summary = (
                f"Would {verb} release {release} in namespace {namespace} with chart {chart}"
                f" (revision {proposed.get('version')}): {', '.join(resources) or 'no resources'}."
            )
            if not diff:
                summary += " The rendered manifests do not change."
            return _output(
                summary, diff=diff or None, data={**_release_facts(proposed), "resources": resources}
            )
        args = [verb, release, *chart_arg, "-n", namespace, *value_args, *extra, "-o", "json"]
        if wait:
            args += ["--wait", "--timeout", f"{int(settings.wait_timeout)}s"]
        run = await _helm(args, action)
    facts = _release_facts(_parse(run, action) or {})
    text = (
        f"Release {release} in namespace {namespace}: {facts['status']}, revision {facts['revision']}, "
        f"chart {facts['chart']}."
    )
    return _output(text, data=facts)


@bosun_tool(toolset="helm", group="helm-install", timeout=180)
async def helm_install(
    release: ReleaseName,
    chart: ChartRef,
    namespace: Namespace,
    values: Values | None = None,
    version: ChartVersion | None = None,
    wait: bool = False,
) -> ToolOutput:
    """Install a configured chart as a new release."""
    return await _install_or_upgrade("install", release, chart, namespace, values, version, [], wait)


@bosun_tool(toolset="helm", group="helm-install", idempotent=True, timeout=180)
async def helm_upgrade(
    release: ReleaseName,
    chart: ChartRef,
    namespace: Namespace,
    values: Values | None = None,
    version: ChartVersion | None = None,
    reuse_values: bool = False,
    wait: bool = False,
) -> ToolOutput:
    """Upgrade a release to a configured chart; reuse_values keeps its earlier values."""
    extra = ["--reuse-values"] if reuse_values else []
    return await _install_or_upgrade("upgrade", release, chart, namespace, values, version, extra, wait)


async def _history(release: str, namespace: str) -> list[dict[str, Any]]:
    entries = await _json(
        ["history", release, "-n", namespace, "-o", "json", "--max", "256"],
        f"helm history {release} in namespace {namespace}",
    )
    return list(entries or [])


@bosun_tool(toolset="helm", destructive=True, timeout=180)
async def helm_rollback(
    release: ReleaseName,
    namespace: Namespace,
    revision: Annotated[int, Field(ge=0, le=1_000_000)] = 0,
    wait: bool = False,
) -> ToolOutput:
    """Roll a release back to a revision (0: the previous)."""
    ctx = current()
    history = await _history(release, namespace)
    if not history:
        raise ToolError(f"NotFound: Helm release {release} not found in namespace {namespace}")
    latest = max(int(e["revision"]) for e in history)
    target = revision or latest - 1
    if target < 1 or target not in {int(e["revision"]) for e in history}:
        raise ToolError(
            f"Helm release {release} has no revision {target}; its revisions are "
            f"{', '.join(str(e['revision']) for e in history)} (see helm_get show=history)"
        )
    if ctx.preview:
        now = await deployed_manifest(release, namespace) or ""
        then = await deployed_manifest(release, namespace, target) or ""
        diff = manifest_diff(now, then, release)
        text = (
            f"Would roll release {release} in namespace {namespace} back to revision {target} (now {latest})."
        )
        if not diff:
            text += " The manifests of both revisions are identical."
        return _output(
            text,
            diff=diff or None,
            data={"release": release, "namespace": namespace, "target_revision": target},
        )
    args = ["rollback", release, str(target), "-n", namespace]
    if wait:
        args += ["--wait", "--timeout", f"{int(_settings().wait_timeout)}s"]
    await _helm(args, f"helm rollback {release} in namespace {namespace}")
    after = await _history(release, namespace)
    newest = max(after, key=lambda e: int(e["revision"])) if after else {}
    facts = {
        "release": release,
        "namespace": namespace,
        "revision": newest.get("revision"),
        "status": newest.get("status"),
        "rolled_back_to": target,
    }
    return _output(
        f"Rolled release {release} in namespace {namespace} back to revision {target}; it is now revision "
        f"{facts['revision']} ({facts['status']}).",
        data=facts,
    )


@bosun_tool(toolset="helm", destructive=True, timeout=180)
async def helm_uninstall(
    release: ReleaseName, namespace: Namespace, keep_history: bool = False, wait: bool = False
) -> ToolOutput:
    """Uninstall a release, deleting its resources."""
    ctx = current()
    manifest = await deployed_manifest(release, namespace)
    if manifest is None:
        raise ToolError(
            f"NotFound: Helm release {release} not found in namespace {namespace}; "
            "list releases with helm_get without a release"
        )
    resources = manifest_resources(manifest)
    if ctx.preview:
        return _output(
            f"Would uninstall release {release} in namespace {namespace}, deleting: "
            f"{', '.join(resources) or 'nothing'}.",
            diff=manifest_diff(manifest, "", release) or None,
            data={"release": release, "namespace": namespace, "resources": resources},
        )
    args = ["uninstall", release, "-n", namespace]
    if keep_history:
        args.append("--keep-history")
    if wait:
        args += ["--wait", "--timeout", f"{int(_settings().wait_timeout)}s"]
    await _helm(args, f"helm uninstall {release} in namespace {namespace}")
    return _output(
        f"Uninstalled release {release} from namespace {namespace}; deleted "
        f"{', '.join(resources) or 'nothing'}.",
        data={"release": release, "namespace": namespace, "uninstalled": True, "resources": resources},
    )
