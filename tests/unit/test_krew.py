"""The krew release of ``kubectl bosun`` (``krew/build.sh``, ``make krew``): a manifest naming its archive by
version and sha256, an archive that is the same for the same source tree, and a launcher that runs the
plugin from where krew puts it (``~/.krew/bin/kubectl-bosun``, a symlink into krew's store)."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
ARCHIVE = f"kubectl-bosun_v{VERSION}.tar.gz"


def _build(out: Path) -> Path:
    proc = subprocess.run(
        ["bash", str(ROOT / "krew" / "build.sh"), str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"krew/build.sh failed:\n{proc.stdout}{proc.stderr}"
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("krew"))


def test_the_manifest_names_the_archive_by_version_and_sha256(release: Path) -> None:
    text = (release / "bosun.yaml").read_text()
    assert "@VERSION@" not in text
    assert "@SHA256@" not in text
    manifest = yaml.safe_load(text)
    assert (manifest["apiVersion"], manifest["kind"]) == (
        "krew.googlecontainertools.github.com/v1alpha2",
        "Plugin",
    )
    assert manifest["metadata"]["name"] == "bosun"
    assert manifest["spec"]["version"] == f"v{VERSION}"
    [platform] = manifest["spec"]["platforms"]
    assert platform["uri"].endswith(f"/releases/download/v{VERSION}/{ARCHIVE}")
    assert platform["sha256"] == _sha256(release / ARCHIVE)
    assert platform["bin"] == "kubectl-bosun"
    with tarfile.open(release / ARCHIVE) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == {"kubectl-bosun", f"bosun-{VERSION}-py3-none-any.whl", "requirements.txt"}
    assert members["kubectl-bosun"].mode & 0o111, "the launcher must be executable"
    for entry in platform["files"]:
        assert fnmatch.filter(members, entry["from"]), f"{entry['from']} matches nothing in {ARCHIVE}"


def test_the_same_source_tree_gives_the_same_archive(release: Path, tmp_path: Path) -> None:
    again = _build(tmp_path)
    assert _sha256(again / ARCHIVE) == _sha256(release / ARCHIVE)


def test_the_launcher_runs_the_plugin_through_krews_symlink(release: Path, tmp_path: Path) -> None:
    if shutil.which("uv") is None:
        pytest.fail("uv is not on PATH: the launcher needs it (make uv installs it)")
    store, bin_dir = tmp_path / "store" / "bosun" / f"v{VERSION}", tmp_path / "bin"
    store.mkdir(parents=True)
    bin_dir.mkdir()
    with tarfile.open(release / ARCHIVE) as archive:
        archive.extractall(store, filter="data")
    (bin_dir / "kubectl-bosun").symlink_to(store / "kubectl-bosun")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["kubectl-bosun", "--help"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kubectl bosun")
    for command in ("ask", "show", "approve", "deny", "list", "watch"):
        assert command in proc.stdout
