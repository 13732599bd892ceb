"""A test double imitating Jenkins' REST API (the documented ``/api/json`` remote access API).

No Jenkins can run here, so the Jenkins tools are tested against this real HTTP server on 127.0.0.1. It
follows the endpoints and behaviours the tools rely on, as documented at
https://www.jenkins.io/doc/book/using/remote-access-api/ and as Jenkins core implements them:

- HTTP basic auth with a user and API token on every request (401 otherwise);
- ``GET crumbIssuer/api/json`` and a 403 "No valid crumb" for a POST without the crumb header;
- ``GET [job/<a>/job/<b>/]api/json`` with ``tree=`` filtering (fields, nested ``[...]``, ranges ``{m,n}``)
  for the root, folders, jobs, builds and ``lastBuild``-style permalinks;
- ``POST job/.../build`` and ``POST job/.../buildWithParameters`` answering 201 with a ``Location`` of
  ``queue/item/<n>/``; ``GET queue/item/<n>/api/json`` reports a waiting item for a scripted number of
  polls (counted in requests, not seconds), then a left item with ``executable.number``;
- ``GET job/.../<n>/logText/progressiveText?start=`` with ``X-Text-Size`` and ``X-More-Data``;
- ``POST job/.../<n>/stop`` and ``GET me/api/json``.

It is not Jenkins: builds run only when a test says so (``finish_build``, ``append_log``). Tests can make
a job refuse builds (403), hold every request until released (to exercise client timeouts), and read
``triggered`` to see exactly which parameters a tool sent.

In-process: ``with FakeJenkins() as jenkins: jenkins.add_job(["team", "deploy"], parameters=[...])``.
As a process for end-to-end tests: ``python -m tests.fakes.jenkins --port 0`` prints
``FAKE_JENKINS_URL=http://...`` (user ``bosun``, token ``jenkins-test-token`` unless given).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

JSON = dict[str, Any]

PARAMETER_CLASSES = {
    "string": ("hudson.model.StringParameterDefinition", "hudson.model.StringParameterValue"),
    "text": ("hudson.model.TextParameterDefinition", "hudson.model.TextParameterValue"),
    "boolean": ("hudson.model.BooleanParameterDefinition", "hudson.model.BooleanParameterValue"),
    "choice": ("hudson.model.ChoiceParameterDefinition", "hudson.model.StringParameterValue"),
    "password": ("hudson.model.PasswordParameterDefinition", "hudson.model.PasswordParameterValue"),
}


@dataclass
class Parameter:
    """One parameter definition of a job, as Jenkins' ParametersDefinitionProperty holds it."""

    name: str
    kind: str = "string"  # string | text | boolean | choice | password
    default: str | bool | None = None
    choices: list[str] = field(default_factory=list)
    description: str = ""

    def to_json(self) -> JSON:
        definition_class, value_class = PARAMETER_CLASSES[self.kind]
        default = self.choices[0] if self.kind == "choice" and self.choices else self.default
        body: JSON = {
            "_class": definition_class,
            "name": self.name,
            "type": definition_class.rsplit(".", 1)[1],
            "description": self.description,
            "defaultParameterValue": (
                {"_class": value_class, "name": self.name}
                if self.kind == "password"
                else {"_class": value_class, "name": self.name, "value": default}
            ),
        }
        if self.kind == "choice":
            body["choices"] = list(self.choices)
        return body

    def accept(self, raw: str | None) -> str | bool | None:
        """The value Jenkins stores for a submitted form value (``None``: use the default)."""
        if raw is None:
            return self.choices[0] if self.kind == "choice" and self.choices else self.default
        if self.kind == "boolean":
            return raw.lower() in ("true", "on", "yes")
        if self.kind == "choice" and raw not in self.choices:
            raise ValueError(f"Illegal choice for parameter {self.name}: {raw}")
        return raw


@dataclass
class Build:
    number: int
    parameters: dict[str, str | bool | None]
    cause: str
    timestamp: int
    result: str | None = None
    building: bool = True
    duration: int = 0
    log: str = ""
    changes: list[JSON] = field(default_factory=list)


@dataclass
class Job:
    path: tuple[str, ...]
    description: str = ""
    parameters: list[Parameter] = field(default_factory=list)
    builds: dict[int, Build] = field(default_factory=dict)
    next_build_number: int = 1
    deny_build: bool = False


@dataclass
class QueueItem:
    id: int
    job: tuple[str, ...]
    parameters: dict[str, str | bool | None]
    polls_left: int
    cause: str
    cancelled: bool = False
    build_number: int | None = None


