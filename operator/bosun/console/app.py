"""The console's web application: pages rendered on the server, kept live with Server-Sent Events.

Every page and every stream is made of the person's own requests to the API server (``access``): a list
is their LIST, a live page their WATCH (no polling: the API server's watch is pushed to the browser as it
comes), a decision their ApprovalGrant, a request their AgentTask. RBAC decides what they see and may do,
and admission stamps who did it; the console adds no rights and keeps no state but a session cookie.

Protections: every action is a POST carrying a CSRF token bound to the session cookie and to the person
(an HMAC under a secret made at start), from the console's own origin (``Origin`` checked); the session
cookie is HttpOnly and SameSite=Strict; a strict Content-Security-Policy allows only the console's own
script and stylesheet (no inline code, no other origin); pages are not cached and cannot be framed. Pages
show no Secrets: only what the task objects hold, and the operator seals secret values out of proposals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from bosun_tools.client.kube import KubeError
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.datastructures import FormData, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bosun.api.models import Decision
from bosun.cli.cluster import AGENT_TASKS, APPROVAL_GRANTS, EVENTS, Connection, NotAllowed, NotFound
from bosun.cli.commands import grant_verdict
from bosun.cli.objects import grant_object, task_object
from bosun.cli.render import AWAITING, status_of
from bosun.console import overview as stats
from bosun.console.access import Access, NoToken, Person
from bosun.console.views import (
    PHASE_TONES,
    Filters,
    Notice,
    chosen_steps,
    event_line,
    grant_notice,
    task_row,
    task_rows,
    task_view,
)

HERE = Path(__file__).parent
SESSION_COOKIE = "bosun_session"
ALL_NAMESPACES = "*"
VERDICT_WAIT = 20.0
"""Seconds a decision waits for the operator's verdict on its grant before the page shows it as pending."""
VIEWER_SECONDS = 60.0
"""How long who a person is (SelfSubjectReview) is remembered for their credentials."""
VIEWERS_KEPT = 1000
"""Remembered people past which those not seen for ``VIEWER_SECONDS`` are forgotten."""
TASK_PARTS = ("headline", "decision", "timeline", "outcome")
"""The parts of a task page a change re-renders (``templates/parts.html``; ids ``part-<name>``)."""
ACTIONS = ("approve-all", "approve-selected", "deny")
PING_SECONDS = 15
"""Comment lines on an idle stream, so proxies do not close it."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Refused(Exception):
    """An action the console will not pass on; ``status`` and ``text`` are the answer."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _now() -> datetime:
    return datetime.now(UTC)


