"""Waiting on conditions with deadlines: the one polling helper the tests share (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable


def eventually(what: str, check: Callable[[], bool], timeout: float = 60.0, interval: float = 0.2) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        pause.wait(interval)


async def eventually_async(
    what: str, check: Callable[[], Awaitable[bool]], within: float = 60.0, interval: float = 0.2
) -> None:
    """The asyncio twin of :func:`eventually`."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.wait({asyncio.ensure_future(asyncio.Event().wait())}, timeout=interval)
