"""``bosun console``: serve the web console (``bosun.console``) until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import uvicorn
from bosun_tools import logs

from bosun.cli.cluster import UsageError
from bosun.console.access import Access, ForwardedTokenAccess, KubeconfigAccess
from bosun.console.app import build_app

DEFAULT_PORT = 8080


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="bosun console",
        description="Bosun's web console: ask, review proposals with their diffs, approve or deny, follow "
        "tasks live. Every action is your own Kubernetes request: with your kubeconfig, or with the token "
        "an authenticating proxy forwards (--forwarded-token).",
    )
    cli.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cli.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    cli.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
    cli.add_argument("--context", help="kubeconfig context (default: the current one)")
    cli.add_argument("-n", "--namespace", help="namespace shown first (default: the context's)")
    cli.add_argument(
        "--forwarded-token",
        action="store_true",
        help="act with the bearer token an authenticating proxy forwards on each request "
        "(Authorization: Bearer, or X-Forwarded-Access-Token); load no credentials at all",
    )
    cli.add_argument("--api-server", help="with --forwarded-token: the API server URL (default: in-cluster)")
    cli.add_argument(
        "--certificate-authority",
        help="with --forwarded-token: the API server's CA file (default: in-cluster)",
    )
    cli.add_argument("--log-format", choices=("text", "json"), default="text")
    cli.add_argument("--log-level", default="info")
    return cli


def open_access(args: argparse.Namespace) -> Access:
    if args.forwarded_token:
        return ForwardedTokenAccess.open(
            api_server=args.api_server,
            certificate_authority=args.certificate_authority,
            kubeconfig=args.kubeconfig,
            context=args.context,
        )
    if args.api_server or args.certificate_authority:
        raise UsageError("--api-server and --certificate-authority go with --forwarded-token")
    return KubeconfigAccess.open(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)


async def serve(args: argparse.Namespace) -> None:
    access = open_access(args)
    try:
        config = uvicorn.Config(
            build_app(access),
            host=args.address,
            port=args.port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
        await uvicorn.Server(config).serve()
    finally:
        await access.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    try:
        asyncio.run(serve(args))
    except UsageError as problem:
        sys.exit(f"bosun console: {problem}")
    except KeyboardInterrupt:
        pass
