"""Who the console's requests to the API server are made as: always the person using it, never the console.

Two ways, chosen when the console starts:

- **Kubeconfig** (``bosun console`` on a person's machine, like ``kubectl proxy``): the console holds that
  person's kubeconfig credentials, through the same loader as ``kubectl bosun`` and the operator (client
  certificates, tokens, exec plugins, OIDC), and serves only them, on 127.0.0.1 by default.
- **Forwarded token** (``--forwarded-token``, the chart's mode): the console sits behind an authenticating
  proxy that puts the signed-in person's bearer token on every request (``Authorization: Bearer`` or
  ``X-Forwarded-Access-Token``, as oauth2-proxy does). Each request to the API server carries that token
  and nothing else: the console loads no credentials (only the API server's address and CA), never
  impersonates, and answers a request without a token with 401. Its own ServiceAccount needs no rights and
  the chart grants it none.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bosun_tools.client.kube import Credentials, KubeClient
from kubernetes import client as k8s_client
from kubernetes.config.config_exception import ConfigException
from starlette.requests import Request

from bosun.cli.cluster import Connection, UsageError

FORWARDED_HEADER = "X-Forwarded-Access-Token"
IN_CLUSTER_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")


class NoToken(Exception):
    """A request reached a forwarding console without a person's token: it is not acted on."""


@dataclass(frozen=True)
class Person:
    """The connection one request acts through, and a fingerprint of whose it is (CSRF tokens are bound
    to it, so a form rendered for one person cannot be submitted with another's credentials)."""

    client: KubeClient
    fingerprint: str
    default_namespace: str

    def connection(self, namespace: str) -> Connection:
        return Connection(self.client, namespace)


class Access(Protocol):
    """The console's way to the API server: ``person(request)`` says as whom a request acts."""

    @property
    def forwarding(self) -> bool:
        """Whether people's tokens are forwarded (else one person's kubeconfig is used)."""
        ...

    def person(self, request: Request) -> Person: ...

    async def aclose(self) -> None: ...


class KubeconfigAccess:
    """One person, from their kubeconfig (or ``--as``), as ``kubectl bosun`` connects."""

    forwarding = False

    def __init__(self, connection: Connection) -> None:
        self._person = Person(connection.client, "kubeconfig", connection.namespace)

    @classmethod
    def open(cls, *, kubeconfig: str | None, context: str | None, namespace: str | None) -> KubeconfigAccess:
        return cls(
            Connection.open(
                kubeconfig=kubeconfig, context=context, namespace=namespace, as_user=None, as_groups=()
            )
        )

    def person(self, request: Request) -> Person:
        return self._person

    async def aclose(self) -> None:
        await self._person.client.aclose()


class ForwardedTokenAccess:
    """Every request as the person whose token the authenticating proxy forwarded; no credentials held."""

    forwarding = True

    def __init__(self, cluster: Credentials, default_namespace: str = "default") -> None:
        self._root = KubeClient.from_credentials(Credentials.cluster_only(cluster))
        self._default_namespace = default_namespace

    @classmethod
    def open(
        cls,
        *,
        api_server: str | None,
        certificate_authority: str | None,
        kubeconfig: str | None,
        context: str | None,
    ) -> ForwardedTokenAccess:
        """The cluster from ``--api-server``/``--certificate-authority``, else a kubeconfig's cluster
        (address and CA only: its credentials are dropped), else the pod's environment
        (``KUBERNETES_SERVICE_HOST``)."""
        if api_server is None and kubeconfig is not None:
            try:
                cluster = Credentials.from_kubeconfig(kubeconfig, context=context)
            except (ConfigException, OSError) as exc:
                raise UsageError(f"cannot load the cluster of kubeconfig {kubeconfig}: {exc}") from exc
            return cls(cluster)
        if api_server is None:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
            if not host or not port:
                raise UsageError(
                    "--forwarded-token needs the API server: pass --api-server URL (and "
                    "--certificate-authority FILE), or run in a pod (KUBERNETES_SERVICE_HOST/PORT)"
                )
            api_server = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        ca = certificate_authority or (str(IN_CLUSTER_CA) if IN_CLUSTER_CA.exists() else None)
        if ca is not None and not Path(ca).is_file():
            raise UsageError(
                f"--certificate-authority {ca}: no such file; mount the cluster's CA (kube-root-ca.crt)"
            )
        configuration = k8s_client.Configuration()
        configuration.host = api_server
        configuration.ssl_ca_cert = ca
        return cls(Credentials(configuration))

    def person(self, request: Request) -> Person:
        token = forwarded_token(request)
        if token is None:
            raise NoToken()
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        return Person(self._root.forwarding(token), fingerprint, self._default_namespace)

    async def aclose(self) -> None:
        await self._root.aclose()


def forwarded_token(request: Request) -> str | None:
    """The person's bearer token as the proxy forwarded it, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    forwarded = request.headers.get(FORWARDED_HEADER, "").strip()
    return forwarded or None
