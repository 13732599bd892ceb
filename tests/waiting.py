"""Waiting on conditions with deadlines: the one polling helper the tests share (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
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
        with contextlib.suppress(TimeoutError):  # pause for `interval`: nothing ever sets this event
            await asyncio.wait_for(asyncio.Event().wait(), interval)


def crds_established(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], *names: str, timeout: float = 60.0
) -> None:
    """Wait until each CRD is served. (``kubectl wait --for=condition=Established`` fails at once, rather
    than waiting, when it catches a just-created CRD before the API server has written any condition.)
    Established is not yet enough: the API server may still answer 503 "Resource kind ... not found. There
    can be a delay ..." for a few seconds on a busy machine, until it serves the kind itself, so the kind
    must also be listed."""
    established = '{.status.conditions[?(@.type=="Established")].status}'

    def served(name: str) -> bool:
        got = kubectl("get", "crd", name, "-o", f"jsonpath={established}", check=False)
        return got.returncode == 0 and got.stdout.strip() == "True"

    def listed(name: str) -> bool:
        return kubectl("get", name, "--all-namespaces", "-o", "name", check=False).returncode == 0

    for name in names:
        eventually(f"CRD {name} to be Established", functools.partial(served, name), timeout)
        eventually(
            f"the API server to serve the kind of CRD {name}", functools.partial(listed, name), timeout
        )
