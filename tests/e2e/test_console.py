"""The web console in a real browser: Debian's Chromium driven by Playwright, against ``bosun console``
processes run as bob, alice and carol with their own kubeconfigs (as each would run it on their machine),
the real API server, its admission policies and an operator process.

bob asks in the console; the proposal and its diff arrive on his page live, without a reload; his own
Approve is refused with the four-eyes message; alice, whose list shows the task under "Waiting for you"
as soon as it is proposed, opens the same page and approves; bob's page shows execution and verification
as they happen; carol sees nothing she may not list. Screenshots of each page are written to
``build/artefacts/console`` (``BOSUN_ARTEFACTS`` elsewhere), and how long a status change took to reach
the browser is written beside them (measured, not asserted).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ClusterAccess
from tests.e2e.conftest import (
    ROOT,
    ConsoleProcess,
    Operator,
    deployment,
    get,
    status_of,
    wait_phase,
)

pytestmark = pytest.mark.cluster

CHROMIUM = Path(os.environ.get("BOSUN_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(os.environ.get("BOSUN_ARTEFACTS", ROOT / "build" / "artefacts")) / "console"
CHROMIUM_ARGS = [
    # This machine's network is closed: without these Chromium keeps trying to reach Google's services.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-gpu",
]
LIVE = 30_000
"""Milliseconds a live change may take to show before the test fails (the operator works meanwhile)."""
expect.set_options(timeout=LIVE)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (`apt-get install chromium`, as .ci/run does) "
            "or point BOSUN_CHROMIUM at a Chromium executable"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def open_page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(LIVE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.bosun_errors = errors  # type: ignore[attr-defined]
    return page


def no_script_errors(page: Page) -> None:
    """The page's own script raised nothing and the Content-Security-Policy refused nothing."""
    errors: list[str] = page.bosun_errors  # type: ignore[attr-defined]
    assert not errors, f"errors in the browser on {page.url}: {errors}"


