"""Jenkins tools through the MCP server, with credentials in a real Kubernetes Secret and the Jenkins double.

The Secret is read with the server's own identity: the impersonated requester needs no right on it, and
neither its values nor the Jenkins URL ever show up in what a tool returns, successful or not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bosun_tools.client.jenkins import job_label
from bosun_tools.sealing import TaskRef
from bosun_tools.secrets import Placeholder
from bosun_tools.server import build_server
from bosun_tools.settings import JenkinsSettings, ToolSettings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from tests.conftest import ClusterAccess, Kubectl
from tests.fakes.jenkins import FakeJenkins, Parameter
from tests.integration.test_sealing import agenttask_kind, call_for, task
from tests.tools_support import call, mcp
from tests.waiting import eventually

pytestmark = pytest.mark.cluster
__all__ = ["agenttask_kind", "mcp", "task"]  # shared fixtures (the client uses this module's server)

DEPLOY = ["team", "deploy"]


@pytest.fixture(scope="module")
def jenkins() -> Iterator[FakeJenkins]:
    with FakeJenkins(token="jenkins-api-token-0123456789") as fake:
        fake.add_job(
            DEPLOY,
            parameters=[
                Parameter("ENV", "choice", choices=["staging", "prod"]),
                Parameter("VERSION", default="1"),
            ],
        )
        fake.add_job(["nightly"])
        yield fake


def jenkins_role(name: str, user: str, *rules: tuple[str, list[str]], kind: str = "User") -> str:
    """A Role (on the virtual resource ``jenkinsjobs.bosun.dev``) and its RoleBinding, as an
    administrator writes them; each rule is (verb, job paths), no paths meaning every job."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": ["bosun.dev"], "resources": ["jenkinsjobs"], "verbs": [verb]}
            | ({"resourceNames": jobs} if jobs else {})
            for verb, jobs in rules
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": user}],
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})


def wait_until_allowed(
    kubectl: Kubectl, namespace: str, verb: str, job: str | None, user: str, groups: tuple[str, ...] = ()
) -> None:
    """RBAC changes reach the API server's authorizer through an informer: wait until the review the
    Jenkins tools ask answers yes."""
    attributes = {"group": "bosun.dev", "resource": "jenkinsjobs", "verb": verb, "namespace": namespace}
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": list(groups),
            "resourceAttributes": attributes | ({"name": job} if job else {}),
        },
    }
    answer = ["create", "-f", "-", "-o", "jsonpath={.status.allowed}"]
    eventually(
        f"{user} to be allowed to {verb} jenkinsjobs.bosun.dev {job or '(all jobs)'}",
        lambda: kubectl(*answer, input=json.dumps(review)).stdout == "true",
    )


@pytest.fixture(scope="module")
def secret_namespace(kubectl: Kubectl, jenkins: FakeJenkins) -> Iterator[str]:
    """Where the administrator keeps the Jenkins Secret (plus one with a wrong token), and the Role that
    lets alice read every job and trigger and stop team/deploy."""
    name = f"ci-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    rules = [("get", []), ("create", [job_label(DEPLOY)]), ("delete", [job_label(DEPLOY)])]
    kubectl("apply", "-n", name, "-f", "-", input=jenkins_role("jenkins-alice", "alice", *rules))
    wait_until_allowed(kubectl, name, "get", None, "alice")
    for secret, token in (("jenkins", jenkins.token), ("jenkins-stale", "stale-token-value")):
        data = {"url": jenkins.url, "user": jenkins.user, "token": token}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        kubectl("apply", "-n", name, "-f", "-", input=json.dumps(body))
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def settings(cluster: ClusterAccess, jenkins: JenkinsSettings | None) -> ToolSettings:
    return ToolSettings(kubeconfig=str(cluster.kubeconfig), toolsets=("jenkins",), jenkins=jenkins)


@pytest.fixture(scope="module")
def server(cluster: ClusterAccess, secret_namespace: str) -> FastMCP:
    return build_server(
        settings(cluster, JenkinsSettings(secret_namespace, "jenkins", queue_poll_interval=0.01))
    )


