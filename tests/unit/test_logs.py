"""One log format for operator and tool server: lines about a task name it, in text and in JSON."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from bosun_tools import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The handler ``logs.configure`` installs, writing to a buffer; the loggers it sets restored after."""
    touched = [logging.getLogger(name) for name in ("", "httpx", "asyncio")]
    saved = [(logger, logger.handlers[:], logger.level) for logger in touched]
    yield io.StringIO()
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def configure(log_format: str, out: io.StringIO) -> None:
    logs.configure(log_format, "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)


def test_json_lines_name_the_task_of_the_reconcile(captured: io.StringIO) -> None:
    configure("json", captured)
    log = logging.getLogger("bosun")
    with logs.about(kind="AgentTask", namespace="shop", name="scale-web", uid="u-1"):
        log.warning("step %s failed", "s1")
    log.info("sweep done")
    about, plain = (json.loads(line) for line in captured.getvalue().splitlines())
    assert about["message"] == "step s1 failed"
    assert (about["severity"], about["logger"]) == ("warning", "bosun")
    assert about["object"] == {"kind": "AgentTask", "namespace": "shop", "name": "scale-web", "uid": "u-1"}
    assert "object" not in plain
    assert plain["timestamp"].endswith("Z")


def test_kopf_object_lines_keep_their_own_reference(captured: io.StringIO) -> None:
    """kopf's per-object loggers set ``k8s_ref``: it wins, and has the same key and shape."""
    configure("json", captured)
    ref = {"apiVersion": "bosun.dev/v1alpha1", "kind": "ApprovalGrant", "namespace": "shop", "name": "g"}
    with logs.about(kind="AgentTask", namespace="shop", name="other"):
        logging.getLogger("kopf.objects").info("Handler succeeded.", extra={"k8s_ref": ref})
    assert json.loads(captured.getvalue())["object"] == ref


def test_the_operators_and_the_tools_loggers_take_the_task_from_the_context(captured: io.StringIO) -> None:
    """The operator calls its tools within the reconcile, so a tool's line is about that task; another
    library's line (here kopf's) is not."""
    configure("json", captured)
    with logs.about(kind="AgentTask", namespace="shop", name="scale-web"):
        logging.getLogger("bosun_tools.toolsets.kubernetes").info("tool line")
        logging.getLogger("kopf.activities").info("library line")
    tool, library = (json.loads(line) for line in captured.getvalue().splitlines())
    assert tool["object"]["name"] == "scale-web"
    assert "object" not in library


def test_the_task_follows_concurrent_reconciles(captured: io.StringIO) -> None:
    configure("json", captured)

    async def reconcile(name: str, gate: asyncio.Event, other: asyncio.Event) -> None:
        with logs.about(kind="AgentTask", namespace="shop", name=name):
            other.set()
            await gate.wait()
            logging.getLogger("bosun").info("finished %s", name)

    async def both() -> None:
        a, b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(reconcile("one", a, b), reconcile("two", b, a))

    asyncio.run(both())
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert {(line["message"], line["object"]["name"]) for line in lines} == {
        ("finished one", "one"),
        ("finished two", "two"),
    }


def test_text_lines_are_prefixed_with_the_task(captured: io.StringIO) -> None:
    configure("text", captured)
    with logs.about(kind="AgentTask", namespace="shop", name="scale-web"):
        logging.getLogger("bosun").info("proposal written")
    line = captured.getvalue().strip()
    assert line.endswith("bosun                [INFO    ] [shop/scale-web] proposal written")


def test_unknown_formats_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="BOSUN_LOG_FORMAT='xml' is not one of text, json"):
        logs.configure("xml")
