"""Which sinks the operator notifies and about what (the administrator's environment), and where each
sink's URL and signing key are (files of a mounted Secret).

| variable | meaning |
|---|---|
| BOSUN_NOTIFY_SINKS | JSON list of sinks, each ``{"name": "ops", "type": "webhook", "events": [...]}``: |
| | ``type`` is ``webhook``, ``slack`` or ``teams``; ``events`` is optional. Unset or empty: none |
| BOSUN_NOTIFY_EVENTS | comma-separated phases notified by sinks that list no ``events``: any of |
| | AwaitingApproval, Succeeded, Failed, Denied, Expired, Cancelled (unset or empty: AwaitingApproval) |
| BOSUN_NOTIFY_SECRET_DIR | the directory the notification Secret is mounted at (default /etc/bosun/notify) |
| BOSUN_NOTIFY_TIMEOUT_SECONDS | bound of one delivery attempt, connecting included (default 5) |
| BOSUN_NOTIFY_ATTEMPTS | attempts per message before it is given up (default 6) |
| BOSUN_NOTIFY_BACKOFF_SECONDS | wait before the first retry, doubling with each one, jittered (default 2) |

Per sink, the Secret holds ``<name>.url`` and, for a webhook, ``<name>.signing-key`` (at least 32 bytes,
e.g. ``openssl rand -hex 32``). Why files of a mounted Secret rather than the API or the environment: the
operator's own identity can read no Secret at all (a stolen token must not hand out Slack URLs or Jenkins
keys), a URL in an environment variable shows in ``kubectl describe pod`` and every crash dump, and the
kubelet refreshes a mounted Secret in place, so the files are read again for every delivery and a rotated
URL or key applies without a restart. They are also read once at start, so that a missing key stops the
operator saying which one to add instead of failing the first notification. A URL never comes from a
task: whoever writes a task could otherwise send its contents anywhere.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bosun.core.words import names
from bosun.notify.notice import AWAITING_APPROVAL, NOTIFIABLE

SINK_KINDS = ("webhook", "slack", "teams")
SINK_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""A sink's name prefixes its keys in the Secret, so it must be a valid key and read well in logs."""
SINK_FIELDS = frozenset({"name", "type", "events"})
DEFAULT_SECRET_DIR = "/etc/bosun/notify"
MIN_SIGNING_KEY_BYTES = 32
"""As long as the SHA-256 output: a shorter key is the weak point of the HMAC."""
EXAMPLE = '[{"name": "ops", "type": "webhook"}, {"name": "chat", "type": "slack", "events": ["Failed"]}]'


class SinkSecretProblem(ValueError):
    """A sink's URL or signing key cannot be read or is not usable. The message names the file and the
    Secret key to fix, never its content."""


@dataclass(frozen=True)
class Sink:
    name: str
    kind: str
    """One of ``SINK_KINDS``."""
    events: frozenset[str]
    secret_dir: Path

    def url(self) -> str:
        """The receiver's URL, read now from the mounted Secret (which the kubelet keeps current)."""
        key = f"{self.name}.url"
        url = self._read(key).decode(errors="replace").strip()
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise SinkSecretProblem(
                f"notification sink {self.name}: {self.secret_dir / key} does not hold an http(s) URL; put "
                f"the receiver's URL under the key {key} of the notification Secret"
            )
        return url

    def signing_key(self) -> bytes:
        """The webhook's HMAC key, read now like the URL."""
        key = f"{self.name}.signing-key"
        value = self._read(key).strip()
        if len(value) < MIN_SIGNING_KEY_BYTES:
            raise SinkSecretProblem(
                f"notification sink {self.name}: {self.secret_dir / key} holds {len(value)} bytes, and a "
                f"signing key needs at least {MIN_SIGNING_KEY_BYTES}; put one under the key {key} of the "
                "notification Secret, e.g. from `openssl rand -hex 32`"
            )
        return value

    def check(self) -> None:
        """Read everything a delivery to this sink will read, raising what to fix."""
        self.url()
        if self.kind == "webhook":
            self.signing_key()

    def _read(self, key: str) -> bytes:
        path = self.secret_dir / key
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SinkSecretProblem(
                f"notification sink {self.name}: {path} is missing; add the key {key} to the notification "
                f"Secret mounted at {self.secret_dir} (chart value notifications.secret)"
            ) from None
        except OSError as exc:
            raise SinkSecretProblem(
                f"notification sink {self.name}: cannot read {path} ({exc.strerror}); check how the "
                "notification Secret is mounted"
            ) from None