def shoot(page: Page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def mark_loaded(page: Page) -> None:
    """A mark that a reload or navigation would wipe: its survival proves a change arrived live."""
    page.evaluate("window.bosunMark = 'still the same document'")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.bosunMark === 'still the same document'"))


@dataclass
class PhaseClock:
    """When the API server's watch (as the admin, outside the console) first reported each phase."""

    seen: dict[str, float] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None

    def start(self, kubectl_path: Path, env: dict[str, str], namespace: str, name: str) -> None:
        self.proc = subprocess.Popen(
            [
                str(kubectl_path),
                "-n",
                namespace,
                "get",
                "agenttask",
                name,
                "-w",
                "-o",
                "jsonpath={.status.phase}{'\\n'}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            phase = line.strip()
            if phase:
                self.seen.setdefault(phase, time.time())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def test_bob_asks_in_the_browser_his_approval_is_refused_alice_approves_and_it_runs_live(
    cluster: ClusterAccess,
    kubectl: Any,
    namespace: str,
    users: None,
    operator: Operator,
    browser: Browser,
    consoles: Callable[..., ConsoleProcess],
) -> None:
    deployment(kubectl, namespace)
    bob, alice, carol = consoles("bob"), consoles("alice"), consoles("carol")

    # alice's list is open before anything is asked: the task must arrive in it by itself.
    alice_list = open_page(alice_browser := browser)
    alice_list.goto(f"{alice.url}/?namespace={namespace}")
    expect(alice_list.locator("#live")).to_be_visible()
    expect(alice_list.locator("#mine-empty")).to_be_visible()
    mark_loaded(alice_list)

    page = open_page(browser)
    page.goto(f"{bob.url}/?namespace={namespace}")
    expect(page.locator("#viewer")).to_contain_text("signed in as bob")
    page.fill("textarea[name=request]", f"scale deployment web in {namespace} to 4")
    page.click("#ask button[type=submit]")
    expect(page.locator("h1")).to_contain_text("scale-deployment-web-in-")
    name = page.url.rsplit("/", 1)[1]
    mark_loaded(page)
    clock = PhaseClock()
    clock.start(cluster.bin_dir / "kubectl", cluster.env, namespace, name)
    try:
        # The proposal and its diff appear without a reload.
        expect(page.locator("#phase")).to_have_text("AwaitingApproval")
        expect(page.locator("pre.diff .d-remove")).to_contain_text("replicas: 3")
        expect(page.locator("pre.diff .d-add")).to_contain_text("replicas: 4")
        plan_hash = status_of(kubectl, namespace, name)["proposal"]["hash"]
        expect(page.locator(".hash code")).to_have_text(plan_hash)
        expect(page.locator("#policy")).to_contain_text("Still needed: a decision on revision 1")
        expect(page.locator("#rule")).to_contain_text("Policy: four-eyes on, 1 approver")
        assert same_document(page)

        # alice's list moved it under "Waiting for you", live.
        row = alice_list.locator(f"#mine tr[data-phase=AwaitingApproval] a:text('{name}')")
        expect(row).to_be_visible()
        assert same_document(alice_list)
        shoot(alice_list, "tasks")

        # bob's own Approve is refused with the four-eyes message, and nothing runs.
        page.click("#approve-all")
        expect(page.locator("#notice")).to_contain_text("Rejected (FourEyes): bob requested this task")
        expect(page.locator("#notice")).to_contain_text("with four-eyes on")
        assert status_of(kubectl, namespace, name)["phase"] == "AwaitingApproval"
        mark_loaded(page)

        # alice opens the same page in her console, sees the diff, and approves.
        review = open_page(alice_browser)
        review.goto(f"{alice.url}/tasks/{namespace}/{name}")
        expect(review.locator("pre.diff .d-add")).to_contain_text("replicas: 4")
        expect(review.locator(".timeline")).to_contain_text("bob approved (not counted)")
        shoot(review, "task-awaiting-approval")
        review.fill("input[name=reason]", "change review 42")
        review.click("#approve-all")
        expect(review.locator("#notice")).to_contain_text("Accepted (Approved)")

        # bob's page, never reloaded, shows the execution and the verification as they happen.
        expect(page.locator("#phase")).to_have_text("Succeeded")
        expect(page.locator(".timeline li[data-kind=execution]")).to_contain_text("succeeded: k8s_scale")
        expect(page.locator(".timeline li[data-kind=verification]")).to_contain_text("passed")
        expect(page.locator(".timeline li[data-kind=approval]").last).to_contain_text(
            "alice approved revision 1"
        )
        expect(page.locator("#events")).to_contain_text("approved steps s1 by alice")
        expect(page.locator("#events")).to_contain_text("GrantRejected")
        assert same_document(page)
        shoot(page, "task-succeeded")
        done = wait_phase(kubectl, namespace, name, "Succeeded")
        assert [a["approver"]["user"] for a in done["approvals"] if a["accepted"]] == ["alice"]
        grants = json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"]
        [accepted] = [g for g in grants if g["spec"].get("reason") == "change review 42"]
        assert accepted["spec"]["planHash"] == plan_hash
        assert accepted["metadata"]["labels"]["bosun.dev/via"] == "bosun-console"
        assert accepted["metadata"]["annotations"]["bosun.dev/approver"] == "alice"
        shown = page.evaluate("window.bosunShown")
    finally:
        clock.stop()
    record_latency(clock.seen, shown)

    # A follow-up on the finished task: a new task carrying it as context, linked both ways in the UI.
    page.fill("#follow-up textarea[name=request]", f"scale deployment web in {namespace} to 2")
    page.click("#follow-up button[type=submit]")
    expect(page.locator("h1")).not_to_contain_text(name)
    follow_up = page.url.rsplit("/", 1)[1]
    expect(page.locator(f".headline a[href$='/{name}']")).to_have_text(name)
    expect(page.locator("#phase")).to_have_text("AwaitingApproval")
    assert get(kubectl, namespace, "agenttask", follow_up)["spec"]["followUpOf"] == name

    # The overview counts what happened: one approval counted, bob's not counted.
    overview = open_page(browser)
    overview.goto(f"{bob.url}/overview?namespace={namespace}")
    expect(overview.locator("#phases")).to_contain_text("Succeeded")
    expect(overview.locator("#approvals tr:has-text('approved (counted)') td.num")).to_have_text("1")
    expect(overview.locator("#approvals tr:has-text('not counted') td.num")).to_have_text("1")
    shoot(overview, "overview")

    # carol has no rights in the namespace: she is told so, and shown nothing.
    snoop = open_page(browser)
    snoop.goto(f"{carol.url}/?namespace={namespace}")
    expect(snoop.locator("#problem")).to_contain_text(
        f"carol may not list agenttasks.bosun.dev in namespace {namespace}"
    )
    assert snoop.locator("table.tasks").count() == 0
    assert name not in snoop.content()
    for opened in (page, alice_list, review, overview, snoop):
        no_script_errors(opened)
    answer = snoop.goto(f"{carol.url}/tasks/{namespace}/{name}")
    assert answer is not None
    assert answer.status == 403
    expect(snoop.locator("#problem")).to_contain_text(
        f"carol may not get agenttasks.bosun.dev in namespace {namespace}"
    )
    assert "scale deployment" not in snoop.content()


def record_latency(seen: dict[str, float], shown: list[dict[str, Any]]) -> None:
    """How long after the API server reported each phase bob's page showed it (written, not asserted)."""
    lines = []
    for entry in shown:
        phase, at = entry["phase"], entry["at"] / 1000
        if phase in seen:
            lines.append(f"{phase}: shown {1000 * (at - seen[phase]):.0f} ms after kubectl's watch saw it")
            seen.pop(phase)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "latency.txt").write_text("\n".join(lines) + "\n")
    print("status change to browser:", "; ".join(lines))


def test_a_stale_or_forged_decision_does_nothing_and_a_deny_ends_the_task(
    kubectl: Any,
    namespace: str,
    users: None,
    operator: Operator,
    consoles: Callable[..., ConsoleProcess],
) -> None:
    """Without a browser: a POST quoting an old hash decides nothing; one without the session's CSRF token,
    or from another origin, is refused before any request reaches the API server; a Deny with the hash
    shown ends the task Denied."""
    deployment(kubectl, namespace)
    alice = consoles("alice")
    kubectl(
        "-n",
        namespace,
        "create",
        "-f",
        "-",
        user="bob",
        input=json.dumps(
            {
                "apiVersion": "bosun.dev/v1alpha1",
                "kind": "AgentTask",
                "metadata": {"name": "scale"},
                "spec": {"request": f"scale deployment web in {namespace} to 2"},
            }
        ),
    )
    proposal = wait_phase(kubectl, namespace, "scale", "AwaitingApproval")["proposal"]
    with httpx.Client(base_url=alice.url, follow_redirects=False, timeout=60) as browser_like:
        page = browser_like.get(f"/tasks/{namespace}/scale")
        assert page.status_code == 200
        csrf = _field(page.text, "csrf")
        assert _field(page.text, "hash") == proposal["hash"]
        stale = "sha256:" + "0" * 64
        answer = browser_like.post(
            f"/tasks/{namespace}/scale/decide", data={"csrf": csrf, "hash": stale, "action": "approve-all"}
        )
        assert answer.status_code == 409
        assert "the proposal changed since the page was loaded" in answer.text
        forged = browser_like.post(
            f"/tasks/{namespace}/scale/decide",
            data={"csrf": "0" * 64, "hash": proposal["hash"], "action": "approve-all"},
        )
        assert forged.status_code == 403
        assert "CSRF token" in forged.text
        elsewhere = browser_like.post(
            f"/tasks/{namespace}/scale/decide",
            data={"csrf": csrf, "hash": proposal["hash"], "action": "approve-all"},
            headers={"Origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        assert "evil.example" in elsewhere.text
        unknown = browser_like.post(
            f"/tasks/{namespace}/scale/decide",
            data={"csrf": csrf, "hash": proposal["hash"], "action": "approve-selected", "steps": ["s9"]},
        )
        assert unknown.status_code == 422
        assert "s9" in unknown.text
        grants = json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"]
        assert grants == []
        assert get(kubectl, namespace, "agenttask", "scale")["status"]["phase"] == "AwaitingApproval"

        # With the hash it was shown, alice's Deny ends the task Denied; nothing ran.
        denied = browser_like.post(
            f"/tasks/{namespace}/scale/decide",
            data={"csrf": csrf, "hash": proposal["hash"], "action": "deny", "reason": "not during the sale"},
        )
        assert denied.status_code == 303
        verdict = browser_like.get(denied.headers["location"])
        assert "Accepted (Denied)" in verdict.text
    status = wait_phase(kubectl, namespace, "scale", "Denied")
    [grant] = json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"]
    assert (grant["spec"]["decision"], grant["spec"]["reason"]) == ("Deny", "not during the sale")
    assert grant["metadata"]["annotations"]["bosun.dev/approver"] == "alice"
    assert not [s for s in status["steps"] if s["state"] in ("Executing", "Succeeded")]


def _field(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