def assert_no_secret_values(jenkins: FakeJenkins, text: str) -> None:
    assert jenkins.token not in text
    assert "stale-token-value" not in text
    assert jenkins.url.split("//")[1].rstrip("/") not in text


async def test_read_tools_through_the_server(mcp: Client[Any], jenkins: FakeJenkins) -> None:
    jenkins.add_build(["nightly"], log="compiling\n" * 50 + "BUILD SUCCESSFUL\n", result="SUCCESS")
    nightly = ["nightly"]
    outputs = [
        await call(mcp, "jenkins_get", {}, user="alice"),
        await call(mcp, "jenkins_get", {"job": ["team"]}, user="alice"),
        await call(mcp, "jenkins_get", {"job": DEPLOY}, user="alice"),
        await call(mcp, "jenkins_get", {"job": nightly, "show": "build"}, user="alice"),
        await call(mcp, "jenkins_get", {"job": nightly, "show": "builds", "limit": 5}, user="alice"),
        await call(mcp, "jenkins_get", {"job": nightly, "show": "console", "number": 1}, user="alice"),
        await call(mcp, "jenkins_get", {"job": nightly, "show": "changes", "number": 1}, user="alice"),
    ]
    top, team, job, build, last, log, changes = outputs
    assert top["data"]["user"] == "bosun"
    assert top["text"].startswith("Jenkins user: bosun (")
    assert top["data"]["jobs"] == ["nightly", "team"]
    assert team["data"]["jobs"] == ["deploy"]
    assert job["data"]["parameters"] == ["ENV", "VERSION"]
    assert build["data"] == {"job": "nightly", "number": 1, "result": "SUCCESS", "building": False}
    assert last["data"]["builds"][0]["number"] == 1
    assert log["text"].endswith("BUILD SUCCESSFUL\nFinished: SUCCESS\n")
    assert "has no changes" in changes["text"]
    for out in outputs:
        assert_no_secret_values(jenkins, json.dumps(out))


async def test_trigger_preview_execute_console_and_stop(mcp: Client[Any], jenkins: FakeJenkins) -> None:
    args = {"job": DEPLOY, "parameters": {"ENV": "prod"}}
    preview = await call(mcp, "jenkins_trigger_build", args, preview=True, user="alice")
    assert preview["data"] == {"job": "team/deploy", "parameters": {"ENV": "prod", "VERSION": "1"}}
    assert [t for t in jenkins.triggered if t.job == tuple(DEPLOY)] == []

    started = await call(mcp, "jenkins_trigger_build", args, user="alice")
    number = started["data"]["number"]
    assert (
        started["text"]
        == f"Triggered job team/deploy: build #{number} started (queue item {started['data']['queue_item']})."
    )
    assert jenkins.triggered[-1].values == {"ENV": "prod"}

    jenkins.append_log(DEPLOY, number, "".join(f"step {i}\n" for i in range(5000)))
    console = {"job": DEPLOY, "show": "console", "number": number}
    tail = await call(mcp, "jenkins_get", console, user="alice")
    assert tail["truncated"] is True
    assert tail["text"].startswith("…[truncated ")
    assert tail["text"].endswith("step 4999\n")
    assert tail["data"]["more_data"] is True
    head = await call(mcp, "jenkins_get", {**console, "start": 0}, user="alice")
    assert f"continue with start={head['data']['next_start']}]" in head["text"]
    assert "step 4999" not in head["text"]

    stop_preview = await call(
        mcp, "jenkins_stop_build", {"job": DEPLOY, "number": number}, preview=True, user="alice"
    )
    assert "Would stop the running build" in stop_preview["text"]
    assert jenkins.jobs[tuple(DEPLOY)].builds[number].building
    await call(mcp, "jenkins_stop_build", {"job": DEPLOY, "number": number}, user="alice")
    assert jenkins.jobs[tuple(DEPLOY)].builds[number].result == "ABORTED"