class Console:
    """The routes, bound to one ``Access`` and one CSRF secret."""

    def __init__(self, access: Access, *, secret: bytes | None = None) -> None:
        self.access = access
        self.secret = secret or secrets.token_bytes(32)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(phase_tones=PHASE_TONES, seconds=stats.seconds_text, quote=quote)
        self.parts = self.templates.get_template("parts.html").module
        self._viewers: dict[str, tuple[float, str | None]] = {}

    # ----- plumbing ---------------------------------------------------------------------------------------

    def part(self, name: str, *values: Any) -> str:
        """One macro of ``templates/parts.html`` rendered alone: what a live update sends."""
        macro: Callable[..., Any] = getattr(self.parts, name)
        return str(macro(*values))

    async def viewer(self, person: Person) -> str | None:
        """Who the API server says the person is (remembered for a minute per credentials)."""
        known = self._viewers.get(person.fingerprint)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        name = await person.connection(person.default_namespace).whoami()
        now = time.monotonic()
        if len(self._viewers) >= VIEWERS_KEPT:  # forget those not seen for a minute: one entry per token
            self._viewers = {k: v for k, v in self._viewers.items() if v[0] > now}
        self._viewers[person.fingerprint] = (now + VIEWER_SECONDS, name)
        return name

    def csrf(self, session: str, person: Person) -> str:
        message = f"{session}\n{person.fingerprint}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def page(
        self,
        request: Request,
        person: Person,
        viewer: str | None,
        template: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        session = request.cookies.get(SESSION_COOKIE) or secrets.token_urlsafe(32)
        html = self.templates.get_template(template).render(
            viewer=viewer,
            csrf=self.csrf(session, person),
            forwarding=self.access.forwarding,
            path=request.url.path,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        if SESSION_COOKIE not in request.cookies:
            response.set_cookie(
                SESSION_COOKIE,
                session,
                httponly=True,
                samesite="strict",
                secure=_scheme(request) == "https",
                path="/",
            )
        return response

    def check_action(self, request: Request, form: FormData, person: Person) -> None:
        """Refuse a POST that did not come from a page this console served to this person."""
        origin = request.headers.get("origin")
        expected = f"{_scheme(request)}://{request.headers.get('host', '')}"
        if origin is not None and origin != expected:
            raise Refused(
                403, f"refused: the form was posted from {origin}, not from this console ({expected})"
            )
        session = request.cookies.get(SESSION_COOKIE)
        sent = str(form.get("csrf") or "")
        if not session or not hmac.compare_digest(sent, self.csrf(session, person)):
            raise Refused(
                403,
                "refused: the form's CSRF token is missing or not this session's; reload the page and try "
                "again",
            )

    def scope(self, request: Request, person: Person) -> tuple[str, bool]:
        """The namespace asked for (``?namespace=``; ``*``: all), else the person's default one."""
        asked = request.query_params.get("namespace", "").strip()
        if asked == ALL_NAMESPACES:
            return person.default_namespace, True
        return asked or person.default_namespace, False

    # ----- pages ------------------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def tasks(self, request: Request) -> Response:
        person = self.access.person(request)
        viewer = await self.viewer(person)
        namespace, everywhere = self.scope(request, person)
        filters = Filters(request.query_params.get("phase", ""), request.query_params.get("requester", ""))
        return await self._tasks_page(request, person, viewer, namespace, everywhere, filters)

    async def _tasks_page(
        self,
        request: Request,
        person: Person,
        viewer: str | None,
        namespace: str,
        everywhere: bool,
        filters: Filters,
        *,
        status: int = 200,
        problem: str = "",
        draft: Mapping[str, str] | None = None,
    ) -> Response:
        rows, problem_listing = [], ""
        try:
            listing = await person.connection(namespace).list(AGENT_TASKS, all_namespaces=everywhere)
            rows = task_rows(listing.get("items", []), viewer, _now(), filters)
        except NotAllowed as refused:
            problem_listing = refused.told(viewer)
        query = {
            "namespace": ALL_NAMESPACES if everywhere else namespace,
            "phase": filters.phase,
            "requester": filters.requester,
        }
        return self.page(
            request,
            person,
            viewer,
            "tasks.html",
            status=status,
            rows=rows,
            namespace=namespace,
            everywhere=everywhere,
            filters=filters,
            phases=stats.PHASE_ORDER,
            stream=f"/stream/tasks?{urlencode(query)}",
            problem=problem or problem_listing,
            listing_refused=bool(problem_listing),
            draft=draft or {},
        )

    async def task(self, request: Request) -> Response:
        person = self.access.person(request)
        viewer = await self.viewer(person)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        notice = None
        if grant := request.query_params.get("grant"):
            try:
                notice = grant_notice(await person.connection(namespace).get(APPROVAL_GRANTS, grant), grant)
            except NotFound:
                notice = grant_notice(None, grant)
        return await self._task_page(request, person, viewer, namespace, name, notice=notice)

    async def _task_page(
        self,
        request: Request,
        person: Person,
        viewer: str | None,
        namespace: str,
        name: str,
        *,
        notice: Notice | None = None,
        status: int = 200,
    ) -> Response:
        conn = person.connection(namespace)
        try:
            body = await conn.get(AGENT_TASKS, name)
        except NotFound as missing:
            return self.page(request, person, viewer, "problem.html", status=404, problem=str(missing))
        except NotAllowed as refused:
            text = refused.told(viewer)
            return self.page(request, person, viewer, "problem.html", status=403, problem=text)
        view = task_view(body, viewer, _now())
        return self.page(
            request,
            person,
            viewer,
            "task.html",
            status=status,
            task=view,
            notice=notice,
            stream=f"/stream/tasks/{quote(namespace)}/{quote(name)}",
        )

    async def overview(self, request: Request) -> Response:
        person = self.access.person(request)
        viewer = await self.viewer(person)
        namespace, everywhere = self.scope(request, person)
        problem, summary = "", None
        try:
            listing = await person.connection(namespace).list(AGENT_TASKS, all_namespaces=everywhere)
            summary = stats.overview(listing.get("items", []))
        except NotAllowed as refused:
            problem = refused.told(viewer)
        return self.page(
            request,
            person,
            viewer,
            "overview.html",
            summary=summary,
            problem=problem,
            namespace=namespace,
            everywhere=everywhere,
        )

    # ----- actions ----------------------------------------------------------------------------------------

    async def ask(self, request: Request) -> Response:
        person = self.access.person(request)
        form = await request.form()
        self.check_action(request, form, person)
        viewer = await self.viewer(person)
        namespace = str(form.get("namespace") or person.default_namespace).strip()
        text = str(form.get("request") or "").strip()
        targets = [t.strip() for t in str(form.get("targets") or "").split(",") if t.strip()]
        follow_up_of = str(form.get("follow_up_of") or "").strip() or None
        body = task_object(
            text,
            namespace,
            targets,
            model=str(form.get("model") or "").strip() or None,
            follow_up_of=follow_up_of,
        )
        try:
            created = await person.connection(namespace).create(AGENT_TASKS, body)
        except (NotAllowed, KubeError) as refused:
            problem = (
                refused.told(viewer)
                if isinstance(refused, NotAllowed)
                else f"The API server refused the task ({refused.reason}): {refused.message}"
            )
            draft = {k: str(form.get(k) or "") for k in ("request", "targets", "model", "follow_up_of")}
            return await self._tasks_page(
                request, person, viewer, namespace, False, Filters(), status=422, problem=problem, draft=draft
            )
        name = created["metadata"]["name"]
        return RedirectResponse(f"/tasks/{quote(namespace)}/{quote(name)}", status_code=303)

    async def decide(self, request: Request) -> Response:
        """Create the person's ApprovalGrant for exactly the proposal the page showed them (its hash came
        with the form), wait briefly for the operator's verdict, and show it."""
        person = self.access.person(request)
        form = await request.form()
        self.check_action(request, form, person)
        viewer = await self.viewer(person)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        conn = person.connection(namespace)
        action = str(form.get("action") or "")
        if action not in ACTIONS:
            raise Refused(400, f"refused: action {action!r} is not one of {', '.join(ACTIONS)}")
        try:
            grant_name = await self._create_grant(conn, viewer, name, action, form)
        except Refused as refused:
            notice = Notice("bad", refused.text)
            return await self._task_page(
                request, person, viewer, namespace, name, notice=notice, status=refused.status
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(VERDICT_WAIT):
                await grant_verdict(conn, grant_name)
        return RedirectResponse(
            f"/tasks/{quote(namespace)}/{quote(name)}?grant={quote(grant_name)}", status_code=303
        )

    async def _create_grant(
        self, conn: Connection, viewer: str | None, name: str, action: str, form: FormData
    ) -> str:
        """The person's grant for exactly the proposal the form quotes, created; ``Refused`` (and nothing
        created) when the task proposes anything else now, the steps are wrong, or RBAC says no."""
        namespace = conn.namespace
        decision: Decision = "Deny" if action == "deny" else "Approve"
        reviewed = str(form.get("hash") or "")
        try:
            task = await conn.get(AGENT_TASKS, name)
            status = status_of(task)
            shown = status.proposal
            if status.phase != AWAITING or shown is None:
                raise Refused(
                    409,
                    f"Nothing was decided: agenttask {namespace}/{name} is {status.phase or 'Pending'}, "
                    "no proposal awaits a decision.",
                )
            if shown.hash != reviewed:
                raise Refused(
                    409,
                    "Nothing was decided: the proposal changed since the page was loaded (it now is "
                    f"revision {shown.revision}, {shown.hash}); review it below and decide again.",
                )
            picked = [str(s) for s in form.getlist("steps")]
            steps = chosen_steps(shown, picked, action == "approve-all") if decision == "Approve" else None
            reason = str(form.get("reason") or "").strip() or None
            grant = await conn.create(
                APPROVAL_GRANTS, grant_object(task, decision, reviewed, steps, reason, via="bosun-console")
            )
        except ValueError as bad:
            raise Refused(422, f"Nothing was decided: {bad}.") from bad
        except NotFound as missing:
            raise Refused(404, f"Nothing was decided: {missing}.") from missing
        except NotAllowed as refused:
            text = refused.told(viewer)
            raise Refused(403, text) from refused
        except KubeError as failed:
            text = (
                f"Nothing was decided: the API server refused the grant ({failed.reason}): {failed.message}"
            )
            raise Refused(422, text) from failed
        return str(grant["metadata"]["name"])

    # ----- live streams -----------------------------------------------------------------------------------

    async def stream_tasks(self, request: Request) -> Response:
        """The list, live: a row for every task as it changes (moved to "waiting for you" when it awaits
        the viewer), removed when it is deleted or leaves the filters."""
        person = self.access.person(request)
        viewer = await self.viewer(person)
        namespace, everywhere = self.scope(request, person)
        filters = Filters(request.query_params.get("phase", ""), request.query_params.get("requester", ""))
        conn = person.connection(namespace)

        async def rows() -> AsyncGenerator[dict[str, str], None]:
            shown: set[str] = set()
            async with contextlib.aclosing(conn.changes(AGENT_TASKS, all_namespaces=everywhere)) as changes:
                async for kind, body in changes:
                    row = task_row(body, viewer, _now())
                    if kind == "DELETED" or not filters.admit(row):
                        if row.key in shown:
                            shown.discard(row.key)
                            yield _message("gone", {"key": row.key})
                        continue
                    shown.add(row.key)
                    html = self.part("row", row, everywhere)
                    yield _message("row", {"key": row.key, "mine": row.waiting_for_me, "html": html})

        return EventSourceResponse(self._guarded(rows, viewer), ping=PING_SECONDS)

    async def stream_task(self, request: Request) -> Response:
        """One task, live: its parts re-rendered whenever the task changes (only those that changed are
        sent), and each new Event about it."""
        person = self.access.person(request)
        viewer = await self.viewer(person)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        conn = person.connection(namespace)
        session = request.cookies.get(SESSION_COOKIE)
        csrf = self.csrf(session, person) if session else ""

        async def updates() -> AsyncGenerator[dict[str, str], None]:
            queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
            async with asyncio.TaskGroup() as both:
                watchers = [
                    both.create_task(self._task_parts(conn, name, viewer, csrf, queue)),
                    both.create_task(self._task_events(conn, name, viewer, queue)),
                ]
                try:
                    while True:
                        message = await queue.get()
                        yield message
                        if message["event"] == "problem":
                            return
                finally:
                    for watcher in watchers:
                        watcher.cancel()

        return EventSourceResponse(self._guarded(updates, viewer), ping=PING_SECONDS)

    async def _task_parts(
        self, conn: Connection, name: str, viewer: str | None, csrf: str, queue: asyncio.Queue[dict[str, str]]
    ) -> None:
        sent: dict[str, str] = {}
        try:
            async with contextlib.aclosing(conn.changes(AGENT_TASKS, name=name)) as changes:
                async for kind, body in changes:
                    if kind == "DELETED":
                        await queue.put(
                            _message("problem", {"html": f"agenttask {conn.namespace}/{name} was deleted"})
                        )
                        return
                    view = task_view(body, viewer, _now())
                    parts = {part: self.part(part, view, csrf) for part in TASK_PARTS}
                    changed = {part: html for part, html in parts.items() if sent.get(part) != html}
                    sent.update(changed)
                    if changed:
                        await queue.put(_message("parts", {"phase": view.phase, "parts": changed}))
        except (NotAllowed, KubeError) as failed:
            await queue.put(_problem(failed, viewer))

    async def _task_events(
        self, conn: Connection, name: str, viewer: str | None, queue: asyncio.Queue[dict[str, str]]
    ) -> None:
        selector = f"involvedObject.name={name},involvedObject.apiVersion={AGENT_TASKS.api_version}"
        try:
            async with contextlib.aclosing(conn.changes(EVENTS, field_selector=selector)) as changes:
                async for kind, event in changes:
                    if kind != "DELETED":
                        line = event_line(event)
                        await queue.put(
                            _message("event", {"key": line.key, "html": self.part("event", line)})
                        )
        except NotAllowed as refused:
            who = viewer or "you"
            text = f"No Events: {who} may not {refused.verb} events in namespace {refused.namespace}."
            await queue.put(_message("note", {"html": text}))

    async def _guarded(
        self, produce: Callable[[], AsyncGenerator[dict[str, str], None]], viewer: str | None
    ) -> AsyncGenerator[dict[str, str], None]:
        """A stream that ends with a ``problem`` message (said on the page) instead of breaking off."""
        try:
            async with contextlib.aclosing(produce()) as messages:
                async for message in messages:
                    yield message
        except* (NotAllowed, KubeError) as failed:
            yield _problem(failed.exceptions[0], viewer)  # type: ignore[arg-type]


def _message(event: str, data: Mapping[str, Any]) -> dict[str, str]:
    return {"event": event, "data": json.dumps(data)}


def _problem(failed: NotAllowed | KubeError, viewer: str | None) -> dict[str, str]:
    if isinstance(failed, NotAllowed):
        text = failed.told(viewer)
    else:
        answered = f"{failed.status} {failed.reason}: {failed.message}"
        text = f"The live view stopped: the API server answered {answered}"
    return _message("problem", {"html": text})


def _scheme(request: Request) -> str:
    """http or https as the browser sees it (an ingress or proxy that ends TLS says so in a header)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded if forwarded in ("http", "https") else request.url.scheme


async def _unauthorized(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(
        "401 Unauthorized: no bearer token was forwarded. This console acts only with the signed-in person's "
        "own token (Authorization: Bearer or X-Forwarded-Access-Token, set by the authenticating proxy in "
        "front of it); it has no rights of its own.\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="bosun-console"'},
    )


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return PlainTextResponse(exc.text + "\n", status_code=exc.status)


async def _api_failed(request: Request, exc: Exception) -> Response:
    """The API server refused the person's credentials (401) or could not be reached or answered badly."""
    assert isinstance(exc, KubeError)
    status = 401 if exc.status == 401 else 502
    return PlainTextResponse(
        f"{status}: the API server answered {exc.status} {exc.reason}: {exc.message}\n", status_code=status
    )


class SecurityHeaders:
    """Headers every answer carries (plain ASGI, so streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def build_app(access: Access, *, secret: bytes | None = None) -> Starlette:
    """The console as an ASGI application (``uvicorn`` serves it)."""
    console = Console(access, secret=secret)
    routes = [
        Route("/healthz", console.health),
        Route("/", console.tasks),
        Route("/overview", console.overview),
        Route("/ask", console.ask, methods=["POST"]),
        Route("/tasks/{namespace}/{name}", console.task),
        Route("/tasks/{namespace}/{name}/decide", console.decide, methods=["POST"]),
        Route("/stream/tasks", console.stream_tasks),
        Route("/stream/tasks/{namespace}/{name}", console.stream_task),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={NoToken: _unauthorized, Refused: _refused, KubeError: _api_failed},
    )