@dataclass(frozen=True)
class Trigger:
    """What a client asked for: the job, the endpoint used and the raw form values sent."""

    job: tuple[str, ...]
    endpoint: str
    values: dict[str, str]


class FakeJenkins:
    """The double's state and its HTTP server; see the module docstring."""

    CRUMB_FIELD = "Jenkins-Crumb"

    def __init__(
        self,
        user: str = "bosun",
        token: str = "jenkins-test-token",
        *,
        queue_polls: int = 2,
        port: int = 0,
    ) -> None:
        self.user = user
        self.token = token
        self.queue_polls = queue_polls
        self.crumb = base64.b16encode(f"crumb-{user}".encode()).decode().lower()
        self.folders: set[tuple[str, ...]] = set()
        self.jobs: dict[tuple[str, ...], Job] = {}
        self.queue: dict[int, QueueItem] = {}
        self.triggered: list[Trigger] = []
        self.requests: list[tuple[str, str]] = []
        self.cancel_waiting = False
        self._next_queue_id = 100
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._release.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> FakeJenkins:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-jenkins",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeJenkins:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ---------------------------------------------------------------------------------

    def add_folder(self, path: list[str]) -> None:
        with self._lock:
            for i in range(1, len(path) + 1):
                self.folders.add(tuple(path[:i]))

    def add_job(
        self, path: list[str], *, parameters: list[Parameter] | None = None, description: str = ""
    ) -> Job:
        with self._lock:
            if len(path) > 1:
                self.add_folder(path[:-1])
            job = Job(tuple(path), description=description, parameters=list(parameters or []))
            self.jobs[job.path] = job
            return job

    def add_build(
        self,
        path: list[str],
        *,
        result: str | None = "SUCCESS",
        log: str = "",
        parameters: dict[str, str | bool | None] | None = None,
        changes: list[JSON] | None = None,
    ) -> Build:
        """A build that already exists (``result=None``: still running)."""
        with self._lock:
            job = self.jobs[tuple(path)]
            build = self._start_build(job, parameters or {}, "Started by an SCM change")
            build.log = log
            build.changes = list(changes or [])
            if result is not None:
                self._finish(build, result)
            return build

    def finish_build(self, path: list[str], number: int, result: str = "SUCCESS") -> None:
        with self._lock:
            self._finish(self.jobs[tuple(path)].builds[number], result)

    def append_log(self, path: list[str], number: int, text: str) -> None:
        with self._lock:
            self.jobs[tuple(path)].builds[number].log += text

    def cancel_queue_item(self, item_id: int) -> None:
        with self._lock:
            self.queue[item_id].cancelled = True

    def cancel_waiting_items(self) -> None:
        """Cancel every waiting item when it is next polled, as if someone cancelled it in the UI."""
        with self._lock:
            self.cancel_waiting = True

    def hold_requests(self) -> None:
        """Make every request wait (up to 60 s) until ``release_requests``: a Jenkins that hangs."""
        self._release.clear()

    def release_requests(self) -> None:
        self._release.set()

    # --- behaviour ---------------------------------------------------------------------------------

    def _start_build(self, job: Job, parameters: dict[str, str | bool | None], cause: str) -> Build:
        number = job.next_build_number
        job.next_build_number += 1
        build = Build(number, parameters, cause, timestamp=int(time.time() * 1000))
        build.log = f"{cause}\nRunning as SYSTEM\n"
        job.builds[number] = build
        return build

    @staticmethod
    def _finish(build: Build, result: str) -> None:
        build.result = result
        build.building = False
        build.duration = max(1, int(time.time() * 1000) - build.timestamp)
        build.log += f"Finished: {result}\n"

    def _enqueue(self, job: Job, parameters: dict[str, str | bool | None]) -> QueueItem:
        item = QueueItem(
            self._next_queue_id, job.path, parameters, self.queue_polls, f"Started by user {self.user}"
        )
        self._next_queue_id += 1
        self.queue[item.id] = item
        return item

    def _poll(self, item: QueueItem) -> None:
        """Each poll of a waiting item brings it closer to starting, so tests control time by polls."""
        if item.cancelled or item.build_number is not None:
            return
        if self.cancel_waiting:
            item.cancelled = True
            return
        if item.polls_left > 0:
            item.polls_left -= 1
            return
        build = self._start_build(self.jobs[item.job], item.parameters, item.cause)
        item.build_number = build.number

    # --- JSON views --------------------------------------------------------------------------------

    def job_url(self, path: tuple[str, ...]) -> str:
        return self.url + "".join(f"job/{quote(p, safe='')}/" for p in path)

    def build_json(self, job: Job, build: Build) -> JSON:
        actions: list[JSON] = [
            {"_class": "hudson.model.CauseAction", "causes": [{"shortDescription": build.cause}]}
        ]
        if job.parameters:
            values = []
            for p in job.parameters:
                value_class = PARAMETER_CLASSES[p.kind][1]
                entry: JSON = {"_class": value_class, "name": p.name}
                if p.kind != "password":
                    entry["value"] = build.parameters.get(p.name)
                values.append(entry)
            actions.insert(0, {"_class": "hudson.model.ParametersAction", "parameters": values})
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "number": build.number,
            "id": str(build.number),
            "displayName": f"#{build.number}",
            "fullDisplayName": f"{' » '.join(job.path)} #{build.number}",
            "url": f"{self.job_url(job.path)}{build.number}/",
            "building": build.building,
            "result": build.result,
            "timestamp": build.timestamp,
            "duration": build.duration,
            "estimatedDuration": 60000,
            "actions": actions,
            "changeSets": [
                {"_class": "hudson.plugins.git.GitChangeSetList", "kind": "git", "items": build.changes}
            ],
        }

    def job_json(self, job: Job) -> JSON:
        builds = [self.build_json(job, job.builds[n]) for n in sorted(job.builds, reverse=True)]
        done = [b for b in builds if not b["building"]]

        def first(pred: Any) -> JSON | None:
            return next((b for b in done if pred(b)), None)

        last = builds[0] if builds else None
        color = "notbuilt"
        if done:
            color = {"SUCCESS": "blue", "FAILURE": "red", "UNSTABLE": "yellow", "ABORTED": "aborted"}.get(
                done[0]["result"], "grey"
            )
        if last is not None and last["building"]:
            color += "_anime"
        properties: list[JSON] = []
        if job.parameters:
            properties.append(
                {
                    "_class": "hudson.model.ParametersDefinitionProperty",
                    "parameterDefinitions": [p.to_json() for p in job.parameters],
                }
            )
        return {
            "_class": "hudson.model.FreeStyleProject",
            "name": job.path[-1],
            "fullName": "/".join(job.path),
            "displayName": job.path[-1],
            "description": job.description,
            "url": self.job_url(job.path),
            "buildable": True,
            "color": color,
            "inQueue": any(
                i.job == job.path and i.build_number is None and not i.cancelled for i in self.queue.values()
            ),
            "nextBuildNumber": job.next_build_number,
            "builds": builds,
            "lastBuild": last,
            "lastCompletedBuild": done[0] if done else None,
            "lastSuccessfulBuild": first(lambda b: b["result"] == "SUCCESS"),
            "lastFailedBuild": first(lambda b: b["result"] == "FAILURE"),
            "property": properties,
        }

    def children_json(self, folder: tuple[str, ...]) -> list[JSON]:
        names: dict[str, JSON] = {}
        for path in sorted(self.folders):
            if len(path) == len(folder) + 1 and path[: len(folder)] == folder:
                names[path[-1]] = {
                    "_class": "com.cloudbees.hudson.plugins.folder.Folder",
                    "name": path[-1],
                    "fullName": "/".join(path),
                    "url": self.job_url(path),
                }
        for path, job in sorted(self.jobs.items()):
            if len(path) == len(folder) + 1 and path[: len(folder)] == folder:
                names[path[-1]] = self.job_json(job)
        return [names[n] for n in sorted(names, key=str.lower)]  # Jenkins lists items by name

    def queue_json(self, item: QueueItem) -> JSON:
        base: JSON = {"id": item.id, "url": f"queue/item/{item.id}/", "task": {"name": item.job[-1]}}
        if item.build_number is None and not item.cancelled:
            return {
                **base,
                "_class": "hudson.model.Queue$WaitingItem",
                "blocked": False,
                "buildable": False,
                "why": "In the quiet period. Expires in 0 ms",
            }
        executable = None
        if item.build_number is not None:
            executable = {
                "_class": "hudson.model.FreeStyleBuild",
                "number": item.build_number,
                "url": f"{self.job_url(item.job)}{item.build_number}/",
            }
        return {
            **base,
            "_class": "hudson.model.Queue$LeftItem",
            "cancelled": item.cancelled,
            "executable": executable,
        }