async def test_invalid_arguments_are_refused_before_any_request(
    mcp: Client[Any], jenkins: FakeJenkins
) -> None:
    before = len(jenkins.requests)
    for job in (["team/deploy"], ["..", "x"], ["a?b=c"], [], ["x"] * 11, [" lead"]):
        with pytest.raises(ToolError, match="validation error"):
            await call(mcp, "jenkins_get", {"job": job}, user="alice")
    with pytest.raises(ToolError, match="validation error"):
        await call(
            mcp, "jenkins_trigger_build", {"job": DEPLOY, "parameters": {"ENV=prod&X": "1"}}, user="alice"
        )
    with pytest.raises(ToolError, match="validation error"):
        await call(mcp, "jenkins_get", {"job": DEPLOY, "show": "console", "number": 0}, user="alice")
    with pytest.raises(ToolError, match="start is a byte offset into a console log"):
        await call(mcp, "jenkins_get", {"job": DEPLOY, "show": "build", "start": 0}, user="alice")
    with pytest.raises(ToolError, match="number picks a build"):
        await call(mcp, "jenkins_get", {"job": DEPLOY, "number": 3}, user="alice")
    with pytest.raises(ToolError, match="show=builds and number need a job"):
        await call(mcp, "jenkins_get", {"show": "builds"}, user="alice")
    assert len(jenkins.requests) == before
    with pytest.raises(ToolError, match="must be one of staging, prod"):
        await call(mcp, "jenkins_trigger_build", {"job": DEPLOY, "parameters": {"ENV": "dev"}}, user="alice")
    with pytest.raises(ToolError, match="job team/missing: not found in Jenkins"):
        await call(mcp, "jenkins_get", {"job": ["team", "missing"]}, user="alice")


async def test_configuration_errors_name_the_secret_never_its_values(
    cluster: ClusterAccess, secret_namespace: str, jenkins: FakeJenkins
) -> None:
    cases = [
        (None, "Jenkins is not configured on this tool server"),
        (JenkinsSettings(secret_namespace, "absent"), f"Secret {secret_namespace}/absent was not found"),
        (
            JenkinsSettings(secret_namespace, "jenkins-stale"),
            f"credentials from Secret {secret_namespace}/jenkins-stale",
        ),
    ]
    for jenkins_settings, message in cases:
        async with Client(build_server(settings(cluster, jenkins_settings))) as client:
            with pytest.raises(ToolError) as info:
                await call(client, "jenkins_get", {}, user="alice")
        assert message in str(info.value)
        assert_no_secret_values(jenkins, str(info.value))


async def test_jenkins_rights_follow_the_requesters_kubernetes_rbac_per_job(
    mcp: Client[Any], kubectl: Kubectl, jenkins: FakeJenkins, secret_namespace: str
) -> None:
    """Jenkins runs everything as its configured account; what a requester may do there is bounded by
    RBAC on jenkinsjobs.bosun.dev, checked before Jenkins (or its Secret) is touched."""
    nightly = {"job": ["nightly"]}
    before = len(jenkins.requests)
    refusal = (
        r'Forbidden: alice may not create jenkinsjobs\.bosun\.dev "nightly" to trigger a build; .* the rule '
        r'\{apiGroups: \["bosun\.dev"\], resources: \["jenkinsjobs"\], resourceNames: \["nightly"\], '
        rf'verbs: \["create"\]\}} in a Role in namespace {secret_namespace} \(or a ClusterRole\)'
    )
    with pytest.raises(ToolError, match=refusal):
        await call(mcp, "jenkins_trigger_build", nightly, user="alice", preview=True)
    with pytest.raises(ToolError, match=refusal):
        await call(mcp, "jenkins_trigger_build", nightly, user="alice")
    with pytest.raises(ToolError, match=r'alice may not delete jenkinsjobs\.bosun\.dev "nightly" to stop'):
        await call(mcp, "jenkins_stop_build", {**nightly, "number": 1}, user="alice", preview=True)
    with pytest.raises(ToolError, match=r'Forbidden: carol may not get jenkinsjobs\.bosun\.dev "nightly"'):
        await call(mcp, "jenkins_get", {**nightly, "show": "build"}, user="carol")
    everything = r"Forbidden: bob \(groups sre\) may not get jenkinsjobs\.bosun\.dev \(all jobs\)"
    with pytest.raises(ToolError, match=everything):
        await call(mcp, "jenkins_get", {}, user="bob", groups=("sre",))
    assert len(jenkins.requests) == before

    # Rights granted to a group count when the requester's groups travel in the review.
    kubectl(
        "apply",
        "-n",
        secret_namespace,
        "-f",
        "-",
        input=jenkins_role("sre-read", "sre", ("get", []), kind="Group"),
    )
    wait_until_allowed(kubectl, secret_namespace, "get", None, "bob", ("sre",))
    listed = await call(mcp, "jenkins_get", {}, user="bob", groups=("sre",))
    assert listed["data"]["jobs"] == ["nightly", "team"]
    with pytest.raises(ToolError, match=r"Forbidden: bob may not get"):
        await call(mcp, "jenkins_get", {}, user="bob")

    grant = jenkins_role("trigger-nightly", "alice", ("create", ["nightly"]))
    kubectl("apply", "-n", secret_namespace, "-f", "-", input=grant)
    wait_until_allowed(kubectl, secret_namespace, "create", "nightly", "alice")
    preview = await call(mcp, "jenkins_trigger_build", nightly, user="alice", preview=True)
    assert preview["data"] == {"job": "nightly", "parameters": {}}
    started = await call(mcp, "jenkins_trigger_build", nightly, user="alice")
    assert isinstance(started["data"]["number"], int)
    assert jenkins.triggered[-1].job == ("nightly",)
    # A right on one job is not a right on another.
    with pytest.raises(ToolError, match=r'alice may not delete jenkinsjobs\.bosun\.dev "nightly"'):
        await call(mcp, "jenkins_stop_build", {**nightly, "number": started["data"]["number"]}, user="alice")