def _events(items: Any, where: str) -> frozenset[str]:
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(
            f"{where} must list events, any of {', '.join(NOTIFIABLE)}; leave it out for BOSUN_NOTIFY_EVENTS"
        )
    wrong = [item for item in items if item not in NOTIFIABLE]
    if wrong:
        raise ValueError(
            f"{where}: {', '.join(map(repr, wrong))} is not an event to notify; use any of "
            f"{', '.join(NOTIFIABLE)}"
        )
    return frozenset(items)


def _sink(entry: Any, where: str, default_events: frozenset[str], secret_dir: Path) -> Sink:
    if not isinstance(entry, dict):
        raise ValueError(f'{where} is not an object; write each sink as {{"name": ..., "type": ...}}')
    unknown = sorted(set(entry) - SINK_FIELDS)
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {', '.join(unknown)}; a sink has name, type, events")
    name, kind = entry.get("name"), entry.get("type")
    if not isinstance(name, str) or not SINK_NAME.match(name):
        raise ValueError(
            f"{where}.name={name!r} is not a sink name: lowercase letters, digits and '-', at most 63 (it "
            "prefixes the sink's keys in the notification Secret)"
        )
    if kind not in SINK_KINDS:
        raise ValueError(f"{where}.type={kind!r} is not one of {', '.join(SINK_KINDS)}")
    events = default_events if "events" not in entry else _events(entry["events"], f"{where}.events")
    return Sink(name=name, kind=kind, events=events, secret_dir=secret_dir)


def _sinks(env: Mapping[str, str], default_events: frozenset[str], secret_dir: Path) -> tuple[Sink, ...]:
    raw = env.get("BOSUN_NOTIFY_SINKS", "").strip()
    if not raw:
        return ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"BOSUN_NOTIFY_SINKS is not JSON ({exc.msg} at character {exc.pos}); set it to a list such as "
            f"{EXAMPLE}"
        ) from None
    if not isinstance(entries, list):
        raise ValueError(f"BOSUN_NOTIFY_SINKS must be a JSON list of sinks, such as {EXAMPLE}")
    sinks = tuple(
        _sink(entry, f"BOSUN_NOTIFY_SINKS[{index}]", default_events, secret_dir)
        for index, entry in enumerate(entries)
    )
    seen: set[str] = set()
    for sink in sinks:
        if sink.name in seen:
            raise ValueError(f"BOSUN_NOTIFY_SINKS names sink {sink.name} twice; give each sink its own name")
        seen.add(sink.name)
    return sinks


def _number(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise ValueError(f"{key}={raw!r} is not a number from {low:g} to {high:g}; e.g. {default:g}")
    return value


@dataclass(frozen=True)
class NotifySettings:
    sinks: tuple[Sink, ...] = ()
    """No sinks: nothing is notified, and no background sender runs."""
    timeout_seconds: float = 5.0
    attempts: int = 6
    backoff_seconds: float = 2.0
    """The wait before the first retry; each retry doubles it (see ``bosun.notify.sender.backoff``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifySettings:
        """The settings, with every sink's Secret files read once: a bad value stops the operator at start,
        saying what to fix."""
        default_events = (
            _events(list(names(env["BOSUN_NOTIFY_EVENTS"])), "BOSUN_NOTIFY_EVENTS")
            if names(env.get("BOSUN_NOTIFY_EVENTS", ""))
            else frozenset({AWAITING_APPROVAL})
        )
        secret_dir = Path(env.get("BOSUN_NOTIFY_SECRET_DIR", "").strip() or DEFAULT_SECRET_DIR)
        sinks = _sinks(env, default_events, secret_dir)
        for sink in sinks:
            sink.check()
        attempts = _number(env, "BOSUN_NOTIFY_ATTEMPTS", 6.0, 1, 20)
        if not attempts.is_integer():
            raise ValueError(
                f"BOSUN_NOTIFY_ATTEMPTS={env['BOSUN_NOTIFY_ATTEMPTS']!r} is not a whole number; e.g. 6"
            )
        return cls(
            sinks=sinks,
            timeout_seconds=_number(env, "BOSUN_NOTIFY_TIMEOUT_SECONDS", 5.0, 0.1, 300),
            attempts=int(attempts),
            backoff_seconds=_number(env, "BOSUN_NOTIFY_BACKOFF_SECONDS", 2.0, 0.01, 300),
        )
