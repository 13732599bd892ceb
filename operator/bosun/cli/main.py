"""The ``kubectl-bosun`` command line: kubectl finds it on ``PATH`` and runs it as ``kubectl bosun``.

kubectl hands a plugin every argument after its name and parses none of them itself, so the plugin takes
kubectl's connection flags (``--kubeconfig``, ``--context``, ``-n``, ``--as``, ``--as-group``) itself,
before or after the command, as people type them for kubectl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo

from bosun_tools.client.kube import KubeError

from bosun.api.models import DNS_SUBDOMAIN, MODEL_NAME, MODEL_NAME_MAX, PLAN_HASH, STEP_ID
from bosun.cli import commands, render
from bosun.cli.cluster import Connection, NotAllowed, NotFound, UsageError

INTERRUPTED = 130
"""What a shell reports for a command ended by Ctrl-C (128 + SIGINT)."""
USAGE = 2
"""argparse's status for a command line it cannot parse; the plugin's own usage errors say the same."""


def _connection_flags(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """kubectl's flags. After the command they only override (``SUPPRESS``): a flag given before the
    command is not reset by the command's parser."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if after_command else value

    group = parser.add_argument_group("kubectl flags")
    group.add_argument(
        "--kubeconfig", default=default(None), help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument("--context", default=default(None), help="the kubeconfig context to use")
    group.add_argument("-n", "--namespace", default=default(None), help="namespace (default: the context's)")
    group.add_argument(
        "--as", dest="as_user", default=default(None), help="user to impersonate, as kubectl --as"
    )
    group.add_argument(
        "--as-group",
        dest="as_groups",
        action="append",
        default=default([]),
        help="group to impersonate (repeatable; needs --as)",
    )


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _step_ids(text: str) -> list[str]:
    ids = _comma_list(text)
    wrong = [i for i in ids if not re.match(STEP_ID, i)]
    if not ids or wrong:
        raise argparse.ArgumentTypeError(f"step ids separated by commas, e.g. s1,s3 (not {text!r})")
    return ids


def _plan_hash(text: str) -> str:
    if not re.match(PLAN_HASH, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole plan hash: sha256: and 64 hex digits, as `kubectl bosun show` prints it"
        )
    return text


def _task_name(text: str) -> str:
    if len(text) > 253 or not re.match(DNS_SUBDOMAIN, text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AgentTask name, e.g. scale-web-x7k2q")
    return text


def _model_name(text: str) -> str:
    if len(text) > MODEL_NAME_MAX or not re.match(MODEL_NAME, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a LiteLLM model name (provider/model), e.g. openai/gpt-4.1-mini"
        )
    return text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl bosun",
        description="Ask Bosun for changes, review and decide its proposals, follow tasks. Every request is "
        "yours: RBAC decides what you may do, and admission records who you are.",
    )
    _connection_flags(top, after_command=False)
    commands_ = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands_.add_parser(name, help=help_, description=help_)
        _connection_flags(sub, after_command=True)
        return sub

    ask = command(
        "ask", "create an AgentTask for a request and follow it until its proposal arrives or it ends"
    )
    ask.add_argument("request", nargs="+", help='what you want, in plain language, e.g. "scale web to 5"')
    ask.add_argument(
        "--targets",
        type=_comma_list,
        default=[],
        help="namespaces it may touch, a,b (default: the task's own)",
    )
    ask.add_argument(
        "--follow-up-of",
        metavar="TASK",
        type=_task_name,
        help="continue the finished task TASK of the same namespace (spec.followUpOf): the model is told its "
        "request, how it ended, its answer and changes",
    )
    ask.add_argument(
        "--model",
        type=_model_name,
        help="the LiteLLM model (provider/model) for this task instead of the operator's BOSUN_MODEL",
    )
    ask.add_argument(
        "--wait",
        action="store_true",
        help="exit with the outcome: 0 when it awaits approval or succeeded, 1 when it failed, was denied, "
        "expired or was cancelled (without it: 0 once the task is created)",
    )

    show = command("show", "the task: phase, requester, proposal with diffs and hash, approvals, history")
    show.add_argument("task")

    for name in ("approve", "deny"):
        decide = command(name, f"{name} the proposal shown, by an ApprovalGrant bound to its hash")
        decide.add_argument("task")
        if name == "approve":
            decide.add_argument(
                "--steps", type=_step_ids, help="approve only these step ids, s1,s3 (the rest are denied)"
            )
        decide.add_argument("--reason", help="why; recorded in the grant, the task's history and Events")
        decide.add_argument(
            "--hash",
            dest="reviewed",
            type=_plan_hash,
            help="the plan hash you reviewed (from show); nothing is decided if the task proposes another",
        )
        decide.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    listing = command("list", "tasks, those awaiting approval first")
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="tasks of every namespace")

    watch = command("watch", "a live timeline of task phases and Events until Ctrl-C")
    watch.add_argument("-A", "--all-namespaces", action="store_true", help="tasks of every namespace")
    return top


async def run(args: argparse.Namespace, console: commands.Console) -> int:
    """Connect as the flags say and run the command; refusals become messages naming what to do."""
    conn = Connection.open(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        as_user=args.as_user,
        as_groups=args.as_groups,
    )
    try:
        try:
            return await _dispatch(args, conn, console)
        except NotAllowed as refused:
            user = await conn.whoami()
            console.error(refused.told(user))
            return commands.REFUSED
    finally:
        await conn.aclose()


async def _dispatch(args: argparse.Namespace, conn: Connection, console: commands.Console) -> int:
    match args.command:
        case "ask":
            return await commands.ask(
                conn,
                console,
                " ".join(args.request),
                args.targets,
                args.wait,
                model=args.model,
                follow_up_of=args.follow_up_of,
            )
        case "show":
            return await commands.show(conn, console, args.task)
        case "approve" | "deny":
            return await commands.decide(
                conn,
                console,
                args.task,
                "Approve" if args.command == "approve" else "Deny",
                steps=getattr(args, "steps", None),
                reason=args.reason,
                reviewed=args.reviewed,
                yes=args.yes,
            )
        case "list":
            return await commands.list_tasks(conn, console, args.all_namespaces)
        case _:  # "watch", the last command the parser knows
            return await commands.watch(conn, console, args.all_namespaces)


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None, "astimezone() always names a zone"
    return zone


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    style = render.Style(render.wants_colour(sys.stdout.isatty(), os.environ))
    console = commands.Console(style=style, tz=_local_zone())
    try:
        return asyncio.run(run(args, console))
    except KeyboardInterrupt:
        return INTERRUPTED
    except UsageError as exc:
        console.error(f"error: {exc}")
        return USAGE
    except NotFound as exc:
        console.error(render.not_found(exc.kind, exc.name, exc.namespace))
        return commands.REFUSED
    except KubeError as exc:
        console.error(f"error: the API server answered {exc.status} {exc.reason}: {exc.message}")
        return commands.REFUSED
