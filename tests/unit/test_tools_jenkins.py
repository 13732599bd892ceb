"""The Jenkins REST client logic against the Jenkins double (a real HTTP server on 127.0.0.1).

These call the plain operations with a client built from known credentials; the MCP tools, the Secret
lookup and identities are covered in tests/integration/test_tools_jenkins.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
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
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(fake.user, fake.token)}
        ) as raw,
        raw.post(f"{fake.url}job/lint/build") as response,
    ):
        status, text = response.status, await response.text()
    assert status == 403
    assert "No valid crumb" in text
    assert fake.triggered == []


@asynccontextmanager
async def jenkins_like(
    app: web.Application, settings: JenkinsSettings = SETTINGS
) -> AsyncIterator[JenkinsClient]:
    """A client of ``app`` served on 127.0.0.1, for the behaviours of Jenkins the double does not imitate."""
    async with TestServer(app, host="127.0.0.1") as server:
        client = JenkinsClient(JenkinsCredentials(str(server.make_url("/")), "bosun", "token"), settings)
        try:
            yield client
        finally:
            await client.aclose()


async def test_the_crumb_is_fetched_once_and_sent_with_the_session_cookie_it_was_issued_for() -> None:
    """Jenkins accepts a crumb only with the session cookie of the request that fetched it (the double
    checks no cookie). Served from an IP address, as Jenkins may be: aiohttp's default cookie jar would
    drop the cookie."""
    issued: dict[str, str] = {}

    async def crumb_issuer(request: web.Request) -> web.Response:
        session = f"node0{len(issued)}"
        issued[session] = f"crumb-for-{session}"
        response = web.json_response({"crumb": issued[session], "crumbRequestField": "Jenkins-Crumb"})
        response.set_cookie("JSESSIONID.5f1a", session, path="/", httponly=True)
        return response

    async def build(request: web.Request) -> web.Response:
        session = request.cookies.get("JSESSIONID.5f1a", "")
        if request.headers.get("Jenkins-Crumb") != issued.get(session):
            return web.Response(status=403, text="No valid crumb was included in the request")
        return web.Response(status=201, headers={"Location": f"{request.url.origin()}/queue/item/7/"})

    app = web.Application()
    app.router.add_get("/crumbIssuer/api/json", crumb_issuer)
    app.router.add_post("/job/lint/build", build)
    async with jenkins_like(app) as client:
        first = await client.post("job/lint/build", "triggering job lint")
        second = await client.post("job/lint/build", "triggering job lint")
    assert first.status == second.status == 201
    assert first.headers["location"].endswith("/queue/item/7/")  # header names match in any case
    assert list(issued) == ["node00"]


LIVE_LINES = 20


async def test_a_console_still_arriving_outlasts_the_timeout_but_a_silent_one_does_not() -> None:
    """The timeout bounds each wait for Jenkins, not the whole read: a long log that keeps coming is read
    to its end, and one that stops coming for longer than the timeout is given up."""

    async def progressive_text(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        if request.match_info["job"] == "silent":
            await response.write(b"step 0\n")
            await asyncio.Event().wait()  # never set: nothing more until the client gives up
        for step in range(LIVE_LINES):
            await response.write(f"step {step}\n".encode())
            # The scenario itself, not a wait for anything: a log still being written, each line 50 ms
            # after the one before (a tenth of the client's timeout), a second in all (twice the timeout).
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/job/{job}/lastBuild/logText/progressiveText", progressive_text)
    settings = JenkinsSettings("ci", "jenkins", timeout=0.5)
    async with jenkins_like(app, settings) as client:
        live = await jenkins.console(client, ["live"], None, 0, 1024)
        assert live.text == "".join(f"step {step}\n" for step in range(LIVE_LINES))
        with pytest.raises(ToolError, match=r"^Jenkins did not answer within 0.5s for the console of build"):
            await jenkins.console(client, ["silent"], None, 0, 1024)


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
    assert "Jenkins is unreachable (ClientConnectorError)" in str(info.value)
    assert str(port) not in str(info.value)


async def test_jenkins_is_reached_through_the_proxy_the_environment_names(
    fake: FakeJenkins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy variables and no_proxy decide, as they did for httpx. The double stands in for the proxy
    (it answers a request for an absolute URL by its path), so a Jenkins whose name resolves nowhere is
    reached through it, and not at all once no_proxy names it."""
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    monkeypatch.setenv("http_proxy", fake.url)
    credentials = JenkinsCredentials("http://jenkins.invalid/", fake.user, fake.token)
    proxied = JenkinsClient(credentials, SETTINGS)
    try:
        assert (await jenkins.top_level(proxied)).data["user"] == "bosun"
    finally:
        await proxied.aclose()
    assert fake.requests[-1] == ("GET", "/api/json")

    monkeypatch.setenv("no_proxy", "jenkins.invalid")
    direct = JenkinsClient(credentials, SETTINGS)
    try:
        with pytest.raises(ToolError, match=r"^Jenkins is unreachable \(ClientConnector"):
            await jenkins.top_level(direct)
    finally:
        await direct.aclose()


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger makes while a test runs: every logger is opened to DEBUG, and watched
    where its records end (the root, or the logger itself when it does not propagate)."""
    records: list[logging.LogRecord] = []
    handler = _Keep(records)
    root = logging.getLogger()
    loggers = [
        root,
        *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    levels = [(logger, logger.level) for logger in loggers]
    watched = [logger for logger in loggers if logger is root or not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for logger in watched:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in watched:
            logger.removeHandler(handler)
        for logger, level in levels:
            logger.setLevel(level)


async def test_no_log_record_names_jenkins(
    fake: FakeJenkins, client: JenkinsClient, every_log_record: list[logging.LogRecord]
) -> None:
    """The URL is a Secret value: no logger, at any level, names the Jenkins host, whether Jenkins
    answers, refuses or cannot be reached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_host = f"127.0.0.1:{sock.getsockname()[1]}"
    fake.add_build(["lint"], log="compiling\n")
    await jenkins.top_level(client)
    await jenkins.console(client, ["lint"], 1, None, 1024)
    await jenkins.trigger_build(client, SETTINGS, ["lint"], {}, preview=False)
    with pytest.raises(ToolError, match="not found in Jenkins"):
        await jenkins.get_job(client, ["team", "nope"])
    rejected = client_for(fake, token="wrong-token-value")
    unreachable = JenkinsClient(JenkinsCredentials(f"http://{closed_host}/", "u", "t"), SETTINGS)
    try:
        with pytest.raises(ToolError, match=r"HTTP 401"):
            await jenkins.top_level(rejected)
        with pytest.raises(ToolError, match=r"Jenkins is unreachable"):
            await jenkins.top_level(unreachable)
    finally:
        await rejected.aclose()
        await unreachable.aclose()
    logging.getLogger("aiohttp.client").debug("this capture sees aiohttp's debug lines")

    lines = [logging.Formatter().format(record) for record in every_log_record]
    assert "this capture sees aiohttp's debug lines" in lines
    fake_host = fake.url.split("//")[1].rstrip("/")
    assert [line for line in lines if fake_host in line or closed_host in line] == []


