"""The planner used when no model is configured: common operations from plain phrasing, no API key needed.

It understands a fixed set of sentences (scale, restart, roll back/undo, list/get/describe, logs, promote
or abort a rollout, trigger a Jenkins job, and the cluster-scoped "create namespace X" and
"cordon/uncordon node Y", proposed only under the same cluster-scope consent as a model's calls) and says
plainly when a request is beyond it, naming how to configure a model. It goes through the same gateway
checks as the model path: arguments validated against the tool's schema, the namespace scope, and a
dry-run preview for every proposed change, which is proposed with its secret values sealed (a Jenkins
password parameter named in the request) and never otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bosun_tools.secrets import Found, values_of

from bosun.planner.secret_values import scrubbed, unsealed_values
from bosun.planner.types import InvestigationRecord, PlannedCall, PlanningContext, PlanResult
from bosun.ports.gateway import ToolGateway

NEEDS_MODEL = (
    "This request needs a model: without one, Bosun understands only scale, restart, roll back/undo, "
    "list/get/describe, logs, promote/abort a rollout, trigger a Jenkins job and (with cluster-scope "
    "consent) create a namespace or cordon/uncordon a node, phrased like "
    '"scale deployment web in shop to 5" or "list pods in shop". To use a model, set BOSUN_MODEL '
    "(e.g. openai/gpt-4.1) and the provider's API key (e.g. OPENAI_API_KEY) in the operator's environment, "
    "or BOSUN_API_BASE for a local OpenAI-compatible server."
)

_NAME = r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?"
_WORKLOAD = r"deployments?|deploy|statefulsets?|sts|daemonsets?|ds|replicasets?|rs"
_KINDS = {
    "deploy": "deployment",
    "deployments": "deployment",
    "sts": "statefulset",
    "statefulsets": "statefulset",
    "ds": "daemonset",
    "daemonsets": "daemonset",
    "rs": "replicaset",
    "replicasets": "replicaset",
}
_TARGET = rf"(?:(?P<kind>{_WORKLOAD})\s+)?(?P<name>{_NAME})(?:\s+(?P<kind2>{_WORKLOAD}))?"
"""A workload named with its kind before or after the name ("deployment web", "web deployment", "web")."""
_POLITE = r"^(?:(?:please|can you|could you|kindly|bosun,?)\s+)*"

_NAMESPACE_CLAUSES = (
    rf"\b(?:in|from|within)\s+(?:the\s+)?(?:namespace|ns)\s+(?P<ns>{_NAME})\b",
    rf"\b(?:in|from|within)\s+(?:the\s+)?(?P<ns>{_NAME})\s+(?:namespace|ns)\b",
    rf"(?:^|\s)(?:-n|--namespace)(?:\s+|=)(?P<ns>{_NAME})\b",
    rf"\bnamespace\s+(?P<ns>{_NAME})\b",
    rf"\b(?:in|from|within)\s+(?P<ns>{_NAME})\b",
)


@dataclass(frozen=True)
class Intent:
    """One understood request: the tool call and how to say it back to a person."""

    tool: str
    args: dict[str, Any]
    description: str


def _workload(match: re.Match[str]) -> tuple[str, str]:
    """Kind and name from a match of ``_TARGET``."""
    return _kind(match.group("kind") or match.group("kind2")), match.group("name").lower()


def _kind(word: str | None, default: str = "deployment") -> str:
    if not word:
        return default
    word = word.lower()
    return _KINDS.get(word, word)


def _split_namespace(text: str) -> tuple[str, str | None]:
    """Take the namespace clause out of the sentence so the remaining patterns stay simple."""
    for clause in _NAMESPACE_CLAUSES:
        match = re.search(clause, text, re.IGNORECASE)
        if match:
            rest = (text[: match.start()] + " " + text[match.end() :]).strip()
            return " ".join(rest.split()), match.group("ns").lower()
    return text, None


def _jenkins(text: str) -> Intent | None:
    match = re.match(
        _POLITE
        + r"(?:trigger|run|start|build|kick off)\s+(?:a\s+(?:new\s+)?build\s+(?:of|for)\s+)?(?:the\s+)?"
        r"(?P<jenkins>jenkins\s+)?(?:(?P<job_word>job|pipeline)\s+)?(?P<job>[A-Za-z0-9_][A-Za-z0-9._/-]*)"
        r"(?:\s+(?:jenkins\s+)?(?P<job_word2>job|pipeline))?(?:\s+(?:with|using)\s+(?P<params>.+))?$",
        text,
        re.IGNORECASE,
    )
    if not match or not (match.group("jenkins") or match.group("job_word") or match.group("job_word2")):
        return None
    job = match.group("job").strip("/")
    parameters: dict[str, str] = {}
    raw = match.group("params") or ""
    for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)", raw):
        parameters[key] = value[1:-1] if value[:1] in "\"'" else value
    if raw and not parameters:
        return None
    shown = ", ".join(f"{k}={v}" for k, v in parameters.items())
    args: dict[str, Any] = {"job": [segment for segment in job.split("/") if segment]}
    if parameters:
        args["parameters"] = parameters
    return Intent(
        "jenkins_trigger_build",
        args,
        f"trigger Jenkins job {job}" + (f" with {shown}" if shown else ""),
    )


def parse(request: str, default_namespace: str) -> Intent | None:
    """The intent of a plain-language request, or None when it is not one the offline planner knows."""
    text = " ".join(request.strip().rstrip(".!?").split())
    for whole in (_jenkins, _create_namespace):
        intent = whole(text)
        if intent is not None:
            return intent
    text, namespace = _split_namespace(text)
    ns = namespace or default_namespace
    for matcher in (_scale, _restart, _undo, _logs, _rollout, _cordon, _list, _get):
        intent = matcher(text, ns)
        if intent is not None:
            return intent
    return None


def _create_namespace(text: str) -> Intent | None:
    """Creating a namespace is a cluster-scoped change: proposed only for a task with cluster-scope
    consent whose targetNamespaces name it (the gateway's scope check says so otherwise)."""
    match = re.match(
        _POLITE + r"(?:create|make|add)\s+(?:a\s+)?(?:new\s+)?(?:namespace|ns)\s+"
        rf"(?:called\s+|named\s+)?(?P<name>{_NAME})$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    name = match.group("name").lower()
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return Intent("k8s_apply", {"manifest": manifest}, f"create namespace {name}")


def _cordon(text: str, ns: str) -> Intent | None:
    """Cordoning a node ("cordon node Y", "uncordon node Y") is cluster-scoped: only with consent."""
    match = re.match(
        _POLITE + rf"(?P<verb>cordon|uncordon)\s+(?:the\s+)?(?:node\s+)?(?P<name>{_NAME})(?:\s+node)?$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    verb, name = match.group("verb").lower(), match.group("name").lower()
    described = "mark node {name} unschedulable" if verb == "cordon" else "mark node {name} schedulable"
    return Intent(f"k8s_{verb}", {"name": name}, described.format(name=name))


def _scale(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + rf"(?:scale|resize)\s+(?:up\s+|down\s+)?(?:the\s+)?{_TARGET}"
        r"(?:\s+replicas)?\s+(?:to|=)\s+(?P<n>\d+)(?:\s+(?:replicas?|pods?|instances?))?$",
        text,
        re.IGNORECASE,
    ) or re.match(
        _POLITE + r"set\s+(?:the\s+)?(?:replicas|replica count)\s+(?:of|for)\s+(?:the\s+)?"
        rf"{_TARGET}\s+to\s+(?P<n>\d+)$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    (kind, name), replicas = _workload(match), int(match.group("n"))
    return Intent(
        "k8s_scale",
        {"kind": kind, "name": name, "namespace": ns, "replicas": replicas},
        f"scale {kind} {name} in namespace {ns} to {replicas} replicas",
    )


def _restart(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + r"(?:rollout\s+|rolling\s+)?(?:restart|bounce|redeploy)\s+(?:the\s+)?"
        rf"{_TARGET}$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    kind, name = _workload(match)
    return Intent(
        "k8s_rollout_restart",
        {"kind": kind, "name": name, "namespace": ns},
        f"restart {kind} {name} in namespace {ns} (rolling restart)",
    )


def _undo(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + r"(?:roll\s*back|undo|revert)\s+(?:the\s+)?(?:(?:last\s+)?rollout\s+(?:of\s+)?)?(?:the\s+)?"
        rf"{_TARGET}"
        r"(?:\s+to\s+(?:the\s+)?(?:revision|rev|version)\s*(?P<rev>\d+))?$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    kind, name = _workload(match)
    args: dict[str, Any] = {"kind": kind, "name": name, "namespace": ns}
    target = "the previous revision"
    if match.group("rev"):
        args["to_revision"] = int(match.group("rev"))
        target = f"revision {args['to_revision']}"
    return Intent("k8s_rollout_undo", args, f"roll back {kind} {name} in namespace {ns} to {target}")


def _logs(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + r"(?:show|get|print|tail|fetch|display)?\s*(?:me\s+)?(?:the\s+)?"
        r"(?:last\s+(?P<tail>\d+)\s+lines\s+of\s+(?:the\s+)?)?logs?\s+(?:(?:of|for|from)\s+)?(?:the\s+)?(?:pod\s+)?"
        rf"(?P<name>{_NAME})(?:\s+pod)?(?:\s+container\s+(?P<container>{_NAME}))?$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    name = match.group("name").lower()
    args: dict[str, Any] = {"name": name, "namespace": ns}
    if match.group("container"):
        args["container"] = match.group("container").lower()
    if match.group("tail"):
        args["tail"] = int(match.group("tail"))
    return Intent("k8s_logs", args, f"logs of pod {name} in namespace {ns}")


def _rollout(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + r"(?P<verb>promote|abort)\s+(?:the\s+)?(?:argo\s+)?(?:rollout\s+)?"
        rf"(?P<name>{_NAME})(?:\s+rollout)?(?P<full>\s+fully|\s+--full)?$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    verb, name = match.group("verb").lower(), match.group("name").lower()
    args: dict[str, Any] = {"name": name, "namespace": ns}
    if verb == "promote" and match.group("full"):
        args["full"] = True
    return Intent(f"rollouts_{verb}", args, f"{verb} rollout {name} in namespace {ns}")


def _list(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + r"(?:list|show|get|display)\s+(?:me\s+)?(?:all\s+)?(?:the\s+)?(?P<kind>[a-z][a-z0-9.]*)$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    kind = match.group("kind").lower()
    if kind in ("it", "them", "everything", "status", "logs", "log"):
        return None
    return Intent("k8s_get", {"kind": kind, "namespace": ns}, f"{kind} in namespace {ns}")


def _get(text: str, ns: str) -> Intent | None:
    match = re.match(
        _POLITE + r"(?P<verb>get|describe|show|display)\s+(?:me\s+)?(?:the\s+)?"
        rf"(?P<kind>[a-z][a-z0-9.]*)\s+(?P<name>{_NAME})$",
        text,
        re.IGNORECASE,
    )
    if not match:
        return None
    kind, name = _kind(match.group("kind"), ""), match.group("name").lower()
    args = {"kind": kind, "name": name, "namespace": ns}
    if match.group("verb").lower() == "describe":
        args["output"] = "describe"
    return Intent("k8s_get", args, f"{kind} {name} in namespace {ns}")


async def plan_offline(ctx: PlanningContext, gateway: ToolGateway) -> PlanResult:
    """Serve ``ctx.request`` without a model: run a question, propose a change, or say a model is needed."""
    intent = parse(ctx.request, ctx.namespace)
    if intent is None:
        return PlanResult("unsupported", NEEDS_MODEL, error=NEEDS_MODEL)
    found = Found.of(intent.args)
    return scrubbed(await _plan(intent, found.redacted(intent.args), ctx, gateway), values_of(found.leaves))


async def _plan(
    intent: Intent, recorded: dict[str, Any], ctx: PlanningContext, gateway: ToolGateway
) -> PlanResult:
    """The result for ``intent``, whose arguments are recorded as ``recorded`` (secret values redacted;
    ``plan_offline`` scrubs them from the texts)."""
    problem = await gateway.validation_error(intent.tool, intent.args)
    if problem is None:
        problem = await gateway.scope_error(
            intent.tool, intent.args, ctx.target_namespaces, cluster_scope=ctx.cluster_scope
        )
    if problem is not None:
        error = f"cannot {intent.description}: {problem}"
        record = InvestigationRecord(intent.tool, recorded, False, error)
        return PlanResult("failed", error, investigation=[record], error=error, failure="planning")
    if gateway.is_read_only(intent.tool):
        outcome = await gateway.read(intent.tool, intent.args, identity=ctx.identity)
        text = outcome.text if outcome.ok else f"error: {outcome.error}"
        record = InvestigationRecord(intent.tool, recorded, outcome.ok, text)
        if not outcome.ok:
            error = f"cannot show {intent.description}: {outcome.error}"
            return PlanResult("failed", error, investigation=[record], error=error, failure="planning")
        return PlanResult(
            "answer",
            f"{intent.description[:1].upper()}{intent.description[1:]}:\n{text}",
            investigation=[record],
        )
    preview = await gateway.preview(intent.tool, intent.args, identity=ctx.acting, task=ctx.task)
    sealed = preview.sealed_args or intent.args
    unsealed = unsealed_values(sealed) if preview.ok else None
    if not preview.ok or unsealed is not None:
        why = unsealed or preview.error or "the tool gave no reason"
        error = f"cannot {intent.description}: its dry-run preview failed, so nothing was proposed: {why}"
        record = InvestigationRecord(intent.tool, recorded, False, error)
        return PlanResult("failed", error, investigation=[record], error=error, failure="planning")
    step = PlannedCall(
        id="s1",
        tool=intent.tool,
        args=sealed,
        rationale=f"Offline planner read the request as: {intent.description}.",
        preview=preview.text,
        diff=preview.diff,
    )
    summary = f"Proposed: {intent.description}. It runs after approval."
    return PlanResult("proposal", summary, steps=[step])
