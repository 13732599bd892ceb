"""Delivering notifications without ever holding up a task: one bounded queue and one worker per sink,
a timeout on every attempt, retries with exponential backoff and jitter.

``Notifier.observe`` runs inside ``Task.write`` (see ``bosun.notify`` for the guarantee): it translates and
queues, and neither raises nor waits. Each sink has its own queue and worker, so a Slack that hangs delays
no webhook, and one sink's messages arrive in the order the changes happened (a proposal before the
task's end). What happens to a message:

- delivered on any 2xx answer;
- retried on no answer within ``BOSUN_NOTIFY_TIMEOUT_SECONDS``, a connection failure, 408, 425, 429 or any
  5xx, up to ``BOSUN_NOTIFY_ATTEMPTS`` attempts (a ``Retry-After`` in seconds is honoured up to the cap);
- given up at once on any other answer (a 3xx included: a receiver that moved must be reconfigured, not
  followed), or when the sink's Secret files cannot be read; the error log says what to check.

Every outcome is logged about the task (``bosun_tools.logs.about``) with the sink's name, never its URL:
a Slack or Teams URL is itself the credential, so httpx's own request lines show the sink's name instead.
A full queue drops the new message, logged: a burst that size while a sink is down is an outage the log
already shows, and an unbounded queue would grow the operator's memory with it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from bosun_tools import logs

from bosun.api.models import API_VERSION, AgentTaskStatus, one_line
from bosun.notify.formats import render
from bosun.notify.notice import Notice, notice_of
from bosun.notify.settings import NotifySettings, Sink, SinkSecretProblem
from bosun.notify.signature import DELIVERY_HEADER, EVENT_HEADER, signed_headers

log = logging.getLogger("bosun.notify")

QUEUE_SIZE = 256
"""Messages one sink may have waiting; a new one beyond is dropped and logged."""
BACKOFF_CAP_SECONDS = 60.0
RETRY_STATUSES = frozenset({408, 425, 429})
"""Client errors that say "later" (timeout, too early, too many requests); every 5xx is retried too."""
ANSWER_SHOWN = 200
"""Characters of a refusing receiver's answer put in the log (Slack says ``invalid_blocks`` there)."""
USER_AGENT = "bosun-operator"


