"""The Jenkins REST client logic against the Jenkins double (a real HTTP server on 127.0.0.1).

These call the plain operations with a client built from known credentials; the MCP tools, the Secret
lookup and identities are covered in tests/integration/test_tools_jenkins.py.
"""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from bosun_tools.client.jenkins import JenkinsClient, JenkinsCredentials, job_url_path
from bosun_tools.errors import ToolError
from bosun_tools.settings import JenkinsSettings
from bosun_tools.toolsets import jenkins

from tests.fakes.jenkins import FakeJenkins, Parameter

SETTINGS = JenkinsSettings("ci", "jenkins", timeout=5.0, queue_poll_interval=0.01, queue_max_polls=10)
DEPLOY = ["team", "deploy"]


@pytest.fixture
def fake() -> Iterator[FakeJenkins]:
    with FakeJenkins(queue_polls=2) as server:
        server.add_job(
            DEPLOY,
            description="Deploys the shop",
            parameters=[
                Parameter("ENV", "choice", choices=["staging", "prod"]),
                Parameter("VERSION", "string", default="latest"),
                Parameter("DRY_RUN", "boolean", default=False),
                Parameter("API_KEY", "password", default="hunter2"),
            ],
        )
        server.add_job(["lint"])
        yield server


def client_for(
    fake: FakeJenkins, settings: JenkinsSettings = SETTINGS, token: str | None = None
) -> JenkinsClient:
    return JenkinsClient(JenkinsCredentials(fake.url, fake.user, token or fake.token), settings)


@pytest.fixture
async def client(fake: FakeJenkins) -> AsyncIterator[JenkinsClient]:
    c = client_for(fake)
    yield c
    await c.aclose()


def assert_no_secrets(fake: FakeJenkins, text: str) -> None:
    host = fake.url.split("//", 1)[1].rstrip("/")
    assert fake.token not in text
    assert host not in text
    assert "hunter2" not in text


async def test_top_level_names_the_user_and_a_folder_lists_its_jobs(
    fake: FakeJenkins, client: JenkinsClient
) -> None:
    top = await jenkins.top_level(client)
    assert top.data == {"folder": [], "jobs": ["lint", "team"], "user": "bosun"}
    assert top.text.startswith("Jenkins user: bosun (")
    assert "folder" in top.text
    inner = await jenkins.get_job(client, ["team"])
    assert inner.data == {"folder": ["team"], "jobs": ["deploy"]}
    job = await jenkins.get_job(client, ["lint"])
    assert job.data["job"] == "lint"
    assert "Parameters:" in job.text


async def test_get_job_shows_parameter_definitions_without_secret_defaults(
    fake: FakeJenkins, client: JenkinsClient
) -> None:
    out = await jenkins.get_job(client, DEPLOY)
    assert out.data["parameters"] == ["ENV", "VERSION", "DRY_RUN", "API_KEY"]
    assert "choices: staging, prod" in out.text
    assert "Deploys the shop" in out.text
    assert_no_secrets(fake, out.text)


async def test_trigger_follows_queue_item_to_build_number(fake: FakeJenkins, client: JenkinsClient) -> None:
    out = await jenkins.trigger_build(
        client, SETTINGS, DEPLOY, {"ENV": "prod", "DRY_RUN": True, "VERSION": 7}, preview=False
    )
    assert out.data["number"] == 1
    assert out.data["parameters"]["API_KEY"] == "<redacted>"
    (sent,) = fake.triggered
    assert sent.endpoint == "buildWithParameters"
    assert sent.values == {"ENV": "prod", "DRY_RUN": "true", "VERSION": "7"}
    polls = [p for m, p in fake.requests if p.startswith("/queue/item/")]
    assert len(polls) == 3  # two waiting answers, then the left item with its executable
    build = await jenkins.get_build(client, DEPLOY, 1)
    assert build.data == {"job": "team/deploy", "number": 1, "result": None, "building": True}
    assert "ENV = prod" in build.text
    assert "API_KEY = <redacted>" in build.text


