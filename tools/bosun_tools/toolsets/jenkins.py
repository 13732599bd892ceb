"""Jenkins tools over its REST API (``/api/json``, ``buildWithParameters``, queue items, progressive text).

Where Jenkins is and who Bosun is there come only from a Kubernetes Secret named in the tool server's
settings, read with the server's own identity: a model can neither point the tools at another server nor
pick other credentials (the defect found in Skyflo, whose model-supplied ``credentials_ref``/``api_url``
won over the configured ones). The URL, user and token never appear in outputs or errors, including the
absolute URLs Jenkins puts in its JSON.

Jobs are addressed as a list of folder segments, each checked against Jenkins' own forbidden characters
and URL-quoted, so a name can never add a path, a query or another endpoint.

Every call acts in Jenkins as the configured account, so Kubernetes RBAC would not bound what a requester
does there, and anyone allowed to call a tool could do whatever that account may. Each tool therefore
first asks the API server, in a SubjectAccessReview for the requester's user and groups, whether they may
use the virtual resource ``jenkinsjobs.bosun.dev`` named by the job path joined with "/"
(``team/deploy``): ``get`` for the read-only tools, ``create`` to trigger a build, ``delete`` to stop one.
Listing a folder asks for the folder's path; the top-level list asks without a name (only a rule
without resourceNames allows it). The review is asked in the namespace of the Jenkins Secret, so
administrators grant access per job with ordinary RBAC: a Role there, or a ClusterRole. The tool server's
own identity needs ``create`` on ``subjectaccessreviews.authorization.k8s.io`` for this.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from bosun_tools.client.jenkins import (
    REDACTED,
    JenkinsClient,
    ParameterSpec,
    build_causes,
    build_parameters,
    describe_parameters,
    jenkins_session,
    job_label,
    job_url_path,
    parameter_lines,
    parameter_specs,
    validate_parameters,
)
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.output import ToolOutput, table
from bosun_tools.registry import bosun_tool, current
from bosun_tools.settings import JenkinsSettings

# Jenkins.checkGoodName rejects these characters; a leading dot or blank is refused here as well so "."
# and ".." can never walk up the URL.
JOB_SEGMENT_PATTERN = r"^[^?*/\\%!@#$^&|<>\[\]:;.\s\x00-\x1f][^?*/\\%!@#$^&|<>\[\]:;\x00-\x1f]*$"
JobSegment = Annotated[str, Field(min_length=1, max_length=128, pattern=JOB_SEGMENT_PATTERN)]
JobPath = Annotated[
    list[JobSegment],
    Field(min_length=1, max_length=10, description='Path segments, e.g. ["team", "deploy"]'),
]
BuildNumber = Annotated[int, Field(ge=1, le=100_000_000)]
ParameterName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]
ParameterValue = Annotated[str, Field(max_length=4096)] | bool | int

RBAC_GROUP = "bosun.dev"
RBAC_RESOURCE = "jenkinsjobs"
JobVerb = Literal["get", "create", "delete"]
JobView = Literal["job", "build", "builds", "changes", "console"]
JOB_VERBS: dict[str, str] = {"get": "to read it", "create": "to trigger a build", "delete": "to stop a build"}
_PARAM_TREE = "parameterDefinitions[name,type,description,defaultParameterValue[value],choices]"
_JOB_TREE = (
    "name,fullName,description,buildable,inQueue,color,nextBuildNumber,"
    "lastBuild[number,result,building,timestamp],lastSuccessfulBuild[number],lastFailedBuild[number],"
    f"property[{_PARAM_TREE}],actions[{_PARAM_TREE}]"
)
_BUILD_TREE = (
    "number,result,building,timestamp,duration,estimatedDuration,displayName,description,"
    "actions[parameters[name,value],causes[shortDescription]]"
)
_CHANGES_TREE = (
    "number,changeSet[kind,items[commitId,author[fullName],msg,timestamp,affectedPaths]],"
    "changeSets[kind,items[commitId,author[fullName],msg,timestamp,affectedPaths]]"
)
_JOBS_TREE = "jobs[name,color,_class,lastBuild[number,result,building]]"
"""A folder's (or the top level's) jobs; a job that is no folder has no ``jobs`` at all."""
_QUEUE_ITEM = re.compile(r"/queue/item/(\d+)/?$")


# --- formatting helpers ----------------------------------------------------------------------------------


def _when(ms: Any) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(ms: Any) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "-"
    seconds = ms // 1000
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _state(build: Mapping[str, Any] | None) -> str:
    if not build:
        return "-"
    if build.get("building"):
        return f"#{build.get('number')} BUILDING"
    return f"#{build.get('number')} {build.get('result') or '-'}"


def _number(build: Mapping[str, Any] | None) -> str:
    return f"#{build['number']}" if build and build.get("number") is not None else "-"


def _kind(item: Mapping[str, Any]) -> str:
    cls = str(item.get("_class", ""))
    if "Folder" in cls or "OrganizationFolder" in cls:
        return "folder"
    if "WorkflowMultiBranchProject" in cls:
        return "multibranch"
    if "WorkflowJob" in cls:
        return "pipeline"
    return "job"


def _build_ref(number: int | None) -> str:
    return str(number) if number is not None else "lastBuild"


# --- operations (plain async functions; the tool wrappers below add settings, identity and mode) ---------


@dataclass(frozen=True)
class Result:
    text: str
    data: dict[str, Any]
    diff: str | None = None
    secret_parameters: tuple[str, ...] = ()
    """Given parameters the job defines as passwords or credentials: their values are sealed in previews
    and scrubbed from outputs whatever their names say."""


def _job_list(client: JenkinsClient, folder: list[str], jobs: list[dict[str, Any]]) -> Result:
    """The jobs and folders of ``folder`` (the top level when empty), with their last builds."""
    where = f"folder {job_label(folder)}" if folder else "the top level"
    rows = [
        [str(j.get("name")), _kind(j), str(j.get("color") or "-"), _state(j.get("lastBuild"))] for j in jobs
    ]
    if not rows:
        return Result(f"No jobs in {where}.", {"folder": folder, "jobs": []})
    text = client.scrub(table([["NAME", "TYPE", "STATUS", "LAST BUILD"], *rows]))
    return Result(text, {"folder": folder, "jobs": [r[0] for r in rows]})


async def top_level(client: JenkinsClient) -> Result:
    """The top-level jobs, headed by the Jenkins user the tool server acts as."""
    me = await client.get_json("me/", "the current Jenkins user", tree="id,fullName")
    body = await client.get_json(job_url_path([]), "the job list", tree=_JOBS_TREE)
    listed = _job_list(client, [], body.get("jobs") or [])
    user = f"Jenkins user: {me.get('id')} ({me.get('fullName')})"
    return Result(client.scrub(f"{user}\n{listed.text}"), {**listed.data, "user": me.get("id")})


async def get_job(client: JenkinsClient, job: list[str]) -> Result:
    """A job's state, last builds and parameter definitions; a folder's jobs."""
    label = job_label(job)
    body = await client.get_json(job_url_path(job), f"job {label}", tree=f"{_JOB_TREE},{_JOBS_TREE}")
    if body.get("jobs") is not None:
        return _job_list(client, job, body["jobs"])
    specs = parameter_specs(body)
    lines = [
        f"Job: {body.get('fullName') or label}",
        f"Buildable: {body.get('buildable')}  In queue: {body.get('inQueue')}  Status: {body.get('color')}",
        f"Last build: {_state(body.get('lastBuild'))}  next number: {body.get('nextBuildNumber')}",
        f"Last success: {_number(body.get('lastSuccessfulBuild'))}  "
        f"last failure: {_number(body.get('lastFailedBuild'))}",
    ]
    if body.get("description"):
        lines.append(f"Description: {str(body['description'])[:500]}")
    lines.append("Parameters:" if specs else "Parameters: none")
    lines.extend(parameter_lines(specs))
    data = {
        "job": label,
        "buildable": body.get("buildable"),
        "last_build": (body.get("lastBuild") or {}).get("number"),
        "parameters": [s.name for s in specs],
    }
    return Result(client.scrub("\n".join(lines)), data)


async def get_build(client: JenkinsClient, job: list[str], number: int | None) -> Result:
    label = job_label(job)
    what = f"build {_build_ref(number)} of job {label}"
    body = await client.get_json(f"{job_url_path(job)}{_build_ref(number)}/", what, tree=_BUILD_TREE)
    result = "BUILDING" if body.get("building") else (body.get("result") or "-")
    lines = [
        f"Build #{body.get('number')} of {label}: {result}",
        f"Started: {_when(body.get('timestamp'))}  duration: {_duration(body.get('duration'))}  "
        f"estimated: {_duration(body.get('estimatedDuration'))}",
    ]
    causes = build_causes(body)
    if causes:
        lines.append(f"Cause: {'; '.join(causes)}")
    params = build_parameters(body)
    if params:
        lines.append("Parameters:")
        lines.extend(f"  {k} = {v}" for k, v in params.items())
    if body.get("description"):
        lines.append(f"Description: {str(body['description'])[:300]}")
    data = {
        "job": label,
        "number": body.get("number"),
        "result": body.get("result"),
        "building": bool(body.get("building")),
    }
    return Result(client.scrub("\n".join(lines)), data)


async def last_builds(client: JenkinsClient, job: list[str], count: int) -> Result:
    label = job_label(job)
    body = await client.get_json(
        job_url_path(job),
        f"job {label}",
        tree=f"builds[number,result,building,timestamp,duration]{{0,{count}}}",
    )
    builds = body.get("builds") or []
    if not builds:
        return Result(f"Job {label} has no builds yet.", {"job": label, "builds": []})
    rows = [
        [
            f"#{b.get('number')}",
            "BUILDING" if b.get("building") else str(b.get("result") or "-"),
            _when(b.get("timestamp")),
            _duration(b.get("duration")),
        ]
        for b in builds
    ]
    data = {
        "job": label,
        "builds": [
            {"number": b.get("number"), "result": b.get("result"), "building": b.get("building")}
            for b in builds
        ],
    }
    return Result(table([["BUILD", "RESULT", "STARTED", "DURATION"], *rows]), data)


def _utf8_cut(data: bytes, at: int, *, from_end: bool = False) -> bytes:
    """Cut at a character boundary so a capped log never ends (or starts) with half a character."""
    if from_end:
        piece = data[len(data) - at :] if at < len(data) else data
        while piece and (piece[0] & 0xC0) == 0x80:
            piece = piece[1:]
        return piece
    piece = data[:at]
    while piece and (piece[-1] & 0xC0) == 0x80:
        piece = piece[:-1]
    if piece and piece[-1] >= 0xC0:
        piece = piece[:-1]
    return piece


async def console(
    client: JenkinsClient, job: list[str], number: int | None, start: int | None, max_bytes: int
) -> Result:
    """Console text: from ``start`` (forward, capped) or, without it, the last ``max_bytes`` (the tail).

    Forward reads stop at the cap, so a huge log is not downloaded; the tail has to read the whole log
    (Jenkins offers no "last N bytes"), but keeps only ``max_bytes`` of it in memory.
    """
    label = job_label(job)
    ref = _build_ref(number)
    what = f"the console of build {ref} of job {label}"
    path = f"{job_url_path(job)}{ref}/logText/progressiveText"
    offset = start or 0
    received = bytearray()
    tail: deque[bytes] = deque()
    seen = window = 0
    overflow = False
    async with client.stream(path, what, {"start": offset}) as console_log:
        size = console_log.headers.get("X-Text-Size", "")
        total = int(size) if size.isdigit() else None
        more = console_log.headers.get("X-More-Data", "").lower() == "true"
        if total is not None and offset > total:
            raise ToolError(
                f"start={offset} is past the end of the console of build {ref} of job {label} "
                f"({total} bytes); use a smaller start"
            )
        async for chunk in console_log.chunks:
            seen += len(chunk)
            if start is not None:
                received.extend(chunk)
                if len(received) > max_bytes:
                    overflow = True
                    break
            else:
                tail.append(chunk)
                window += len(chunk)
                while len(tail) > 1 and window - len(tail[0]) >= max_bytes:
                    window -= len(tail.popleft())
    end = total if total is not None else offset + seen
    if start is not None:
        body = _utf8_cut(bytes(received), max_bytes) if overflow else bytes(received)
        next_start = offset + len(body) if overflow else end
        text = body.decode(errors="replace")
        if overflow:
            text += f"\n…[truncated {max(end - next_start, 1)} bytes; continue with start={next_start}]"
    else:
        body = _utf8_cut(b"".join(tail), max_bytes, from_end=True)
        skipped = end - len(body)
        overflow = skipped > 0
        next_start = end
        text = body.decode(errors="replace")
        if overflow:
            text = f"…[truncated {skipped} bytes; read from the beginning with start=0]\n" + text
    data = {
        "job": label,
        "build": ref,
        "next_start": next_start,
        "more_data": more or (overflow and start is not None),
        "truncated": overflow,
    }
    return Result(client.scrub(text), data)


async def changesets(client: JenkinsClient, job: list[str], number: int | None) -> Result:
    label = job_label(job)
    ref = _build_ref(number)
    body = await client.get_json(
        f"{job_url_path(job)}{ref}/", f"build {ref} of job {label}", tree=_CHANGES_TREE
    )
    sets = [*(body.get("changeSets") or []), *([body["changeSet"]] if body.get("changeSet") else [])]
    commits = []
    lines = []
    for change_set in sets:
        for item in (change_set or {}).get("items") or []:
            commit = str(item.get("commitId") or "")[:12]
            author = (item.get("author") or {}).get("fullName") or "-"
            message = " ".join(str(item.get("msg") or "").split())[:200]
            paths = item.get("affectedPaths") or []
            lines.append(f"{commit or '-'}  {author}  {message}")
            if paths:
                shown = ", ".join(str(p) for p in paths[:10])
                lines.append(f"    files: {shown}{' …' if len(paths) > 10 else ''}")
            commits.append(commit)
    if not lines:
        return Result(
            f"Build #{body.get('number')} of {label} has no changes.", {"job": label, "commits": []}
        )
    header = f"Changes in build #{body.get('number')} of {label}:"
    return Result(client.scrub("\n".join([header, *lines])), {"job": label, "commits": commits})


async def _job_parameters(
    client: JenkinsClient, job: list[str]
) -> tuple[dict[str, Any], list[ParameterSpec]]:
    label = job_label(job)
    body = await client.get_json(
        job_url_path(job),
        f"job {label}",
        tree=f"name,buildable,property[{_PARAM_TREE}],actions[{_PARAM_TREE}]",
    )
    if body.get("buildable") is False:
        raise ToolError(f"job {label} is disabled (not buildable); enable it in Jenkins first")
    return body, parameter_specs(body)


async def trigger_build(
    client: JenkinsClient,
    settings: JenkinsSettings,
    job: list[str],
    parameters: Mapping[str, str | bool | int],
    *,
    preview: bool,
) -> Result:
    """Queue a build, then follow the queue item (bounded) until it has a build number."""
    label = job_label(job)
    _, specs = await _job_parameters(client, job)
    form = validate_parameters(job, specs, parameters)
    shown = describe_parameters(specs, form)
    safe_params = {s.name: REDACTED if s.secret else form.get(s.name, s.default) for s in specs}
    secret = tuple(s.name for s in specs if s.secret and s.name in parameters)
    if preview:
        text = "\n".join(
            [f"Would trigger job {label}" + (" with parameters:" if specs else " (no parameters)"), *shown]
        )
        return Result(client.scrub(text), {"job": label, "parameters": safe_params}, secret_parameters=secret)
    endpoint = "buildWithParameters" if specs else "build"
    answer = await client.post(f"{job_url_path(job)}{endpoint}", f"triggering job {label}", form)
    match = _QUEUE_ITEM.search(urlsplit(answer.headers.get("Location", "")).path)
    if match is None:
        return Result(
            f"Triggered job {label} (Jenkins answered HTTP {answer.status} without a queue item).",
            {"job": label, "queue_item": None, "number": None, "parameters": safe_params},
            secret_parameters=secret,
        )
    item_id = int(match.group(1))
    why = ""
    for poll in range(settings.queue_max_polls):
        item = await client.get_json(
            f"queue/item/{item_id}/",
            f"queue item {item_id} of job {label}",
            tree="id,cancelled,why,executable[number]",
        )
        executable = item.get("executable") or {}
        if executable.get("number") is not None:
            number = int(executable["number"])
            return Result(
                f"Triggered job {label}: build #{number} started (queue item {item_id}).",
                {"job": label, "queue_item": item_id, "number": number, "parameters": safe_params},
                secret_parameters=secret,
            )
        if item.get("cancelled"):
            raise ToolError(
                f"the queued build of job {label} (queue item {item_id}) was cancelled in Jenkins"
            )
        why = str(item.get("why") or "")
        if poll + 1 < settings.queue_max_polls:
            await asyncio.sleep(settings.queue_poll_interval)
    return Result(
        client.scrub(
            f"Triggered job {label}: still queued after {settings.queue_max_polls} checks "
            f"(queue item {item_id})"
            + (f": {why}" if why else "")
            + ". Check again with jenkins_get show=builds; do not trigger it again."
        ),
        {"job": label, "queue_item": item_id, "number": None, "parameters": safe_params},
        secret_parameters=secret,
    )


async def stop_build(client: JenkinsClient, job: list[str], number: int, *, preview: bool) -> Result:
    label = job_label(job)
    what = f"build #{number} of job {label}"
    body = await client.get_json(f"{job_url_path(job)}{number}/", what, tree="number,result,building")
    if not body.get("building"):
        return Result(
            f"Build #{number} of {label} is not running (result {body.get('result')}); nothing to stop.",
            {"job": label, "number": number, "result": body.get("result"), "building": False},
        )
    if preview:
        return Result(
            f"Would stop the running build #{number} of job {label} (it ends as ABORTED).",
            {"job": label, "number": number, "building": True},
        )
    await client.post(f"{job_url_path(job)}{number}/stop", f"stopping {what}")
    return Result(
        f"Asked Jenkins to stop build #{number} of job {label}.",
        {"job": label, "number": number, "stop_requested": True},
    )


# --- tools -------------------------------------------------------------------------------------------------


def rbac_rule(verb: JobVerb, job: list[str] | None, namespace: str) -> str:
    """The RBAC rule an administrator adds to let someone ``verb`` ``job`` (all jobs when ``None``)."""
    names = f', resourceNames: ["{job_label(job)}"]' if job else ""
    return (
        f'{{apiGroups: ["{RBAC_GROUP}"], resources: ["{RBAC_RESOURCE}"]{names}, verbs: ["{verb}"]}} '
        f"in a Role in namespace {namespace} (or a ClusterRole)"
    )


async def authorize(
    kube: KubeClient,
    identity: Identity | None,
    settings: JenkinsSettings,
    verb: JobVerb,
    job: list[str] | None,
) -> None:
    """Refuse unless the requester's RBAC allows ``verb`` on ``jenkinsjobs.bosun.dev/<job>``.

    ``kube`` is the server's own client: with a requester it creates a SubjectAccessReview (the server
    needs ``create`` on subjectaccessreviews.authorization.k8s.io); without one (an external client with
    no configured identity) the server asks about itself, as every Kubernetes tool would then act."""
    namespace = settings.secret_namespace
    attributes = {
        "group": RBAC_GROUP,
        "resource": RBAC_RESOURCE,
        "verb": verb,
        "namespace": namespace,
        "name": job_label(job) if job else None,
    }
    try:
        status = await kube.access_review(attributes, subject=identity)
    except KubeError as exc:
        if exc.status == 403:
            raise ToolError(
                "Forbidden: the tool server's own identity may not create "
                "subjectaccessreviews.authorization.k8s.io, so it cannot check who may use Jenkins; grant it "
                "create on subjectaccessreviews (the Bosun chart's ClusterRole does)"
            ) from None
        raise
    if status.get("allowed"):
        return
    if identity is None:
        who = "the tool server's own identity"
    else:
        who = identity.user + (f" (groups {', '.join(identity.groups)})" if identity.groups else "")
    target = f'"{job_label(job)}"' if job else "(all jobs)"
    raise ToolError(
        f"Forbidden: {who} may not {verb} {RBAC_RESOURCE}.{RBAC_GROUP} {target} {JOB_VERBS[verb]}; "
        f"Jenkins access follows Kubernetes RBAC: an administrator grants it with the rule "
        f"{rbac_rule(verb, job, namespace)}"
    )


@asynccontextmanager
async def _session(
    verb: JobVerb, job: list[str] | None
) -> AsyncIterator[tuple[JenkinsClient, JenkinsSettings]]:
    """A Jenkins session for this call, once the requester's RBAC allows ``verb`` on ``job``; the
    credentials are read as the server (never as the caller), and not at all for a refused caller."""
    ctx = current()
    settings = ctx.settings.jenkins
    if settings is None:
        raise ToolError(
            "Jenkins is not configured on this tool server; an administrator sets BOSUN_TOOLS_JENKINS_SECRET "
            "to the namespace/name of a Secret with the keys url, user and token"
        )
    await authorize(ctx.server_kube, ctx.identity, settings, verb, job)
    async with jenkins_session(ctx.server_kube, settings) as client:
        yield client, settings


def _out(result: Result, settings: JenkinsSettings, *, keep: Literal["head", "tail"] = "head") -> ToolOutput:
    truncated = bool(result.data.get("truncated"))
    return ToolOutput.capped(
        result.text,
        cap=settings.console_cap + 512,
        keep=keep,
        diff=result.diff,
        data=result.data,
        truncated=truncated,
    )


@bosun_tool(toolset="jenkins", read_only=True, timeout=60)
async def jenkins_get(
    job: JobPath | None = None,
    show: JobView = "job",
    number: BuildNumber | None = None,
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    start: Annotated[int, Field(ge=0)] | None = None,
) -> ToolOutput:
    """List jobs without job, or show a job or folder, a build (default: the last), its last builds, a build's
    changes or console (the tail, or from byte start).

    The top-level list names the Jenkins user the tool server acts as. A console read is capped by the
    server's ``console_cap``; a longer log is read on with the ``start`` the answer names."""
    if job is None:
        if show != "job" or number is not None:
            raise ToolError(f"show={show} and number need a job; without one, the top-level jobs are listed")
        async with _session("get", None) as (client, settings):
            return _out(await top_level(client), settings)
    if number is not None and show not in ("build", "changes", "console"):
        raise ToolError(f"number picks a build for show=build, changes or console, not show={show}")
    if start is not None and show != "console":
        raise ToolError(f"start is a byte offset into a console log (show=console), not for show={show}")
    async with _session("get", job) as (client, settings):
        if show == "job":
            return _out(await get_job(client, job), settings)
        if show == "build":
            return _out(await get_build(client, job, number), settings)
        if show == "builds":
            return _out(await last_builds(client, job, limit), settings)
        if show == "changes":
            return _out(await changesets(client, job, number), settings)
        result = await console(client, job, number, start, settings.console_cap)
        return _out(result, settings, keep="tail" if start is None else "head")


@bosun_tool(toolset="jenkins", timeout=90)
async def jenkins_trigger_build(
    job: JobPath,
    parameters: Annotated[
        dict[ParameterName, ParameterValue] | None, Field(description="Build parameters by name")
    ] = None,
) -> ToolOutput:
    """Trigger a build with parameters; returns its number."""
    ctx = current()
    async with _session("create", job) as (client, settings):
        result = await trigger_build(client, settings, job, dict(parameters or {}), preview=ctx.preview)
        for name in result.secret_parameters:
            ctx.secrets.mark("parameters", name)
        return _out(result, settings)


@bosun_tool(toolset="jenkins", destructive=True, idempotent=True, timeout=30)
async def jenkins_stop_build(job: JobPath, number: BuildNumber) -> ToolOutput:
    """Stop a running build."""
    async with _session("delete", job) as (client, settings):
        return _out(await stop_build(client, job, number, preview=current().preview), settings)
