"""Running the helm CLI for the tool server: argument vectors, a private helm home, values files, and the
charts the configuration allows.

Helm's own code (charts, hooks, release storage) is what operators trust, so Bosun drives the binary rather
than re-implementing it, but never through a shell or a split string: every argument is one list element.
Each run has a timeout that kills the whole process group and its output is read with a byte cap; values
travel in a private temp file. Charts come only from configuration: a repository name listed in the
settings (``repo/chart``) or a local chart listed there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.settings import HelmSettings

MAX_VALUES_BYTES = 256_000
VALUES_SCHEMA = "values.schema.json"


@dataclass(frozen=True)
class HelmRun:
    stdout: str
    dropped: int


class HelmFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_state_dir: Path | None = None


def _private_dir() -> Path:
    """helm's config/cache/data homes for this server process: nothing leaks in from ``~/.config/helm``
    (repositories someone added by hand) and values files are not left in a shared /tmp."""
    global _state_dir
    if _state_dir is None or not _state_dir.exists():
        _state_dir = Path(tempfile.mkdtemp(prefix="bosun-helm-"))
    return _state_dir


def _binary(settings: HelmSettings) -> str:
    found = shutil.which(settings.binary)
    if found is None:
        raise ToolError(
            f"the helm binary {settings.binary!r} was not found on PATH; install helm 3 or set the helm "
            "binary path in the tool server settings"
        )
    return found


def helm_argv(
    settings: HelmSettings, args: Sequence[str], identity: Identity | None, binary: str = "helm"
) -> list[str]:
    """The full argument vector: the subcommand, then connection and impersonation flags.

    Flag values are joined with ``=`` so that a value can never be read as a flag of its own, whatever
    characters an identity from the API server contains."""
    argv = [binary, *args]
    if settings.kubeconfig:
        argv.append(f"--kubeconfig={settings.kubeconfig}")
    if settings.kube_context:
        argv.append(f"--kube-context={settings.kube_context}")
    if identity is not None:
        argv.append(f"--kube-as-user={identity.user}")
        argv.extend(f"--kube-as-group={group}" for group in identity.impersonated_groups)
    return argv


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, int]:
    kept = bytearray()
    dropped = 0
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if room > 0:
            kept.extend(chunk[:room])
        dropped += max(0, len(chunk) - max(room, 0))
    return bytes(kept), dropped


async def run_helm(
    settings: HelmSettings,
    args: Sequence[str],
    *,
    identity: Identity | None,
    timeout: float | None = None,  # noqa: ASYNC109 -- the process is killed, not just abandoned
) -> HelmRun:
    """Run helm once; raise HelmFailed with helm's error on a non-zero exit, ToolError on a timeout."""
    argv = helm_argv(settings, args, identity, _binary(settings))
    home = _private_dir()
    env = dict(os.environ)
    env.update(
        {
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }
    )
    for inherited in ("HELM_KUBEASUSER", "HELM_KUBEASGROUPS", "HELM_KUBECONTEXT", "HELM_KUBETOKEN"):
        env.pop(inherited, None)
    limit = timeout if timeout is not None else settings.timeout
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(limit):
            (out, dropped), (err, _) = await asyncio.gather(
                _read_capped(proc.stdout, settings.read_limit), _read_capped(proc.stderr, 64_000)
            )
            code = await proc.wait()
    except TimeoutError:
        raise ToolError(
            f"helm {args[0]} did not finish within {limit:g}s and was killed; check the cluster, or retry "
            "without wait"
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if code != 0:
        raise HelmFailed(_error_text(err.decode(errors="replace")))
    return HelmRun(out.decode(errors="replace"), dropped)


def _error_text(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING:")]
    text = "\n".join(lines) or stderr.strip() or "helm failed without a message"
    return text.removeprefix("Error: ")[:2000]


def _local_chart(settings: HelmSettings, chart: str) -> str | None:
    """The directory or archive of a configured local chart, named or given by its path."""
    local = settings.charts.get(chart)
    if local is None and chart in settings.charts.values():
        local = chart
    return local


def chart_args(settings: HelmSettings, chart: str, version: str | None) -> list[str]:
    """Map a chart reference to helm arguments, refusing anything not in the configuration."""
    local = _local_chart(settings, chart)
    if local is not None:
        if version is not None:
            raise ToolError(
                f"chart {chart} is a local chart with a fixed version; call again without version"
            )
        return [local]
    repo, sep, name = chart.partition("/")
    url = settings.repositories.get(repo) if sep else None
    if url is not None and name and "/" not in name and not name.startswith("."):
        pinned = [f"--version={version}"] if version else []
        if url.startswith("oci://"):
            return [f"{url.rstrip('/')}/{name}", *pinned]
        return [name, f"--repo={url}", *pinned]
    choices = [*(f"{r}/<chart>" for r in settings.repositories), *settings.charts]
    allowed = ", ".join(choices) if choices else "none are configured"
    raise ToolError(
        f"chart {chart!r} is not allowed; use a configured repository or chart ({allowed}); an "
        "administrator adds repositories and charts in the tool server's helm settings"
    )


@contextlib.contextmanager
def values_file(values: Mapping[str, Any] | None) -> Iterator[list[str]]:
    """``-f <file>`` for the values (JSON is valid YAML), written 0600 and removed afterwards."""
    if not values:
        yield []
        return
    body = json.dumps(values)
    if len(body) > MAX_VALUES_BYTES:
        raise ToolError(f"values are {len(body)} bytes; the limit is {MAX_VALUES_BYTES}; pass only overrides")
    fd, path = tempfile.mkstemp(prefix="values-", suffix=".yaml", dir=_private_dir())
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        yield ["-f", path]
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def chart_schema(settings: HelmSettings, chart: str) -> Any:
    """The values schema of a configured local chart (a directory or a .tgz); None for repository charts
    and for charts without a readable one."""
    local = _local_chart(settings, chart)
    if local is None:
        return None
    path = Path(local)
    try:
        if path.is_dir():
            text = (path / VALUES_SCHEMA).read_text()
        else:
            with tarfile.open(path) as archive:
                top = [m for m in archive.getmembers() if m.name.count("/") == 1]
                member = next((m for m in top if m.name.endswith(f"/{VALUES_SCHEMA}")), None)
                handle = archive.extractfile(member) if member is not None else None
                if handle is None:
                    return None
                text = handle.read().decode()
        return json.loads(text)
    except (OSError, tarfile.TarError, UnicodeDecodeError, ValueError):
        return None