def backoff(
    retry: int, base: float, retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first): ``base`` doubled with each retry up to
    ``BACKOFF_CAP_SECONDS``, of which a random half is waited ("equal jitter"): the wait still grows
    enough for a restarting receiver to come back, and retries of several messages spread out instead of
    arriving together. A receiver's ``Retry-After`` raises the wait to what it asked, within the cap."""
    ceiling = min(BACKOFF_CAP_SECONDS, base * 2.0 ** (retry - 1))
    wait = ceiling / 2 + rand() * ceiling / 2
    if retry_after is None:
        return wait
    return max(wait, min(retry_after, BACKOFF_CAP_SECONDS))


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds; its date form is ignored (the backoff applies)."""
    raw = response.headers.get("Retry-After", "").strip()
    return float(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class Delivery:
    sink: Sink
    notice: Notice
    body: bytes


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    retry: bool = False
    why: str = ""
    retry_after: float | None = None


DELIVERED = Attempt(delivered=True)


class _SinkUrlsHidden(logging.Filter):
    """On httpx's logger: its request lines name the sink instead of the URL (httpx logs every request
    with its URL at INFO, which the operator shows with ``BOSUN_LOG_LEVEL=debug``)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown_as: dict[str, str] = {}

    def hide(self, url: str, sink: str) -> None:
        shown = f"<URL of notification sink {sink}>"
        self.shown_as[url] = self.shown_as[str(httpx.URL(url))] = shown

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is the handler's to report, not the request's
            return True
        hidden = message
        for url, shown in self.shown_as.items():
            hidden = hidden.replace(url, shown)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def _about(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class Notifier:
    """The sinks of ``settings``, each with its queue and worker. Built with ``start`` inside the running
    event loop (kopf's startup handler) and ended with ``stop`` (its cleanup)."""

    def __init__(self, settings: NotifySettings, *, annotation_approvals: bool, queue_size: int = QUEUE_SIZE):
        self.settings = settings
        self.annotation_approvals = annotation_approvals
        self._queues: dict[str, asyncio.Queue[Delivery]] = {
            sink.name: asyncio.Queue(maxsize=queue_size) for sink in settings.sinks
        }
        self._busy: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        # Each attempt is bounded as a whole by asyncio.timeout (connecting, sending, a slow answer).
        self._client = httpx.AsyncClient(
            timeout=None, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )
        self._urls_hidden = _SinkUrlsHidden()

    @classmethod
    def start(
        cls, settings: NotifySettings, *, annotation_approvals: bool, queue_size: int = QUEUE_SIZE
    ) -> Notifier:
        notifier = cls(settings, annotation_approvals=annotation_approvals, queue_size=queue_size)
        logging.getLogger("httpx").addFilter(notifier._urls_hidden)
        notifier._workers = [
            asyncio.create_task(notifier._work(sink), name=f"bosun-notify-{sink.name}")
            for sink in settings.sinks
        ]
        log.info(
            "notifying %s",
            "; ".join(f"sink {s.name} ({s.kind}) of {', '.join(sorted(s.events))}" for s in settings.sinks),
        )
        return notifier

    async def stop(self) -> None:
        """Give what is queued or in flight one attempt's time to finish, then stop; what is left is logged
        as not delivered (see ``bosun.notify``: at most once)."""
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                await asyncio.gather(*(queue.join() for queue in self._queues.values()))
        except TimeoutError:
            left = sum(queue.qsize() for queue in self._queues.values()) + len(self._busy)
            log.warning("stopping with %d notification(s) not delivered", left)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._urls_hidden)

    def observe(self, body: Mapping[str, Any], status: AgentTaskStatus) -> None:
        """A ``bosun.steps.task.PhaseObserver``: queue one message for each sink interested in the phase
        ``status`` (as stored in ``body``) entered. Never raises and never waits, so a notification can
        neither fail nor hold up the status write it follows."""
        try:
            notice = notice_of(body, status, annotation_approvals=self.annotation_approvals)
            if notice is None:
                return
            for sink in self.settings.sinks:
                if notice.event in sink.events:
                    self._enqueue(Delivery(sink, notice, render(sink.kind, notice)))
        except Exception:
            log.exception(
                "could not prepare a notification about agenttask %s; nothing is sent", _about(body)
            )

    def _enqueue(self, delivery: Delivery) -> None:
        try:
            self._queues[delivery.sink.name].put_nowait(delivery)
        except asyncio.QueueFull:
            log.error(
                "notification sink %s has %d messages waiting, so the %s notification of agenttask %s/%s is "
                "dropped; the sink is down or too slow (see the lines before)",
                delivery.sink.name,
                self._queues[delivery.sink.name].qsize(),
                delivery.notice.event,
                delivery.notice.namespace,
                delivery.notice.name,
            )

    async def _work(self, sink: Sink) -> None:
        queue = self._queues[sink.name]
        while True:
            delivery = await queue.get()
            self._busy.add(sink.name)
            notice = delivery.notice
            try:
                with logs.about(
                    apiVersion=API_VERSION,
                    kind="AgentTask",
                    namespace=notice.namespace,
                    name=notice.name,
                    uid=notice.uid,
                ):
                    await self._deliver(delivery)
            except Exception:
                log.exception("notification to sink %s failed unexpectedly; it is dropped", sink.name)
            finally:
                self._busy.discard(sink.name)
                queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        attempts = self.settings.attempts
        what = (
            f"the {delivery.notice.event} notification (delivery {delivery.notice.delivery_id}) to sink "
            f"{delivery.sink.name}"
        )
        for attempt in range(1, attempts + 1):
            result = await self._attempt(delivery)
            if result.delivered:
                log.info("%s delivered (attempt %d of %d)", what, attempt, attempts)
                return
            if not result.retry or attempt == attempts:
                log.error(
                    "%s was not delivered (attempt %d of %d: %s); given up, the task is unaffected%s",
                    what,
                    attempt,
                    attempts,
                    result.why,
                    "" if result.retry else "; check the sink's URL and, for a webhook, its signing key",
                )
                return
            wait = backoff(attempt, self.settings.backoff_seconds, result.retry_after)
            log.warning(
                "%s failed (attempt %d of %d: %s); retrying in %.1fs",
                what,
                attempt,
                attempts,
                result.why,
                wait,
            )
            await asyncio.sleep(wait)

    async def _attempt(self, delivery: Delivery) -> Attempt:
        sink, notice, timeout = delivery.sink, delivery.notice, self.settings.timeout_seconds
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: notice.event,
            DELIVERY_HEADER: notice.delivery_id,
        }
        try:
            url = sink.url()
            if sink.kind == "webhook":
                headers |= signed_headers(sink.signing_key(), int(time.time()), delivery.body)
        except SinkSecretProblem as exc:
            return Attempt(delivered=False, why=str(exc))
        self._urls_hidden.hide(url, sink.name)
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.post(url, content=delivery.body, headers=headers)
        except TimeoutError:
            return Attempt(delivered=False, retry=True, why=f"no answer within {timeout:g}s")
        except httpx.HTTPError as exc:
            why = f"{type(exc).__name__}: {exc}".replace(url, f"<URL of sink {sink.name}>")
            return Attempt(delivered=False, retry=True, why=why)
        if response.is_success:
            return DELIVERED
        answer = one_line(response.text, ANSWER_SHOWN) if response.text.strip() else ""
        why = f"HTTP {response.status_code}" + (f" {answer}" if answer else "")
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            return Attempt(delivered=False, retry=True, why=why, retry_after=_retry_after(response))
        return Attempt(delivered=False, why=f"{why}: the receiver refused it")