# --- tree= filtering -------------------------------------------------------------------------------

Tree = list[tuple[str, "Tree | None", tuple[int, int] | None]]


def parse_tree(text: str) -> Tree:
    """Parse Jenkins' ``tree`` syntax: ``a,b[c,d[e]]{0,5}``."""
    tree, rest = _parse_fields(text, 0)
    if rest != len(text):
        raise ValueError(f"unexpected {text[rest]!r} at {rest} in tree={text}")
    return tree


def _parse_fields(text: str, pos: int) -> tuple[Tree, int]:
    fields: Tree = []
    while pos < len(text):
        m = re.compile(r"[A-Za-z_$][\w$]*").match(text, pos)
        if m is None:
            raise ValueError(f"expected a field name at {pos} in tree={text}")
        name, pos = m.group(0), m.end()
        sub: Tree | None = None
        rng: tuple[int, int] | None = None
        if pos < len(text) and text[pos] == "[":
            sub, pos = _parse_fields(text, pos + 1)
            if pos >= len(text) or text[pos] != "]":
                raise ValueError(f"missing ] in tree={text}")
            pos += 1
        if pos < len(text) and text[pos] == "{":
            end = text.index("}", pos)
            lo, _, hi = text[pos + 1 : end].partition(",")
            rng = (int(lo or 0), int(hi) if hi else 1 << 30)
            pos = end + 1
        fields.append((name, sub, rng))
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        break
    return fields, pos