async def test_job_names_cannot_add_a_path_a_query_or_an_endpoint(
    fake: FakeJenkins, client: JenkinsClient
) -> None:
    """A job name reaches Jenkins as one quoted segment, ``%2F`` and all; the names no Jenkins item can
    have, which a server would resolve to another path, are refused before anything is sent."""
    odd = ["team", "release/2.0?tree=jobs#top..x"]
    fake.add_job(odd)
    fake.add_build(odd, log="built\n")
    quoted = "/job/team/job/release%2F2.0%3Ftree%3Djobs%23top..x/"
    job = await jenkins.get_job(client, odd)
    assert job.data["job"] == "team/release/2.0?tree=jobs#top..x"
    log = await jenkins.console(client, odd, 1, 0, 1024)
    assert log.text == "built\nFinished: SUCCESS\n"
    assert fake.requests[-2:] == [("GET", f"{quoted}api/json"), ("GET", f"{quoted}1/logText/progressiveText")]

    sent = len(fake.requests)
    for segments in (["team", ".."], ["..", "api"], ["."], ["team", ""]):
        with pytest.raises(ToolError, match="is not a Jenkins job name"):
            await jenkins.get_job(client, segments)
    assert len(fake.requests) == sent


def test_job_paths_are_quoted_segments() -> None:
    assert job_url_path(["team", "deploy app"]) == "job/team/job/deploy%20app/"
    credentials = JenkinsCredentials("https://ci.example/", "u", base64.b64encode(b"x").decode())
    assert "ci.example" not in repr(credentials)
