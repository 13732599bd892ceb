"""A Jenkins REST client (``/api/json``, CSRF crumbs, progressive text) with credentials from a Kubernetes
Secret, and Jenkins' build parameters: the definitions a job reports, the form a build is triggered with,
and the values a build was given, secret ones shown as ``<redacted>``.

The URL, user and token come only from the Secret the tool server's settings name, read with the server's
own identity, and never appear in anything the client returns, raises or logs (``JenkinsClient.scrub``;
its HTTP library, aiohttp, logs no request lines). Job paths are URL-quoted segment by segment and sent as
quoted, so a name can never add a path, a query or another endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import yarl

from bosun_tools.client.kube import KubeClient, KubeError, env_proxy
from bosun_tools.errors import ToolError
from bosun_tools.settings import JenkinsSettings

REDACTED = "<redacted>"


@dataclass(frozen=True)
class JenkinsCredentials:
    """Decoded Secret contents; ``repr`` shows nothing so a stray log line cannot leak them."""

    url: str
    user: str
    token: str

    def __repr__(self) -> str:
        return "JenkinsCredentials(<redacted>)"


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: str
    default: Any
    choices: tuple[str, ...]
    description: str

    @property
    def secret(self) -> bool:
        return self.type.startswith("Password") or self.type.startswith("Credentials")


def parameter_specs(job: Mapping[str, Any]) -> list[ParameterSpec]:
    """Parameter definitions, from ``property`` (current Jenkins) or ``actions`` (older cores)."""
    specs: dict[str, ParameterSpec] = {}
    for holder in [*(job.get("property") or []), *(job.get("actions") or [])]:
        for definition in (holder or {}).get("parameterDefinitions") or []:
            name = str(definition.get("name", ""))
            if not name or name in specs:
                continue
            default = (definition.get("defaultParameterValue") or {}).get("value")
            specs[name] = ParameterSpec(
                name=name,
                type=str(definition.get("type", "StringParameterDefinition")),
                default=default,
                choices=tuple(str(c) for c in definition.get("choices") or ()),
                description=str(definition.get("description") or ""),
            )
    return list(specs.values())


def validate_parameters(
    job: list[str], specs: list[ParameterSpec], given: Mapping[str, str | bool | int]
) -> dict[str, str]:
    """Form values to send, checked against the job's definitions (Jenkins itself ignores unknown names)."""
    label = job_label(job)
    known = {s.name: s for s in specs}
    if given and not specs:
        raise ToolError(f"job {label} takes no parameters; call jenkins_trigger_build without parameters")
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ToolError(
            f"job {label} has no parameter {', '.join(unknown)}; its parameters are {', '.join(known)}"
        )
    form: dict[str, str] = {}
    for name, value in given.items():
        spec = known[name]
        if spec.type.startswith("Boolean"):
            if isinstance(value, bool):
                form[name] = "true" if value else "false"
            elif str(value).lower() in ("true", "false"):
                form[name] = str(value).lower()
            else:
                raise ToolError(f"parameter {name} of job {label} is a boolean; pass true or false")
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if spec.choices and text not in spec.choices:
            raise ToolError(
                f"parameter {name} of job {label} must be one of {', '.join(spec.choices)}; got {text!r}"
            )
        form[name] = text
    return form


def describe_parameters(specs: list[ParameterSpec], form: Mapping[str, str]) -> list[str]:
    lines = []
    for spec in specs:
        if spec.name in form:
            value, source = (REDACTED if spec.secret else form[spec.name]), "given"
        else:
            value, source = (REDACTED if spec.secret else spec.default), "default"
        lines.append(f"  {spec.name} = {value!s} ({source})")
    return lines


def parameter_lines(specs: list[ParameterSpec]) -> list[str]:
    lines = []
    for spec in specs:
        kind = spec.type.removesuffix("ParameterDefinition") or spec.type
        default = REDACTED if spec.secret else spec.default
        extra = f" choices: {', '.join(spec.choices)}" if spec.choices else ""
        text = f"  {spec.name} ({kind}) default={default!r}{extra}"
        if spec.description:
            text += f" — {spec.description[:120]}"
        lines.append(text)
    return lines