async def test_a_server_that_may_not_review_access_refuses_with_what_to_grant(
    cluster: ClusterAccess, secret_namespace: str, jenkins: FakeJenkins
) -> None:
    """Run as carol, the tool server cannot create SubjectAccessReviews: no Jenkins call may pass
    unchecked, and the message names the missing right."""
    unprivileged = ToolSettings(
        kubeconfig=str(cluster.user_kubeconfig("carol")),
        toolsets=("jenkins",),
        jenkins=JenkinsSettings(secret_namespace, "jenkins"),
    )
    before = len(jenkins.requests)
    async with Client(build_server(unprivileged)) as client:
        with pytest.raises(ToolError, match=r"may not create subjectaccessreviews\.authorization\.k8s\.io"):
            await call(client, "jenkins_get", {"job": DEPLOY}, user="alice")
    assert len(jenkins.requests) == before


async def test_a_password_parameter_is_sealed_whatever_its_name_and_runs_with_its_value(
    mcp: Client[Any], kubectl: Kubectl, jenkins: FakeJenkins, secret_namespace: str, task: TaskRef
) -> None:
    """Only Jenkins knows that DB_ACCESS is a password parameter: the tool marks it while previewing, so it
    is sealed (into a holding Secret of the task) like any other secret value."""
    migrate = ["team", "migrate"]
    parameters = [Parameter("DB_ACCESS", "password"), Parameter("STEP", default="all")]
    jenkins.add_job(migrate, parameters=parameters)
    role = jenkins_role("migrate-alice", "alice", ("create", [job_label(migrate)]))
    kubectl("apply", "-n", secret_namespace, "-f", "-", input=role)
    wait_until_allowed(kubectl, secret_namespace, "create", job_label(migrate), "alice")
    value = "db-access-Pa55phrase"
    args = {"job": migrate, "parameters": {"DB_ACCESS": value, "STEP": "schema"}}

    preview = await call_for(mcp, "jenkins_trigger_build", args, task, preview=True)
    assert value not in json.dumps(preview)
    sealed = preview["sealed_args"]
    assert sealed["parameters"]["STEP"] == "schema"
    placeholder = Placeholder.parse(sealed["parameters"]["DB_ACCESS"])
    assert placeholder is not None
    assert placeholder.digest == hashlib.sha256(value.encode()).hexdigest()

    started = await call_for(mcp, "jenkins_trigger_build", sealed, None)
    assert value not in json.dumps(started)
    assert jenkins.triggered[-1].job == tuple(migrate)
    assert jenkins.triggered[-1].values == {"DB_ACCESS": value, "STEP": "schema"}
