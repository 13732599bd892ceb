"""``kubectl bosun`` without a cluster: what it prints (golden files), the objects it creates, its command
line, the connection it makes from a kubeconfig, and how it follows a watch across a 410.

The golden files ``tests/golden/kubectl_bosun_*.txt`` are what a reviewer reads before approving; a change
to them shows in review. Regenerate with ``BOSUN_UPDATE_GOLDEN=1 uv run --frozen pytest -q
tests/unit/test_kubectl_plugin.py`` and review the diff. The same commands against a real cluster and
operator are in tests/e2e/test_kubectl_plugin.py.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bosun.api.models import (
    AgentTaskStatus,
    ApprovalGrantStatus,
    ApprovalRecord,
    Proposal,
    ProposedStep,
    StepRecord,
    TaskPhase,
    UserRef,
    Verification,
    VerificationCheck,
)
from bosun.cli import render
from bosun.cli.cluster import AGENT_TASKS, Connection, UsageError
from bosun.cli.commands import Console
from bosun.cli.main import main, parser
from bosun.cli.objects import grant_object, name_prefix, task_object
from bosun.core import follow_up
from bosun.core.approval_policy import DESTRUCTIVE_APPROVER_GROUPS, REQUIRED_APPROVALS, ApprovalPolicy
from bosun.core.phases import approvals_pending, transition
from bosun_tools.client.kube import KubeError
from bosun_tools.identity import Identity

from tests.unit.test_golden import GOLDEN, check

UID = "0b7c6a0e-1111-4222-8333-444455556666"
HASH = "sha256:" + "3e1f" * 16
CREATED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=7)
PLAIN = render.Style(color=False)
COLOUR = render.Style(color=True)
BOB = UserRef(user="bob", groups=["sre", "system:authenticated"])
ALICE = UserRef(user="alice", groups=["system:authenticated"])
CAROL = UserRef(user="carol", groups=["system:authenticated"])
HOW_TO_UPDATE = "rerun with BOSUN_UPDATE_GOLDEN=1 and review the diff"

SCALE_DIFF = (
    "--- deployment/web (scale) (live)\n+++ deployment/web (scale) (after)\n@@ -5,3 +5,3 @@\n"
    "   namespace: shop\n spec:\n-  replicas: 3\n+  replicas: 5"
)
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-flags\ndata:\n  checkout: 'off'\n"


def _at(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


def _steps() -> list[ProposedStep]:
    return [
        ProposedStep(
            id="s1",
            tool="k8s_scale",
            args={"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5},
            idempotent=True,
            rationale="Five replicas carry the sale's traffic.",
            preview="Would scale deployment web in namespace shop:\n  spec.replicas: 3 -> 5",
            diff=SCALE_DIFF,
        ),
        ProposedStep(
            id="s2",
            tool="k8s_apply",
            args={"manifest": CONFIG, "namespace": "shop"},
            destructive=True,
            rationale="Turn the checkout flag off while scaling.",
            preview="Would configure configmap/web-flags: data.checkout: on -> off",
            diff="--- configmap/web-flags (live)\n+++ configmap/web-flags (after)\n@@ -3 +3 @@\n"
            "-  checkout: 'on'\n+  checkout: 'off'",
            preview_note="step s1 touches deployment web first; this preview did not see it",
        ),
    ]


def _body(name: str, status: AgentTaskStatus, request: str, *, created: datetime = CREATED) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": UID,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "annotations": {"bosun.dev/requester": "bob", "bosun.dev/requester-groups": "sre"},
        },
        "spec": {"request": request, "targetNamespaces": ["shop"]},
        "status": status.wire(),
    }


def _moved(status: AgentTaskStatus, *path: tuple[TaskPhase, str, str, datetime]) -> AgentTaskStatus:
    for to, reason, message, at in path:
        status = transition(status, to, reason=reason, message=message, generation=1, now=at)
    return status


def awaiting_task() -> dict[str, Any]:
    """Revision 2 of a task: carol's approval counted, bob's own refused, one more approver needed."""
    proposal = Proposal(
        revision=2, hash=HASH, created_at=_at(2), summary="Scale web and pause checkout.", steps=_steps()
    )
    policy = ApprovalPolicy().for_namespace(
        "shop", {REQUIRED_APPROVALS: "2", DESTRUCTIVE_APPROVER_GROUPS: "sre, platform"}
    )
    status = _moved(
        AgentTaskStatus(
            phase="Planning",
            requester=BOB,
            proposal=proposal,
            approval_policy=policy.as_status(),
            iteration=2,
        ),
        ("AwaitingApproval", "Planned", f"proposal revision 2 ({HASH}) awaits approval", _at(2)),
    )
    status = status.model_copy(
        update={
            "approvals": [
                ApprovalRecord(
                    grant="scale-web-approve-7xk2p",
                    decision="Approve",
                    accepted=True,
                    revision=2,
                    approver=CAROL,
                    reason="ApprovalCounted: approved steps s1, s2",
                    at=_at(3),
                ),
                ApprovalRecord(
                    grant="scale-web-approve-b0b00",
                    decision="Approve",
                    accepted=False,
                    approver=BOB,
                    reason="FourEyes: bob requested this task; with four-eyes on, another approver (not bob) "
                    "with create rights on approvalgrants in namespace shop must approve",
                    at=_at(4),
                ),
            ],
            "steps": [
                StepRecord(
                    id="r2-s1",
                    revision=2,
                    step_id="s1",
                    tool="k8s_scale",
                    args=_steps()[0].args,
                    mutating=True,
                    state="AwaitingApproval",
                ),
                StepRecord(
                    id="r2-s2",
                    revision=2,
                    step_id="s2",
                    tool="k8s_apply",
                    args=_steps()[1].args,
                    mutating=True,
                    state="AwaitingApproval",
                ),
            ],
        }
    )
    waiting = (
        "1 of 2 approvals (carol) for revision 2; 1 more needed: another approver (not carol, bob) with "
        "create rights on approvalgrants in namespace shop must approve"
    )
    status = approvals_pending(status, "1 of 2 approvals (carol)", waiting, generation=1, now=_at(3))
    return _body("scale-web", status, "scale web in shop to 5 and pause checkout")


def succeeded_task() -> dict[str, Any]:
    """A task that read, proposed, ran as bob once alice approved, and verified."""
    [scale, _] = _steps()
    proposal = Proposal(revision=1, hash=HASH, created_at=_at(1), summary="Scale web to 5.", steps=[scale])
    records = [
        StepRecord(
            id="p1-i1",
            revision=1,
            tool="k8s_get",
            args={"kind": "deployment", "name": "web", "namespace": "shop"},
            mutating=False,
            state="Succeeded",
            output="deployment web: 3/3 available",
        ),
        StepRecord(
            id="r1-s1",
            revision=1,
            step_id="s1",
            tool="k8s_scale",
            args=scale.args,
            mutating=True,
            idempotent=True,
            state="Succeeded",
            approved_by=[ALICE],
            grant="scale-web-approve-q9d4m",
            ran_as=BOB,
            attempts=1,
            output="Did scale deployment web in namespace shop: spec.replicas: 3 -> 5",
        ),
    ]
    status = AgentTaskStatus(
        phase="Planning",
        requester=BOB,
        proposal=proposal,
        iteration=1,
        steps=records,
        approvals=[
            ApprovalRecord(
                grant="scale-web-approve-q9d4m",
                decision="Approve",
                accepted=True,
                revision=1,
                approver=ALICE,
                reason="Approved: approved steps s1",
                at=_at(3),
            )
        ],
        verification=Verification(
            revision=1,
            passed=True,
            checks=[
                VerificationCheck(
                    name="deployment shop/web rolled out", passed=True, message="rolled out, 5/5 available"
                )
            ],
            checked_at=_at(5),
        ),
        summary="Scaled deployment web in shop to 5 replicas; 5/5 are available.",
    )
    status = _moved(
        status,
        ("AwaitingApproval", "Planned", "proposal revision 1 awaits approval", _at(1)),
        ("Executing", "Approved", "approved steps s1 by alice", _at(3)),
        ("Verifying", "ToolSucceeded", "all approved steps ran; verifying the outcome", _at(4)),
        ("Succeeded", "Verified", "objective checks passed: deployment shop/web rolled out", _at(5)),
    )
    return _body("scale-web-done", status, "scale web in shop to 5", created=_at(-60))


def failed_task() -> dict[str, Any]:
    status = _moved(
        AgentTaskStatus(phase="Planning", requester=BOB),
        ("Failed", "Unsupported", "This request needs a model: set BOSUN_MODEL", _at(1)),
    )
    return _body("write-a-poem", status, "write a poem", created=_at(-30))


# ----- golden renderings -----------------------------------------------------------------------------------


def test_show_of_a_task_awaiting_its_second_approval() -> None:
    shown = render.task(awaiting_task(), PLAIN, now=NOW, tz=UTC)
    check(GOLDEN / "kubectl_bosun_show_awaiting.txt", shown, HOW_TO_UPDATE)
    assert HASH in shown
    assert "Still needed: 1 of 2 approvals (carol) for revision 2; 1 more needed" in shown
    assert (
        "  Policy: four-eyes on, 2 distinct approvers, destructive steps need an approver in sre or platform "
        "(namespace shop), annotation approvals accepted, grants valid 24h\n"
    ) in shown
    assert "\033[" not in shown


def test_show_says_when_the_policy_approves_nothing_and_not_once_decided() -> None:
    """A namespace annotation that does not parse: the Policy line, in red, says nothing is approved. A task
    no longer awaiting approval shows no Policy line (its status still records the policy)."""
    body = awaiting_task()
    broken = ApprovalPolicy().for_namespace("shop", {REQUIRED_APPROVALS: "two"})
    body["status"]["approvalPolicy"] = broken.as_status().wire()
    shown = render.task(body, COLOUR, now=NOW, tz=UTC)
    assert "  \033[31mPolicy\033[0m: four-eyes on, 1 approver," in shown
    assert (
        "nothing is approved until a cluster admin fixes: namespace shop bosun.dev/required-approvals"
        in shown
    )
    done = succeeded_task()
    done["status"]["approvalPolicy"] = ApprovalPolicy().as_status().wire()
    assert "Policy" not in render.task(done, PLAIN, now=NOW, tz=UTC)
    assert "Policy" not in render.task(failed_task(), PLAIN, now=NOW, tz=UTC)


def test_show_of_a_task_that_succeeded() -> None:
    shown = render.task(succeeded_task(), PLAIN, now=NOW, tz=UTC)
    check(GOLDEN / "kubectl_bosun_show_succeeded.txt", shown, HOW_TO_UPDATE)
    assert "Ended Succeeded: Verified: objective checks passed" in shown
    assert "Scaled deployment web in shop to 5 replicas" in shown


def test_show_of_a_follow_up_refused_because_the_task_it_follows_has_not_finished() -> None:
    refusal = follow_up.previous_refusal(
        "scale-web", "shop", "bob", allowed=True, previous=awaiting_task(), follower_created=NOW
    )
    assert refusal is not None
    status = _moved(
        AgentTaskStatus(phase="Pending", requester=BOB), ("Failed", refusal.reason, refusal.message, _at(6))
    )
    body = _body("pause-checkout-too", status, "and pause checkout as well", created=_at(6))
    body["spec"]["followUpOf"] = "scale-web"
    shown = render.task(body, PLAIN, now=NOW, tz=UTC)
    check(GOLDEN / "kubectl_bosun_show_follow_up.txt", shown, HOW_TO_UPDATE)
    assert "  Follows up: scale-web\n" in shown
    assert "Follows up" not in render.task(succeeded_task(), PLAIN, now=NOW, tz=UTC)
    assert "Ended Failed: FollowUpNotFinished: spec.followUpOf: AgentTask scale-web" in shown


def test_what_an_approval_of_one_step_of_two_shows_before_it_is_confirmed() -> None:
    preview = render.decision_preview(awaiting_task(), "Approve", ["s1"], PLAIN)
    check(GOLDEN / "kubectl_bosun_approve.txt", preview, HOW_TO_UPDATE)
    assert "s2  k8s_apply  [destructive]  (left out: recorded as denied, does not run)" in preview
    assert "Approving lets s1 run" in preview
    deny = render.decision_preview(awaiting_task(), "Deny", None, PLAIN)
    assert "left out" not in deny
    assert "Denying ends the task Denied: none of its steps run." in deny


def test_list_puts_pending_approvals_first_then_the_rest_oldest_first() -> None:
    items = [succeeded_task(), failed_task(), awaiting_task()]
    listed = render.task_table(items, namespace=None, now=NOW)
    check(GOLDEN / "kubectl_bosun_list.txt", listed, HOW_TO_UPDATE)
    names = [line.split()[1] for line in listed.splitlines()[1:]]
    assert names == ["scale-web", "scale-web-done", "write-a-poem"]
    assert render.task_table([], namespace="shop", now=NOW) == "No agenttasks found in namespace shop.\n"


def test_the_watch_timeline() -> None:
    event = {
        "involvedObject": {"kind": "ApprovalGrant", "name": "scale-web-approve-b0b00", "namespace": "shop"},
        "type": "Warning",
        "reason": "GrantRejected",
        "message": "bob: FourEyes: bob requested this task;\nanother approver must approve",
        "lastTimestamp": "2026-05-04T12:04:00Z",
    }
    lines = [
        render.timeline_task(awaiting_task(), _at(3), PLAIN, tz=UTC, all_namespaces=False, deleted=False),
        render.timeline_event(event, PLAIN, tz=UTC, all_namespaces=False),
        render.timeline_task(succeeded_task(), _at(5), PLAIN, tz=UTC, all_namespaces=True, deleted=False),
        render.timeline_task(failed_task(), _at(6), PLAIN, tz=UTC, all_namespaces=True, deleted=True),
    ]
    check(GOLDEN / "kubectl_bosun_watch.txt", "\n".join(lines) + "\n", HOW_TO_UPDATE)
    assert lines[1].startswith(
        "12:04:00  approvalgrant/scale-web-approve-b0b00  GrantRejected  bob: FourEyes"
    )


def test_colour_marks_removed_and_added_lines_and_phases() -> None:
    shown = render.task(awaiting_task(), COLOUR, now=NOW, tz=UTC)
    assert "\033[31m-  replicas: 3\033[0m" in shown
    assert "\033[32m+  replicas: 5\033[0m" in shown
    assert "\033[36m@@ -5,3 +5,3 @@\033[0m" in shown
    assert "\033[33mAwaitingApproval\033[0m" in shown
    assert render.phase("Failed", COLOUR) == "\033[31mFailed\033[0m"
    assert render.phase("Succeeded", COLOUR) == "\033[32mSucceeded\033[0m"


@pytest.mark.parametrize(
    ("is_terminal", "environ", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),
        (True, {"TERM": "dumb"}, False),
    ],
)
def test_colour_only_for_a_terminal_without_no_color(
    is_terminal: bool, environ: dict[str, str], expected: bool
) -> None:
    assert render.wants_colour(is_terminal, environ) is expected


def test_multi_line_arguments_are_shown_as_written() -> None:
    assert render.arguments({"manifest": CONFIG, "namespace": "shop"}) == [
        "manifest: |",
        "  apiVersion: v1",
        "  kind: ConfigMap",
        "  metadata:",
        "    name: web-flags",
        "  data:",
        "    checkout: 'off'",
        "namespace: shop",
    ]


def test_a_grant_outcome_names_state_reason_and_message() -> None:
    status = ApprovalGrantStatus(
        state="Rejected", reason="StaleHash", message="planHash sha256:… does not match"
    )
    grant = {"metadata": {"name": "scale-web-approve-x1y2z"}, "status": status.wire()}
    assert render.grant_outcome(grant, PLAIN) == (
        "approvalgrant.bosun.dev/scale-web-approve-x1y2z Rejected (StaleHash): "
        "planHash sha256:… does not match"
    )


def test_a_refusal_says_who_may_not_do_what_where_and_what_to_ask_for() -> None:
    server = 'agenttasks.bosun.dev is forbidden: User "carol" cannot create resource "agenttasks"'
    told = render.not_allowed("carol", "create", "agenttasks.bosun.dev", "shop", server)
    assert told.startswith("Forbidden: carol may not create agenttasks.bosun.dev in namespace shop.\n")
    assert (
        "kubectl -n shop create rolebinding carol-bosun-requester --clusterrole=bosun-requester --user=carol"
        in told
    )
    assert f"The API server said: {server}" in told
    approving = render.not_allowed("carol", "create", "approvalgrants.bosun.dev", "shop", server)
    assert "--clusterrole=bosun-approver" in approving
    everywhere = render.not_allowed(None, "list", "agenttasks.bosun.dev", None, server)
    assert "you may not list agenttasks.bosun.dev across all namespaces (-A)" in everywhere
    assert "kubectl create clusterrolebinding you-bosun-viewer --clusterrole=bosun-viewer" in everywhere


def test_a_stale_review_names_both_hashes() -> None:
    reviewed = "sha256:" + "0" * 64
    told = render.stale("shop", "scale-web", reviewed, awaiting_task())
    assert told == (
        f"agenttask shop/scale-web now proposes revision 2 ({HASH}), not the {reviewed} you reviewed, so "
        "nothing was decided: review it again with `kubectl bosun show scale-web -n shop`"
    )


# ----- the objects it creates ------------------------------------------------------------------------------


def test_a_task_gets_a_name_that_reads_like_the_request() -> None:
    assert name_prefix("Scale web to 5!") == "scale-web-to-5-"
    assert name_prefix("¿¿??") == "task-"
    long = name_prefix("please scale deployment web in namespace shop to five replicas now")
    assert long == "please-scale-deployment-web-in-namespace-"
    assert task_object("scale web", "shop", ["shop", "cache"]) == {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"generateName": "scale-web-", "namespace": "shop"},
        "spec": {"request": "scale web", "targetNamespaces": ["shop", "cache"]},
    }
    assert "targetNamespaces" not in task_object("scale web", "shop", [])["spec"]


def test_a_follow_up_names_the_task_it_follows_and_may_name_a_model() -> None:
    asked = task_object(
        "and pause checkout too", "shop", [], model="openai/gpt-4.1-mini", follow_up_of="scale-web"
    )
    assert asked["spec"] == {
        "request": "and pause checkout too",
        "model": "openai/gpt-4.1-mini",
        "followUpOf": "scale-web",
    }
    assert set(task_object("x", "shop", [])["spec"]) == {"request"}


def test_a_grant_is_bound_to_the_task_uid_and_the_hash_shown() -> None:
    grant = grant_object(awaiting_task(), "Approve", HASH, ["s1"], "change review 42")
    assert grant["metadata"] == {
        "generateName": "scale-web-approve-",
        "namespace": "shop",
        "labels": {"bosun.dev/via": "kubectl-bosun"},
    }
    assert grant["spec"] == {
        "taskRef": {"name": "scale-web", "uid": UID},
        "planHash": HASH,
        "decision": "Approve",
        "steps": ["s1"],
        "reason": "change review 42",
    }
    deny = grant_object(awaiting_task(), "Deny", HASH, None, None)
    assert deny["metadata"]["generateName"] == "scale-web-deny-"
    assert "steps" not in deny["spec"]
    assert "reason" not in deny["spec"]


# ----- the command line ------------------------------------------------------------------------------------


def test_kubectl_flags_work_before_and_after_the_command() -> None:
    before = parser().parse_args(["-n", "shop", "--kubeconfig", "k", "--as", "bob", "show", "scale-web"])
    after = parser().parse_args(["show", "scale-web", "-n", "shop", "--kubeconfig", "k", "--as", "bob"])
    for args in (before, after):
        assert (args.namespace, args.kubeconfig, args.as_user, args.task) == ("shop", "k", "bob", "scale-web")
    mixed = parser().parse_args(["--context", "prod", "list", "-A", "--as-group", "sre"])
    assert (mixed.context, mixed.all_namespaces, mixed.as_groups) == ("prod", True, ["sre"])
    asked = parser().parse_args(["ask", "scale", "web", "to", "5", "--targets", "shop, cache", "--wait"])
    assert (asked.request, asked.targets, asked.wait) == (
        ["scale", "web", "to", "5"],
        ["shop", "cache"],
        True,
    )


def test_ask_takes_a_task_to_follow_up_and_a_model() -> None:
    asked = parser().parse_args(
        ["ask", "and", "the", "api", "too", "--follow-up-of", "scale-web", "--model", "openai/gpt-4.1-mini"]
    )
    assert (asked.request, asked.follow_up_of, asked.model) == (
        ["and", "the", "api", "too"],
        "scale-web",
        "openai/gpt-4.1-mini",
    )
    plain = parser().parse_args(["ask", "scale web"])
    assert (plain.follow_up_of, plain.model) == (None, None)


class _AskScript:
    """A connection that records the task ``ask`` creates and reports it Failed at once."""

    namespace = "shop"

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, kind: Any, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return {**obj, "metadata": {**obj["metadata"], "name": "and-the-api-too-x7k2q"}}

    async def changes(self, kind: Any, *, name: str) -> Any:
        refusal = "spec.followUpOf: AgentTask scale-web has not finished"
        status = _moved(AgentTaskStatus(requester=BOB), ("Failed", "FollowUpNotFinished", refusal, _at(1)))
        yield "ADDED", _body(name, status, "and the api too")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("wait", "exit_status"), [([], 0), (["--wait"], 1)])
def test_ask_creates_the_follow_up_and_follows_it_to_its_end(
    wait: list[str], exit_status: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _AskScript()
    monkeypatch.setattr(Connection, "open", classmethod(lambda cls, **_: script))
    argv = ["ask", "and the api too", "-n", "shop", "--follow-up-of", "scale-web", "--model", "m/x", *wait]
    assert main(argv) == exit_status
    [created] = script.created
    assert created["spec"] == {"request": "and the api too", "model": "m/x", "followUpOf": "scale-web"}
    out = capsys.readouterr().out
    assert "agenttask.bosun.dev/and-the-api-too-x7k2q created in namespace shop" in out
    assert "Failed: FollowUpNotFinished: spec.followUpOf: AgentTask scale-web has not finished" in out


def test_approve_takes_steps_a_reason_a_reviewed_hash_and_yes() -> None:
    args = parser().parse_args(
        ["approve", "scale-web", "--steps", "s1,s3", "--reason", "ok", "--hash", HASH, "--yes"]
    )
    assert (args.steps, args.reason, args.reviewed, args.yes) == (["s1", "s3"], "ok", HASH, True)
    assert parser().parse_args(["deny", "scale-web"]).yes is False


@pytest.mark.parametrize(
    "argv",
    [
        ["approve", "scale-web", "--hash", "sha256:123"],
        ["approve", "scale-web", "--steps", "S1;rm"],
        ["deny", "scale-web", "--steps", "s1"],
        ["list", "--wait"],
        ["ask", "x", "--follow-up-of", "Scale_Web"],
        ["ask", "x", "--model", "gpt 4!"],
        ["show", "x", "--follow-up-of", "scale-web"],
        [],
    ],
)
def test_a_command_line_it_cannot_act_on_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(argv)
    assert exited.value.code == 2
    assert "usage: kubectl bosun" in capsys.readouterr().err


def test_a_confirmation_is_a_yes_only_when_the_person_says_so() -> None:
    def answered(text: str) -> tuple[bool, str]:
        out = io.StringIO()
        agreed = Console(style=PLAIN, tz=UTC, out=out, answers=io.StringIO(text)).confirm("Approve? [y/N] ")
        return agreed, out.getvalue()

    assert answered("y\n") == (True, "Approve? [y/N] \n")
    assert answered("YES\n")[0]
    assert not answered("n\n")[0]
    assert not answered("\n")[0]
    assert not answered("")[0]  # nobody answered: stdin closed


# ----- the connection ---------------------------------------------------------------------------------------


def _kubeconfig(path: Path, *, namespace: str | None = None, acting_as: str | None = None) -> Path:
    user: dict[str, Any] = {"token": "t0ken"}
    if acting_as:
        user.update({"as": acting_as, "as-groups": ["sre"]})
    context: dict[str, Any] = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": context}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(config))
    return path


def _open(kubeconfig: Path, **flags: Any) -> Connection:
    options: dict[str, Any] = {"context": None, "namespace": None, "as_user": None, "as_groups": []}
    return Connection.open(kubeconfig=str(kubeconfig), **{**options, **flags})


async def test_the_namespace_is_the_flag_else_the_contexts_else_default(tmp_path: Path) -> None:
    with_namespace = _kubeconfig(tmp_path / "a", namespace="shop")
    without = _kubeconfig(tmp_path / "b")
    for config, flag, expected in (
        (with_namespace, None, "shop"),
        (with_namespace, "web", "web"),
        (without, None, "default"),
    ):
        conn = _open(config, namespace=flag)
        assert conn.namespace == expected
        assert conn.client.identity is None
        await conn.aclose()


async def test_impersonation_only_when_asked_as_kubectl_does(tmp_path: Path) -> None:
    plain = _kubeconfig(tmp_path / "plain")
    acting = _kubeconfig(tmp_path / "acting", acting_as="bob")
    cases = [
        (plain, {"as_user": "alice"}, Identity("alice")),
        (plain, {"as_user": "bob", "as_groups": ["sre", "oncall"]}, Identity("bob", ("sre", "oncall"))),
        (acting, {}, Identity("bob", ("sre",))),  # the kubeconfig's as/as-groups
        (acting, {"as_user": "carol"}, Identity("carol")),  # --as wins, as in kubectl
    ]
    for config, flags, expected in cases:
        conn = _open(config, **flags)
        assert conn.client.identity == expected
        await conn.aclose()
    with pytest.raises(UsageError, match="--as-group needs --as"):
        _open(plain, as_groups=["sre"])


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"cannot load the kubeconfig {tmp_path / 'nowhere'}"):
        _open(tmp_path / "nowhere")


# ----- following a watch -----------------------------------------------------------------------------------


def _obj(uid: str, version: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": uid, "resourceVersion": version}}


class _WatchScript:
    """A client whose lists and watches follow a script: the second watch is refused 410 Gone (etcd
    compacted), so the connection lists again."""

    def __init__(self) -> None:
        self.lists = [
            {"metadata": {"resourceVersion": "10"}, "items": [_obj("a", "5"), _obj("b", "6")]},
            {
                "metadata": {"resourceVersion": "30"},
                "items": [_obj("a", "12"), _obj("b", "21"), _obj("c", "22")],
            },
        ]
        self.watches: list[list[dict[str, Any]] | KubeError] = [
            [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}},
                {"type": "MODIFIED", "object": _obj("a", "12")},
            ],
            KubeError(410, "Expired", "too old resource version: 12 (20)"),
            [{"type": "DELETED", "object": _obj("c", "31")}],
        ]
        self.watched_from: list[str] = []

    async def list(self, info: Any, namespace: str | None, *, field_selector: str | None) -> dict[str, Any]:
        assert field_selector == "metadata.name=a,involvedObject.kind=x"
        return self.lists.pop(0)

    async def watch(
        self, info: Any, namespace: str | None, *, resource_version: str, field_selector: str | None
    ) -> Any:
        self.watched_from.append(resource_version)
        script = self.watches.pop(0)
        if isinstance(script, KubeError):
            raise script
        for event in script:
            yield event


async def test_changes_resume_a_watch_and_after_a_410_yield_only_what_changed() -> None:
    script = _WatchScript()
    conn = Connection(client=script, namespace="shop")  # type: ignore[arg-type]
    seen: list[tuple[str, str, str]] = []
    changes = conn.changes(AGENT_TASKS, name="a", field_selector="involvedObject.kind=x")
    async for kind, obj in changes:
        seen.append((kind, obj["metadata"]["uid"], obj["metadata"]["resourceVersion"]))
        if kind == "DELETED":
            break
    await changes.aclose()
    # After the 410 the list shows a as already seen (12): only b's change and the new c are news.
    assert seen == [
        ("ADDED", "a", "5"),
        ("ADDED", "b", "6"),
        ("MODIFIED", "a", "12"),
        ("MODIFIED", "b", "21"),
        ("ADDED", "c", "22"),
        ("DELETED", "c", "31"),
    ]
    assert script.watched_from == ["10", "12", "30"]
