"""One log format for the operator and the tool server (``BOSUN_LOG_FORMAT``, ``BOSUN_LOG_LEVEL``).

``text`` (the default) is for people: ``[time] logger [LEVEL] [namespace/name] message``. ``json`` is for
log pipelines: one object per line with ``timestamp``, ``severity``, ``logger``, ``message`` and, on every
line about one Kubernetes object, ``object`` (``apiVersion``, ``kind``, ``namespace``, ``name``, ``uid``) —
the same key and shape kopf gives its own per-object lines, so ``object.name="scale-web"`` finds everything
about a task, from kopf's handler lines to the operator's reconcile.

The operator's code says which task a line is about by running inside :func:`about` (the reconcile of one
task), instead of every ``log`` call carrying it. The operator's loggers and the tools' take it from
there: the operator calls its tools in process within the reconcile (``bosun_tools.local``), so a tool's
line is about the task whose call it is. Other libraries' lines (kopf's, an HTTP client's) never take it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

LOG_FORMATS = ("text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
REF_KEYS = ("apiVersion", "kind", "namespace", "name", "uid")
CONTEXT_LOGGERS = ("bosun", "bosun_tools")
"""Loggers whose lines take the object from :func:`about` (prefixes: ``bosun``, ``bosun.*``, ...)."""
ROUTED = ("fastmcp", "uvicorn", "uvicorn.error", "uvicorn.access", "mcp")
"""Libraries that install their own handlers; routed to the root handler so every line has one format."""

_OBJECT: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "bosun_log_object", default=None
)


@contextlib.contextmanager
def about(**ref: Any) -> Iterator[None]:
    """Lines logged inside this block (by the operator's loggers) are about this object."""
    token = _OBJECT.set({k: ref[k] for k in REF_KEYS if ref.get(k)})
    try:
        yield
    finally:
        _OBJECT.reset(token)


class _ObjectFromContext(logging.Filter):
    """Attach the object of :func:`about` as ``k8s_ref``, the attribute kopf's object loggers set."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "k8s_ref") and record.name.split(".", 1)[0] in CONTEXT_LOGGERS:
            ref = _OBJECT.get()
            if ref:
                record.k8s_ref = dict(ref)
        return True


def _ref(record: logging.LogRecord) -> dict[str, Any] | None:
    ref = getattr(record, "k8s_ref", None)
    if not isinstance(ref, Mapping):
        return None
    return {k: ref[k] for k in REF_KEYS if ref.get(k)} or None


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        ref = _ref(record)
        if ref and ref.get("name"):
            where = f"{ref['namespace']}/{ref['name']}" if ref.get("namespace") else ref["name"]
            record = logging.makeLogRecord({**record.__dict__, "message": f"[{where}] {record.message}"})
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "severity": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = _ref(record)
        if ref:
            entry["object"] = ref
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(log_format: str = "text", level: str = "info") -> None:
    """Log to stderr in ``log_format`` at ``level`` (names as in ``LEVELS``), replacing earlier handlers."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"BOSUN_LOG_FORMAT={log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    if level not in LEVELS:
        raise ValueError(f"BOSUN_LOG_LEVEL={level!r} is not one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ObjectFromContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    for name in ROUTED:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    # Request lines of the API and model clients are noise at info.
    logging.getLogger("httpx").setLevel(max(LEVELS[level], logging.WARNING))
    # As ``kopf.configure`` does: asyncio's own lines only when debugging (a second SIGTERM, for one, makes
    # it log a traceback from kopf's signal handler).
    logging.getLogger("asyncio").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL + 1)