def apply_tree(value: Any, tree: Tree) -> Any:
    if isinstance(value, list):
        return [apply_tree(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: JSON = {"_class": value["_class"]} if "_class" in value else {}
    for name, sub, rng in tree:
        if name not in value:
            continue
        item = value[name]
        if rng is not None and isinstance(item, list):
            item = item[rng[0] : rng[1]]
        out[name] = apply_tree(item, sub) if sub is not None else _shallow(item)
    return out


def _shallow(value: Any) -> Any:
    """Without a subtree Jenkins exports nested objects at depth 0: their class, number/name and url."""
    if isinstance(value, list):
        return [_shallow(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not isinstance(v, dict | list) or k in ("choices",)}
    return value


def default_view(value: JSON) -> JSON:
    return {k: _shallow(v) if isinstance(v, list | dict) else v for k, v in value.items()}


# --- HTTP ------------------------------------------------------------------------------------------


def _handler_for(fake: FakeJenkins) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "Jetty(10.0.20)"

        def log_message(self, format: str, *args: Any) -> None:
            return

        # plumbing

        def _send(
            self,
            status: int,
            body: bytes = b"",
            ctype: str = "text/plain;charset=utf-8",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Jenkins", "2.479.3")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value: Any, status: int = 200) -> None:
            self._send(status, json.dumps(value).encode(), "application/json;charset=utf-8")

        def _error(self, status: int, message: str) -> None:
            self._send(
                status,
                f"<html><body><h2>HTTP ERROR {status} {message}</h2></body></html>".encode(),
                "text/html;charset=utf-8",
            )

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{fake.user}:{fake.token}".encode()).decode()
            if header != expected:
                self._send(
                    401, b"Authentication required", headers={"WWW-Authenticate": 'Basic realm="Jenkins"'}
                )
                return False
            return True

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            values = {
                k: v[-1] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()
            }
            if raw and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                values.update({k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()})
            return values

        def _route(self, method: str) -> None:
            fake._release.wait(timeout=60)
            split = urlsplit(self.path)
            with fake._lock:
                fake.requests.append((method, split.path))
            if not self._authorized():
                return
            segments = [unquote(s) for s in split.path.strip("/").split("/") if s]
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            if method == "POST" and self.headers.get(fake.CRUMB_FIELD) != fake.crumb:
                self._form()
                self._error(403, "No valid crumb was included in the request")
                return
            job_path: list[str] = []
            while len(segments) >= 2 and segments[0] == "job":
                job_path.append(segments[1])
                segments = segments[2:]
            with fake._lock:
                self._dispatch(method, tuple(job_path), segments, query)

        def _dispatch(
            self, method: str, path: tuple[str, ...], rest: list[str], query: dict[str, str]
        ) -> None:
            tree = query.get("tree")
            if not path:
                if method == "GET" and rest == ["api", "json"]:
                    self._view({"_class": "hudson.model.Hudson", "jobs": fake.children_json(())}, tree)
                elif method == "GET" and rest == ["crumbIssuer", "api", "json"]:
                    self._json(
                        {
                            "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                            "crumb": fake.crumb,
                            "crumbRequestField": fake.CRUMB_FIELD,
                        }
                    )
                elif method == "GET" and rest == ["me", "api", "json"]:
                    self._view(
                        {
                            "_class": "hudson.model.User",
                            "id": fake.user,
                            "fullName": fake.user.title(),
                            "absoluteUrl": f"{fake.url}user/{fake.user}",
                            "description": None,
                        },
                        tree,
                    )
                elif (
                    method == "GET"
                    and len(rest) == 5
                    and rest[:2] == ["queue", "item"]
                    and rest[3:] == ["api", "json"]
                ):
                    item = fake.queue.get(int(rest[2])) if rest[2].isdigit() else None
                    if item is None:
                        self._error(404, "Not Found")
                        return
                    fake._poll(item)
                    self._view(fake.queue_json(item), tree)
                else:
                    self._error(404, "Not Found")
                return
            if path in fake.folders and path not in fake.jobs:
                if method == "GET" and rest == ["api", "json"]:
                    self._view(
                        {
                            "_class": "com.cloudbees.hudson.plugins.folder.Folder",
                            "name": path[-1],
                            "fullName": "/".join(path),
                            "url": fake.job_url(path),
                            "jobs": fake.children_json(path),
                        },
                        tree,
                    )
                else:
                    self._error(404, "Not Found")
                return
            job = fake.jobs.get(path)
            if job is None:
                self._error(404, "Not Found")
                return
            if method == "GET" and rest == ["api", "json"]:
                self._view(fake.job_json(job), tree)
            elif method == "POST" and rest in (["build"], ["buildWithParameters"]):
                self._trigger(job, rest[0])
            elif rest and (rest[0].isdigit() or rest[0].startswith("last")):
                self._build_endpoint(method, job, rest, query, tree)
            else:
                self._error(404, "Not Found")

        def _view(self, value: JSON, tree: str | None) -> None:
            if tree is None:
                self._json(default_view(value))
                return
            try:
                self._json(apply_tree(value, parse_tree(tree)))
            except ValueError as e:
                self._error(400, str(e))

        def _trigger(self, job: Job, endpoint: str) -> None:
            form = self._form()
            fake.triggered.append(Trigger(job.path, endpoint, dict(form)))
            if job.deny_build:
                self._error(403, f"{fake.user} is missing the Job/Build permission")
                return
            if endpoint == "buildWithParameters" and not job.parameters:
                self._error(400, f"{'/'.join(job.path)} is not parameterized")
                return
            if endpoint == "build" and job.parameters:
                self._error(400, "This page expects a form submission")
                return
            try:
                values = {p.name: p.accept(form.get(p.name)) for p in job.parameters}
            except ValueError as e:
                self._error(400, str(e))
                return
            item = fake._enqueue(job, values)
            self._send(201, headers={"Location": f"{fake.url}queue/item/{item.id}/"})

        def _build_endpoint(
            self, method: str, job: Job, rest: list[str], query: dict[str, str], tree: str | None
        ) -> None:
            build = self._find_build(job, rest[0])
            if build is None:
                self._error(404, "Not Found")
                return
            tail = rest[1:]
            if method == "GET" and tail == ["api", "json"]:
                self._view(fake.build_json(job, build), tree)
            elif method == "GET" and tail == ["logText", "progressiveText"]:
                data = build.log.encode()
                start = int(query.get("start", "0") or 0)
                if start > len(data):
                    start = 0  # Jenkins' LargeText treats an offset past the end as a rolled-over log
                headers = {"X-Text-Size": str(len(data))}
                if build.building:
                    headers["X-More-Data"] = "true"
                self._send(200, data[start:], headers=headers)
            elif method == "POST" and tail == ["stop"]:
                self._form()
                if build.building:
                    fake._finish(build, "ABORTED")
                self._send(302, headers={"Location": f"{fake.job_url(job.path)}{build.number}/"})
            else:
                self._error(404, "Not Found")

        @staticmethod
        def _find_build(job: Job, ref: str) -> Build | None:
            if ref.isdigit():
                return job.builds.get(int(ref))
            ordered = [job.builds[n] for n in sorted(job.builds, reverse=True)]
            done = [b for b in ordered if not b.building]
            chosen = {
                "lastBuild": ordered[:1],
                "lastCompletedBuild": done[:1],
                "lastSuccessfulBuild": [b for b in done if b.result == "SUCCESS"][:1],
                "lastFailedBuild": [b for b in done if b.result == "FAILURE"][:1],
            }.get(ref, [])
            return chosen[0] if chosen else None

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Jenkins REST API test double")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="bosun")
    parser.add_argument("--token", default="jenkins-test-token")
    parser.add_argument("--job", action="append", default=[], help="a job path like team/deploy (repeatable)")
    args = parser.parse_args(argv)
    fake = FakeJenkins(args.user, args.token, port=args.port)
    for job in args.job:
        fake.add_job(job.split("/"))
    print(f"FAKE_JENKINS_URL={fake.url}", flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
