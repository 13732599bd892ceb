"""Every kind of Kubernetes credential reaches the wire through ``bosun_tools.client.kube.Credentials``.

A real HTTP(S) server on 127.0.0.1 stands in for the API server: it records the ``Authorization`` header
(and the client certificate) of every request and answers 401 to the header values a test marks as
rejected, so refresh-before-expiry and refresh-after-401 are observed from outside the client. The same
kinds against the real API server are in tests/integration/test_credentials.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import localcluster
import pytest
import yaml
from bosun_tools.client import kube
from bosun_tools.client.exec import exec_in_pod
from bosun_tools.client.kube import Credentials, KubeClient, KubeError
from bosun_tools.identity import Identity
from kubernetes import client as k8s_client
from kubernetes.config.kube_config import EXPIRY_SKEW_PREVENTION_DELAY

from tests.waiting import eventually_async

REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@dataclass
class FakeApiServer:
    """What the stand-in API server saw, and which ``Authorization`` values it refuses."""

    url: str
    seen: list[dict[str, str | None]] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)

    def authorizations(self) -> list[str | None]:
        return [request["authorization"] for request in self.seen]


@contextlib.contextmanager
def fake_api_server(tls: ssl.SSLContext | None = None) -> Iterator[FakeApiServer]:
    fake = FakeApiServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            authorization = self.headers.get("Authorization")
            client = None
            if isinstance(self.connection, ssl.SSLSocket):
                cert: Any = self.connection.getpeercert() or {}
                names = [
                    value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"
                ]
                client = names[0] if names else None
            fake.seen.append(
                {
                    "authorization": authorization,
                    "impersonate": self.headers.get("Impersonate-User"),
                    "client": client,
                }
            )
            if authorization in fake.rejected:
                status: HTTPStatus = HTTPStatus.UNAUTHORIZED
                body: dict[str, Any] = {
                    "kind": "Status",
                    "reason": "Unauthorized",
                    "message": "token rejected",
                }
            else:
                status, body = HTTPStatus.OK, {"kind": "SelfSubjectReview", "status": {}}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    fake.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local cluster's PKI: a CA, a serving certificate for 127.0.0.1 and a client cert for alice."""
    path = tmp_path_factory.mktemp("pki")
    localcluster.make_pki(path)
    return path