def build_parameters(build: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for action in build.get("actions") or []:
        for parameter in (action or {}).get("parameters") or []:
            cls = str(parameter.get("_class", ""))
            secret = "Password" in cls or "Credentials" in cls or "value" not in parameter
            values[str(parameter.get("name"))] = REDACTED if secret else parameter.get("value")
    return values


def build_causes(build: Mapping[str, Any]) -> list[str]:
    return [
        str(cause.get("shortDescription"))
        for action in build.get("actions") or []
        for cause in (action or {}).get("causes") or []
        if cause.get("shortDescription")
    ]


async def load_credentials(kube: KubeClient, settings: JenkinsSettings) -> JenkinsCredentials:
    """Read url/user/token from the configured Secret with the server's own identity (never the model's)."""
    ref = settings.secret_ref
    try:
        info = await kube.resolve("secrets", "v1")
        secret = await kube.get(info, settings.secret_name, settings.secret_namespace)
    except KubeError as exc:
        if exc.status == 404:
            raise ToolError(
                f"Jenkins is not set up: Secret {ref} was not found; create it with the keys url, user "
                "and token"
            ) from None
        if exc.status == 403:
            raise ToolError(
                f"Forbidden: the tool server's own identity cannot read Secret {ref}; grant it get on "
                "that Secret"
            ) from None
        raise ToolError(f"cannot read the Jenkins Secret {ref}: {exc.reason}") from None
    data = secret.get("data") or {}
    values: dict[str, str] = {}
    for key in ("url", "user", "token"):
        raw = data.get(key)
        if not raw:
            raise ToolError(f"Secret {ref} has no key {key!r}; it needs the keys url, user and token")
        try:
            values[key] = base64.b64decode(raw).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise ToolError(f"Secret {ref} key {key!r} is not valid base64 text; re-create it") from None
    if urlsplit(values["url"]).scheme not in ("http", "https"):
        raise ToolError(f"Secret {ref} key 'url' is not an http(s) URL; set it to the Jenkins root URL")
    return JenkinsCredentials(values["url"].rstrip("/") + "/", values["user"], values["token"])


def job_url_path(job: list[str]) -> str:
    """``["team", "deploy"]`` -> ``job/team/job/deploy/``; every segment quoted, nothing else added.

    Quoting leaves dots alone, and a server resolves a ``..`` segment to the parent path, so the segments
    no Jenkins item can be named (empty, ``.``, ``..``) are refused rather than sent."""
    for segment in job:
        if segment in ("", ".", ".."):
            raise ToolError(f"{segment!r} is not a Jenkins job name; name a job by its folders and name")
    return "".join(f"job/{quote(segment, safe='')}/" for segment in job)


def job_label(job: list[str]) -> str:
    return "/".join(job)


def _strip_html(body: str) -> str:
    text = re.sub(r"<[^>]+>", " ", body)
    return " ".join(text.split())[:300]


def _text(body: bytes, charset: str | None) -> str:
    """A body as text, in the charset its Content-Type names (UTF-8 when none, or one Python lacks)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise ToolError(f"Jenkins sent something other than JSON for {what}") from None
    if not isinstance(value, dict):
        raise ToolError(f"Jenkins sent unexpected JSON for {what}")
    return value


@dataclass(frozen=True)
class JenkinsAnswer:
    """The status and headers of an answer whose body nobody needs (a POST's): the toolsets see these,
    never the HTTP library's response. ``headers`` match names case-insensitively, as HTTP does."""

    status: int
    headers: Mapping[str, str]


@dataclass(frozen=True)
class JenkinsStream:
    """An answer whose body is read as it arrives (a console log can be longer than anyone wants to
    hold): its headers, then its body in chunks, only while the ``JenkinsClient.stream`` block is open."""

    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]


class JenkinsClient:
    """One authenticated session (crumb and cookies kept together, as Jenkins binds crumbs to sessions).

    Its transport is one aiohttp session, the library of the Kubernetes client and of kopf, so the
    operator, which loads every toolset at start, need not load a second HTTP client. As httpx did
    before it: no redirect is followed, the proxy comes from ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``
    and ``NO_PROXY`` (read as ``bosun_tools.client.kube`` reads them), and every wait for a connection or
    for the next bytes from Jenkins is bounded by ``settings.timeout``, not the whole exchange, which
    would cut off a long console log that is still arriving. Cookies are kept even from a Jenkins
    addressed by its IP address (which aiohttp's jar otherwise refuses): the crumb is valid only with
    the session cookie it came with.
    """

    def __init__(self, credentials: JenkinsCredentials, settings: JenkinsSettings) -> None:
        self._credentials = credentials
        self._settings = settings
        self._crumb: tuple[str, str] | None = None
        self._crumb_fetched = False
        self._root = str(yarl.URL(credentials.url))  # quoted, host in IDNA: ready to take as encoded
        self._proxy = env_proxy(credentials.url)
        basic = base64.b64encode(f"{credentials.user}:{credentials.token}".encode()).decode()
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Basic {basic}"},
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=None, connect=settings.timeout, sock_read=settings.timeout),
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.close()

    def scrub(self, text: str) -> str:
        """Remove the Jenkins URL (a Secret value) from anything Jenkins sent back, e.g. ``url`` fields."""
        base = self._credentials.url
        parts = urlsplit(base)
        for needle in (base, base.rstrip("/"), f"{parts.scheme}://{parts.netloc}", parts.netloc):
            if needle:
                text = text.replace(needle, "<jenkins>")
        if self._credentials.token:
            text = text.replace(self._credentials.token, REDACTED)
        return text

    def _url(self, path: str, params: Mapping[str, Any] | None) -> yarl.URL:
        """``path`` below the Jenkins root, sent exactly as ``job_url_path`` quoted it: yarl would otherwise
        unquote and quote it again, and a ``%2F`` in a job name must not become a ``/``."""
        query = f"?{urlencode(params)}" if params else ""
        return yarl.URL(f"{self._root}{path}{query}", encoded=True)

    @contextmanager
    def _transport_errors(self, what: str) -> Iterator[None]:
        """Transport failures as messages that say what to check (never the URL itself)."""
        try:
            yield
        except TimeoutError:
            raise ToolError(
                f"Jenkins did not answer within {self._settings.timeout:g}s for {what}; "
                "check that Jenkins is up, then retry"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ToolError(
                f"Jenkins is unreachable ({type(exc).__name__}) for {what}; check the url key of Secret "
                f"{self._settings.secret_ref}"
            ) from None

    async def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        allow: tuple[int, ...] = (),
        params: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[JenkinsAnswer, bytes]:
        """One request, its answer read whole; an error status not in ``allow`` raises."""
        with self._transport_errors(what):
            async with self._http.request(
                method,
                self._url(path, params),
                data=dict(form) if form else None,
                headers=headers,
                allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                body = await response.read()
        if response.status not in allow:
            self._check(response.status, body, response.charset, what)
        return JenkinsAnswer(response.status, response.headers), body

    def _check(self, status: int, body: bytes, charset: str | None, what: str) -> None:
        if status < 400:
            return
        detail = self.scrub(_strip_html(_text(body, charset)))
        if status == 401:
            raise ToolError(
                f"Jenkins rejected the credentials from Secret {self._settings.secret_ref} (HTTP 401); "
                "update its user and token keys"
            )
        if status == 403:
            raise ToolError(f"Forbidden: Jenkins refused {what} (HTTP 403): {detail}")
        if status == 404:
            raise ToolError(
                f"{what}: not found in Jenkins; list jobs with jenkins_get and builds with "
                "jenkins_get show=builds"
            )
        raise ToolError(f"Jenkins answered HTTP {status} for {what}: {detail}")

    async def get_json(self, path: str, what: str, *, tree: str | None = None) -> dict[str, Any]:
        params = {"tree": tree} if tree else None
        _, body = await self._send("GET", path + "api/json", what, params=params)
        return _json_object(body, what)

    async def _crumb_header(self) -> dict[str, str]:
        """CSRF protection: fetch the crumb once per session; a 404 means the issuer is disabled."""
        if not self._crumb_fetched:
            what = "the CSRF crumb"
            answer, body = await self._send("GET", "crumbIssuer/api/json", what, allow=(404,))
            issued = _json_object(body, what) if answer.status == 200 else {}
            field, crumb = issued.get("crumbRequestField"), issued.get("crumb")
            self._crumb = (str(field), str(crumb)) if field and crumb else None
            self._crumb_fetched = True
        return {self._crumb[0]: self._crumb[1]} if self._crumb else {}

    async def post(self, path: str, what: str, data: Mapping[str, str] | None = None) -> JenkinsAnswer:
        """A form POST with the session's crumb; the answer's body is not kept (only its headers say
        anything the tools use, such as a queue item's ``Location``)."""
        headers = await self._crumb_header()
        answer, _ = await self._send("POST", path, what, form=data, headers=headers)
        return answer

    @asynccontextmanager
    async def stream(self, path: str, what: str, params: Mapping[str, Any]) -> AsyncIterator[JenkinsStream]:
        with self._transport_errors(what):
            async with self._http.get(
                self._url(path, params), allow_redirects=False, proxy=self._proxy
            ) as response:
                if response.status >= 400:
                    self._check(response.status, await response.read(), response.charset, what)
                yield JenkinsStream(response.headers, response.content.iter_any())


@asynccontextmanager
async def jenkins_session(kube: KubeClient, settings: JenkinsSettings) -> AsyncIterator[JenkinsClient]:
    credentials = await load_credentials(kube, settings)
    client = JenkinsClient(credentials, settings)
    try:
        yield client
    finally:
        await client.aclose()
