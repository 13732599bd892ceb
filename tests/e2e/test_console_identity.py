"""The console in the chart's mode (``--forwarded-token``) holds no rights: every request it makes to the
API server carries the token the authenticating proxy forwarded, and nothing else.

The console is started as the chart runs it, against the real API server, with the CA published in
``kube-root-ca.crt`` — and once with the admin's kubeconfig given for the cluster's address, to show that
even then none of its credentials is used. Without a forwarded token every page, stream and action is
refused (401); with the chart's own console ServiceAccount's token every action is refused by RBAC and
nothing is created; with a person's token (a ServiceAccount ``dave`` with the task roles, as an OIDC user
would come) the console lists, asks and approves, and admission stamps dave, not the console, as the one
who did it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ClusterAccess
from tests.e2e.conftest import USER_ROLE, Operator, deployment, get, wait_phase
from tests.e2e.test_console import ConsoleProcess
from tests.integration.test_chart_console import ConsoleServiceAccount, console_account  # noqa: F401

pytestmark = pytest.mark.cluster

PAGES = ["/", "/overview", "/tasks/{ns}/scale", "/stream/tasks?namespace={ns}"]


def _form_token(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def _bob_task(kubectl: Any, namespace: str) -> dict[str, Any]:
    task = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": "scale"},
        "spec": {"request": f"scale deployment web in {namespace} to 2"},
    }
    deployment(kubectl, namespace)
    kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(task), user="bob")
    return wait_phase(kubectl, namespace, "scale", "AwaitingApproval")


def chart_mode(consoles: Callable[..., ConsoleProcess], cluster: ConsoleServiceAccount) -> ConsoleProcess:
    """The console as the chart runs it: forwarding tokens, given only the API server and its CA."""
    return consoles(
        "admin",
        "--forwarded-token",
        "--api-server",
        cluster.api_server,
        "--certificate-authority",
        str(cluster.ca_file),
    )


def test_without_a_forwarded_token_nothing_is_served_even_with_the_admins_kubeconfig_at_hand(
    cluster: ClusterAccess,
    namespace: str,
    consoles: Callable[..., ConsoleProcess],
) -> None:
    console = consoles("admin", "--forwarded-token", "--kubeconfig", str(cluster.kubeconfig))
    with httpx.Client(base_url=console.url, timeout=30) as anonymous:
        for path in PAGES:
            answer = anonymous.get(path.format(ns=namespace))
            assert answer.status_code == 401, (path, answer.text)
            assert "no bearer token was forwarded" in answer.text
            assert answer.headers["www-authenticate"].startswith("Bearer")
        for action in ("/ask", f"/tasks/{namespace}/scale/decide"):
            assert (
                anonymous.post(action, data={"request": "scale web", "namespace": namespace}).status_code
                == 401
            )
        assert anonymous.get("/healthz").status_code == 200
        refused = anonymous.get("/", headers={"Authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
        assert "Unauthorized" in refused.text


def test_the_consoles_own_service_account_can_do_nothing_through_it(
    kubectl: Any,
    namespace: str,
    users: None,
    operator: Operator,
    console_account: ConsoleServiceAccount,  # noqa: F811
    consoles: Callable[..., ConsoleProcess],
) -> None:
    before = _bob_task(kubectl, namespace)
    console = chart_mode(consoles, console_account)
    own = {"Authorization": f"Bearer {console_account.token}"}
    refusal = f"{console_account.username} may not"
    with httpx.Client(base_url=console.url, headers=own, timeout=30, follow_redirects=False) as itself:
        listing = itself.get(f"/?namespace={namespace}")
        assert listing.status_code == 200
        assert f"{refusal} list agenttasks.bosun.dev in namespace {namespace}" in listing.text
        assert f"scale deployment web in {namespace}" not in listing.text
        csrf = _form_token(itself, f"/?namespace={namespace}")
        asked = itself.post(
            "/ask", data={"csrf": csrf, "namespace": namespace, "request": "delete every deployment"}
        )
        assert asked.status_code == 422
        assert f"{refusal} create agenttasks.bosun.dev in namespace {namespace}" in asked.text
        decided = itself.post(
            f"/tasks/{namespace}/scale/decide",
            data={"csrf": csrf, "hash": before["proposal"]["hash"], "action": "approve-all"},
        )
        assert decided.status_code == 403
        assert f"{refusal} get agenttasks.bosun.dev in namespace {namespace}" in decided.text
        page = itself.get(f"/tasks/{namespace}/scale")
        assert page.status_code == 403
        assert before["proposal"]["hash"] not in page.text
        overview = itself.get(f"/overview?namespace={namespace}")
        assert f"{refusal} list agenttasks.bosun.dev" in overview.text
        with itself.stream("GET", f"/stream/tasks?namespace={namespace}") as stream:
            first = next(line for line in stream.iter_lines() if line.startswith("data:"))
        assert f"{refusal} list agenttasks.bosun.dev" in first
        everywhere = itself.get("/?namespace=*")
        assert f"{refusal} list agenttasks.bosun.dev across all namespaces" in everywhere.text
    tasks = json.loads(kubectl("-n", namespace, "get", "agenttasks", "-o", "json").stdout)["items"]
    assert [t["metadata"]["name"] for t in tasks] == ["scale"]
    assert json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"] == []
    assert get(kubectl, namespace, "agenttask", "scale")["status"]["phase"] == "AwaitingApproval"


def test_a_persons_forwarded_token_acts_as_that_person(
    kubectl: Any,
    namespace: str,
    users: None,
    bind_role: Any,
    operator: Operator,
    console_account: ConsoleServiceAccount,  # noqa: F811
    consoles: Callable[..., ConsoleProcess],
) -> None:
    before = _bob_task(kubectl, namespace)
    kubectl("-n", namespace, "create", "serviceaccount", "dave")
    dave = f"system:serviceaccount:{namespace}:dave"
    bind_role(namespace, dave, USER_ROLE)
    token = kubectl("-n", namespace, "create", "token", "dave", "--duration=30m").stdout.strip()
    console = chart_mode(consoles, console_account)
    # oauth2-proxy's --pass-access-token header, rather than Authorization.
    forwarded = {"X-Forwarded-Access-Token": token}
    with httpx.Client(base_url=console.url, headers=forwarded, timeout=60, follow_redirects=False) as person:
        listing = person.get(f"/?namespace={namespace}")
        assert listing.status_code == 200
        assert f"signed in as <b>{dave}</b>" in listing.text
        assert f"scale deployment web in {namespace}" in listing.text
        csrf = _form_token(person, f"/tasks/{namespace}/scale")
        decided = person.post(
            f"/tasks/{namespace}/scale/decide",
            data={"csrf": csrf, "hash": before["proposal"]["hash"], "action": "approve-all", "reason": "ok"},
        )
        assert decided.status_code == 303
        verdict = person.get(decided.headers["location"])
        assert "Accepted (Approved)" in verdict.text
        asked = person.post(
            "/ask", data={"csrf": csrf, "namespace": namespace, "request": f"list pods in {namespace}"}
        )
        assert asked.status_code == 303
        # A form rendered for dave cannot be replayed with another token: the CSRF token is bound to it.
        replayed = person.post(
            "/ask",
            data={"csrf": csrf, "namespace": namespace, "request": "list pods"},
            headers={"X-Forwarded-Access-Token": console_account.token},
        )
        assert replayed.status_code == 403
        assert "CSRF" in replayed.text
    [grant] = json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"]
    assert grant["metadata"]["annotations"]["bosun.dev/approver"] == dave
    asked_name = asked.headers["location"].rsplit("/", 1)[1]
    created = get(kubectl, namespace, "agenttask", asked_name)
    assert created["metadata"]["annotations"]["bosun.dev/requester"] == dave
    wait_phase(kubectl, namespace, "scale", "Succeeded")