def serving_tls(pki: Path, *, client_ca: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.crt")
    return ctx


def write_kubeconfig(
    path: Path, server: str, user: dict[str, Any], cluster: dict[str, Any] | None = None
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def who(client: KubeClient) -> None:
    await client.request(
        "POST", REVIEW, json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )


async def test_client_certificate_is_presented_without_any_token(pki: Path, tmp_path: Path) -> None:
    with fake_api_server(serving_tls(pki, client_ca=True)) as api:
        user = {"client-certificate": str(pki / "alice.crt"), "client-key": str(pki / "alice.key")}
        config = write_kubeconfig(
            tmp_path / "kubeconfig", api.url, user, {"certificate-authority": str(pki / "ca.crt")}
        )
        client = KubeClient.from_kubeconfig(config)
        try:
            await who(client)
            await who(client.impersonating(Identity("bob")))
        finally:
            await client.aclose()
    assert api.seen == [
        {"authorization": None, "impersonate": None, "client": "alice"},
        {"authorization": None, "impersonate": "bob", "client": "alice"},
    ]


async def test_static_token_goes_to_the_client_and_every_impersonating_view(tmp_path: Path) -> None:
    with fake_api_server() as api:
        client = KubeClient.from_kubeconfig(
            write_kubeconfig(tmp_path / "kubeconfig", api.url, {"token": "static-1"})
        )
        try:
            await who(client)
            await who(client.impersonating(Identity("bob", ("sre",))))
            # A refused static token is not retried: loading the kubeconfig again gives the same token.
            api.rejected.add("Bearer static-1")
            with pytest.raises(KubeError) as refused:
                await who(client)
        finally:
            await client.aclose()
    assert refused.value.status == 401
    assert api.authorizations() == ["Bearer static-1"] * 3
    assert [request["impersonate"] for request in api.seen] == [None, "bob", None]


async def test_a_hand_built_configuration_sends_its_authorization_key() -> None:
    with fake_api_server() as api:
        cfg = k8s_client.Configuration(host=api.url, api_key={"authorization": "Bearer by-hand"})
        client = KubeClient.from_configuration(cfg)
        try:
            await who(client)
        finally:
            await client.aclose()
    assert api.authorizations() == ["Bearer by-hand"]


async def test_a_burst_of_requests_asks_the_refresh_hooks_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request asking the hooks meant a hop to a worker thread, which cost more CPU than the request;
    a header is reused for ``HEADER_REUSE_SECONDS`` (a token refused meanwhile reloads at once: above)."""
    monkeypatch.setattr(kube, "HEADER_REUSE_SECONDS", 3600.0)
    asked: list[int] = []
    with fake_api_server() as api:
        cfg = k8s_client.Configuration(host=api.url, api_key={"authorization": "Bearer hooked"})
        cfg.refresh_api_key_hook = lambda _: asked.append(1)
        client = KubeClient.from_configuration(cfg)
        try:
            for _ in range(20):
                await who(client)
            await who(client.impersonating(Identity("alice", ())))
        finally:
            await client.aclose()
    assert api.authorizations() == ["Bearer hooked"] * 21
    assert len(asked) == 1


async def test_token_file_is_reread_on_its_period_and_after_a_401(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("file-1\n")  # the newline `kubectl create token > file` leaves is not sent
    with fake_api_server() as api:
        config = str(write_kubeconfig(tmp_path / "kubeconfig", api.url, {"tokenFile": str(token)}))
        every_request = KubeClient.from_credentials(Credentials.from_kubeconfig(config, token_file_period=0))
        hourly = KubeClient.from_credentials(Credentials.from_kubeconfig(config, token_file_period=3600))
        try:
            token.write_text("file-2\n")
            await who(every_request)
            await who(hourly)
            assert api.authorizations() == ["Bearer file-2", "Bearer file-1"]

            # Within its period the file is not read again, until the server refuses the old token.
            api.seen.clear()
            api.rejected.add("Bearer file-1")
            await who(hourly)
            await who(hourly)
        finally:
            await every_request.aclose()
            await hourly.aclose()
    assert api.authorizations() == ["Bearer file-1", "Bearer file-2", "Bearer file-2"]


async def test_in_cluster_service_account_token_is_reread_when_rotated(pki: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("sa-1")
    with fake_api_server(serving_tls(pki, client_ca=False)) as api:
        port = api.url.rsplit(":", 1)[1]
        credentials = Credentials.in_cluster(
            token_file=str(token),
            ca_file=str(pki / "ca.crt"),
            environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
        )
        client = KubeClient.from_credentials(credentials)
        try:
            await who(client)
            # The kubelet rotated the projected token and the server no longer accepts the old one.
            token.write_text("sa-2")
            api.rejected.add("bearer sa-1")
            await who(client)
            assert api.authorizations() == ["bearer sa-1", "bearer sa-1", "bearer sa-2"]

            token.write_text("")
            api.rejected.add("bearer sa-2")
            with pytest.raises(KubeError, match=r"cannot obtain credentials .*Token file exists but empty.*"):
                await who(client)
        finally:
            await client.aclose()


EXEC_PLUGIN = """
import datetime, json, pathlib, sys

runs_file, lifetime = pathlib.Path(sys.argv[1]), float(sys.argv[2])
runs = int(runs_file.read_text()) + 1 if runs_file.exists() else 1
runs_file.write_text(str(runs))
expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=lifetime)
status = {"token": f"exec-{runs}", "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}
print(json.dumps(credential))
"""


def exec_user(tmp_path: Path, lifetime: float) -> tuple[dict[str, Any], Path]:
    """A kubeconfig user whose exec plugin hands out ``exec-<n>`` tokens valid ``lifetime`` seconds; the
    returned file counts the plugin's runs."""
    script, runs = tmp_path / "plugin.py", tmp_path / "runs"
    script.write_text(EXEC_PLUGIN)
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(script), str(runs), str(lifetime)],
        "interactiveMode": "Never",
    }
    return {"exec": plugin}, runs