async def test_trigger_without_parameters_uses_build_endpoint(
    fake: FakeJenkins, client: JenkinsClient
) -> None:
    out = await jenkins.trigger_build(client, SETTINGS, ["lint"], {}, preview=False)
    assert out.data["number"] == 1
    assert fake.triggered[0].endpoint == "build"


async def test_preview_validates_and_sends_nothing(fake: FakeJenkins, client: JenkinsClient) -> None:
    out = await jenkins.trigger_build(client, SETTINGS, DEPLOY, {"ENV": "staging"}, preview=True)
    assert "Would trigger job team/deploy" in out.text
    assert "ENV = staging (given)" in out.text
    assert "VERSION = latest (default)" in out.text
    assert out.data["parameters"] == {
        "ENV": "staging",
        "VERSION": "latest",
        "DRY_RUN": False,
        "API_KEY": "<redacted>",
    }
    assert fake.triggered == []
    assert not any(method == "POST" for method, _ in fake.requests)


@pytest.mark.parametrize(
    ("job", "params", "message"),
    [
        (DEPLOY, {"ENVIRONMENT": "prod"}, "has no parameter ENVIRONMENT; its parameters are ENV, VERSION"),
        (DEPLOY, {"ENV": "qa"}, "must be one of staging, prod"),
        (DEPLOY, {"DRY_RUN": "maybe"}, "is a boolean"),
        (["lint"], {"X": "1"}, "takes no parameters"),
    ],
)
async def test_invalid_parameters_are_refused_before_sending(
    fake: FakeJenkins, client: JenkinsClient, job: list[str], params: dict[str, str], message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        await jenkins.trigger_build(client, SETTINGS, job, params, preview=False)
    assert fake.triggered == []


async def test_forbidden_build_and_missing_job(fake: FakeJenkins, client: JenkinsClient) -> None:
    fake.jobs[("lint",)].deny_build = True
    with pytest.raises(ToolError, match=r"^Forbidden: Jenkins refused triggering job lint \(HTTP 403\)"):
        await jenkins.trigger_build(client, SETTINGS, ["lint"], {}, preview=False)
    with pytest.raises(ToolError, match="job team/nope: not found in Jenkins"):
        await jenkins.get_job(client, ["team", "nope"])


async def test_cancelled_and_stuck_queue_items(fake: FakeJenkins) -> None:
    fake.queue_polls = 1000
    settings = JenkinsSettings("ci", "jenkins", queue_poll_interval=0.01, queue_max_polls=3)
    client = client_for(fake, settings)
    try:
        stuck = await jenkins.trigger_build(client, settings, ["lint"], {}, preview=False)
        assert stuck.data["number"] is None
        assert "still queued after 3 checks" in stuck.text
        assert "do not trigger it again" in stuck.text
        fake.cancel_waiting_items()
        with pytest.raises(ToolError, match="was cancelled in Jenkins"):
            await jenkins.trigger_build(client, settings, ["lint"], {}, preview=False)
    finally:
        await client.aclose()


async def test_csrf_crumb_is_required_by_the_double(fake: FakeJenkins) -> None:
    """The client passes only because it fetches the crumb; a bare POST is refused like Jenkins does."""
    async with httpx.AsyncClient(base_url=fake.url, auth=(fake.user, fake.token)) as raw:
        response = await raw.post("job/lint/build")
    assert response.status_code == 403
    assert "No valid crumb" in response.text
    assert fake.triggered == []


async def test_console_tail_forward_and_offsets(fake: FakeJenkins, client: JenkinsClient) -> None:
    lines = "".join(f"line {i:04d} ünïcode\n" for i in range(400))
    fake.add_build(["lint"], log=lines, result=None)
    total = len(fake.jobs[("lint",)].builds[1].log.encode())

    tail = await jenkins.console(client, ["lint"], None, None, 1024)
    assert tail.data["truncated"] is True
    assert tail.text.startswith("…[truncated ")
    assert tail.text.rstrip().endswith("line 0399 ünïcode")
    assert tail.data["next_start"] == total
    assert tail.data["more_data"] is True  # the build is still running

    head = await jenkins.console(client, ["lint"], 1, 0, 1024)
    assert head.text.startswith("line 0000 ünïcode")
    assert f"continue with start={head.data['next_start']}" in head.text
    assert head.data["next_start"] <= 1024
    rest = await jenkins.console(client, ["lint"], 1, head.data["next_start"], 65536)
    assert rest.data["truncated"] is False
    assert rest.data["next_start"] == total
    body = head.text.split("\n…[truncated")[0] + rest.text
    assert body == fake.jobs[("lint",)].builds[1].log

    with pytest.raises(ToolError, match=r"start=999999 is past the end"):
        await jenkins.console(client, ["lint"], 1, 999999, 1024)


async def test_changesets_last_builds_and_stop(fake: FakeJenkins, client: JenkinsClient) -> None:
    fake.add_build(
        ["lint"],
        changes=[
            {
                "commitId": "0123456789abcdef",
                "author": {"fullName": "Ada"},
                "msg": "fix lint",
                "timestamp": 1,
                "affectedPaths": ["src/a.py"],
            }
        ],
    )
    fake.add_build(["lint"], result="FAILURE")
    fake.add_build(["lint"], result=None)
    changes = await jenkins.changesets(client, ["lint"], 1)
    assert changes.data["commits"] == ["0123456789ab"]
    assert "Ada  fix lint" in changes.text
    assert "files: src/a.py" in changes.text

    recent = await jenkins.last_builds(client, ["lint"], 2)
    assert [b["number"] for b in recent.data["builds"]] == [3, 2]
    assert "BUILDING" in recent.text

    preview = await jenkins.stop_build(client, ["lint"], 3, preview=True)
    assert "Would stop" in preview.text
    assert fake.jobs[("lint",)].builds[3].building
    stopped = await jenkins.stop_build(client, ["lint"], 3, preview=False)
    assert stopped.data["stop_requested"] is True
    assert fake.jobs[("lint",)].builds[3].result == "ABORTED"
    again = await jenkins.stop_build(client, ["lint"], 3, preview=False)
    assert "is not running" in again.text


async def test_wrong_token_names_the_secret_not_the_values(fake: FakeJenkins) -> None:
    client = client_for(fake, token="wrong-token-value")
    try:
        with pytest.raises(ToolError) as info:
            await jenkins.top_level(client)
    finally:
        await client.aclose()
    message = str(info.value)
    assert "rejected the credentials from Secret ci/jenkins (HTTP 401)" in message
    assert "wrong-token-value" not in message
    assert fake.url.split("//")[1].rstrip("/") not in message


async def test_timeout_and_unreachable(fake: FakeJenkins) -> None:
    settings = JenkinsSettings("ci", "jenkins", timeout=0.3)
    client = client_for(fake, settings)
    fake.hold_requests()
    try:
        with pytest.raises(
            ToolError, match=r"Jenkins did not answer within 0.3s for the current Jenkins user"
        ):
            await jenkins.top_level(client)
    finally:
        fake.release_requests()
        await client.aclose()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = JenkinsClient(JenkinsCredentials(f"http://127.0.0.1:{port}/", "u", "t"), SETTINGS)
    try:
        with pytest.raises(ToolError) as info:
            await jenkins.top_level(closed)
    finally:
        await closed.aclose()
    assert "Jenkins is unreachable (ConnectError)" in str(info.value)
    assert str(port) not in str(info.value)


async def test_requests_to_jenkins_are_not_logged(
    fake: FakeJenkins, client: JenkinsClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    await jenkins.top_level(client)
    host = fake.url.split("//")[1].rstrip("/")
    assert not [r for r in caplog.records if host in r.getMessage()]

    def passes(url: str) -> bool:
        record = logging.LogRecord(
            "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("GET", httpx.URL(url)), None
        )
        return logging.getLogger("httpx").filter(record)

    assert not passes(f"{fake.url}me/api/json")
    assert passes("https://kubernetes.default.svc/api")


def test_job_paths_are_quoted_segments() -> None:
    assert job_url_path(["team", "deploy app"]) == "job/team/job/deploy%20app/"
    credentials = JenkinsCredentials("https://ci.example/", "u", base64.b64encode(b"x").decode())
    assert "ci.example" not in repr(credentials)
