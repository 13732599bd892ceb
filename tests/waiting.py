"""Waiting on conditions with deadlines: the one polling helper the tests share (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


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


ADMISSION_PENDING = "There can be a delay between when CustomResourceDefinitions are created"
"""What kube-apiserver answers (503) while a mutating admission policy cannot yet type its patch."""


def admitted(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    *docs: Mapping[str, Any],
    namespace: str = "default",
    timeout: float = 60.0,
) -> None:
    """Wait until the API server admits each of ``docs``: a server-side dry run of its creation passes.

    A served kind is not yet an admissible one. The identity policies are MutatingAdmissionPolicies, and
    kube-apiserver types their patches with the kind's OpenAPI schema, which it publishes a moment after
    the CRD is served; until then every create of the kind is refused with 503 "Resource kind ... not
    found. There can be a delay ...". A dry run goes through admission and stores nothing. Any other
    refusal fails at once with the API server's words (the document itself is wrong)."""

    def passes(doc: Mapping[str, Any]) -> bool:
        got = kubectl(
            "create", "-n", namespace, "--dry-run=server", "-o", "name", "-f", "-",
            input=json.dumps(doc), check=False,
        )  # fmt: skip
        if got.returncode == 0:
            return True
        if ADMISSION_PENDING in got.stderr:
            return False
        raise AssertionError(f"a dry-run create of {doc['kind']} was refused: {got.stderr.strip()}")

    for doc in docs:
        eventually(f"the API server to admit a {doc['kind']}", functools.partial(passes, doc), timeout)