async def test_exec_plugin_runs_again_when_its_token_expires_and_after_a_401(tmp_path: Path) -> None:
    # The library renews EXPIRY_SKEW_PREVENTION_DELAY before the expiry; this token has 3s beyond that.
    user, runs = exec_user(tmp_path, EXPIRY_SKEW_PREVENTION_DELAY.total_seconds() + 3)
    with fake_api_server() as api:
        client = KubeClient.from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig", api.url, user))
        try:
            await who(client)
            await who(client.impersonating(Identity("bob")))
            assert api.authorizations() == ["Bearer exec-1", "Bearer exec-1"]
            assert runs.read_text() == "1"

            async def renewed() -> bool:
                await who(client)
                return api.authorizations()[-1] == "Bearer exec-2"

            await eventually_async("the exec plugin to run again as its token expires", renewed, within=30)
            assert runs.read_text() == "2"

            # Revoked before it expired: one 401, the plugin runs once more, the request is retried.
            api.seen.clear()
            api.rejected.add("Bearer exec-2")
            await who(client)
        finally:
            await client.aclose()
    assert api.authorizations() == ["Bearer exec-2", "Bearer exec-3"]
    assert runs.read_text() == "3"


def unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    # The library drops a JWT whose payload length leaves 3 padding characters (RFC 7515 forbids them).
    pad = ""
    while len(part({**claims, "pad": pad})) % 4 == 1:
        pad += "x"
    return f"{part({'alg': 'none'})}.{part({**claims, 'pad': pad})}.c2ln"


async def test_oidc_auth_provider_id_token_is_sent(tmp_path: Path) -> None:
    id_token = unsigned_jwt({"sub": "dora", "exp": int(time.time()) + 3600})
    provider = {
        "name": "oidc",
        "config": {
            "id-token": id_token,
            "refresh-token": "unused-while-valid",
            "client-id": "bosun",
            "idp-issuer-url": "https://issuer.invalid",
        },
    }
    with fake_api_server() as api:
        config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"auth-provider": provider})
        client = KubeClient.from_kubeconfig(config)
        try:
            await who(client)
        finally:
            await client.aclose()
    assert api.authorizations() == [f"Bearer {id_token}"]


async def test_exec_websocket_uses_the_same_credentials_and_retries_after_a_401(tmp_path: Path) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response
    from websockets.typing import Subprotocol

    seen: list[tuple[str | None, str | None]] = []
    rejected = {"Bearer ws-1"}

    def check(connection: ServerConnection, request: Request) -> Response | None:
        authorization = request.headers.get("Authorization")
        seen.append((authorization, request.headers.get("Impersonate-User")))
        if authorization in rejected:
            return connection.respond(HTTPStatus.UNAUTHORIZED, '{"kind": "Status", "reason": "Unauthorized"}')
        return None

    async def container(ws: ServerConnection) -> None:
        await ws.send(b"\x01hello\n")
        await ws.send(b"\x03" + json.dumps({"status": "Success"}).encode())

    token = tmp_path / "token"
    token.write_text("ws-1")
    async with serve(
        container, "127.0.0.1", 0, process_request=check, subprotocols=[Subprotocol("v5.channel.k8s.io")]
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        config = write_kubeconfig(
            tmp_path / "kubeconfig", f"http://127.0.0.1:{port}", {"tokenFile": str(token)}
        )
        client = KubeClient.from_kubeconfig(config)
        try:
            token.write_text("ws-2")
            result = await exec_in_pod(
                client.impersonating(Identity("bob")), "shop", "web-0", ["echo", "hello"]
            )
        finally:
            await client.aclose()
    assert (result.stdout, result.exit_code) == ("hello\n", 0)
    assert seen == [("Bearer ws-1", "bob"), ("Bearer ws-2", "bob")]
