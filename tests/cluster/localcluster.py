"""A real Kubernetes control plane on 127.0.0.1, without containers.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods really
become Ready and finish deleting) run as ordinary processes built by ``build.sh`` from Kubernetes' own
Go modules. State lives in ``.cluster/`` (git-ignored): throw-away PKI, kubeconfigs for the admin and for
the ordinary users alice, bob (group ``sre``) and carol, logs, and the PIDs of exactly the processes
that ``up`` started, so that ``down`` stops those and nothing else. etcd's data sits on ``/dev/shm``.

Usage: ``python tests/cluster/localcluster.py up|down|status``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STATE_DIR = Path(os.environ.get("BOSUN_CLUSTER_DIR", ROOT / ".cluster"))
USERS: dict[str, tuple[str, ...]] = {"alice": (), "bob": ("sre",), "carol": ()}
NODES = ("kwok-node-0", "kwok-node-1")
START_TIMEOUT = 120.0


@dataclass
class Cluster:
    """What a running local cluster offers to its users: kubeconfigs and the directory of its binaries."""

    state_dir: Path
    bin_dir: Path
    server: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def user_kubeconfig(self, name: str) -> Path:
        return self.state_dir / "users" / f"{name}.kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def build_binaries() -> Path:
    """Build (or find in the cache) the control-plane binaries; returns their directory."""
    out = subprocess.run(
        ["bash", str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    return Path(out.stdout.strip().splitlines()[-1])


# --- PKI -------------------------------------------------------------------------------------------


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usages: tuple[x509.ObjectIdentifier, ...] = (),
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(pki: Path) -> None:
    """Create a CA, the API server's serving cert, the service-account key pair and client certs."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("bosun-local-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    (pki / "ca.crt").write_bytes(_pem(ca))
    _write_key(pki / "ca.key", ca_key)

    srv_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName(n)
        for n in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.0.0.1")]
    srv = _cert(
        _name("kube-apiserver"),
        srv_key,
        ca_name,
        ca_key,
        usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        sans=sans,
    )
    (pki / "apiserver.crt").write_bytes(_pem(srv))
    _write_key(pki / "apiserver.key", srv_key)

    kwok_key = ec.generate_private_key(ec.SECP256R1())
    kwok_srv = _cert(
        _name("kwok-kubelet"),
        kwok_key,
        ca_name,
        ca_key,
        usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    (pki / "kwok-serving.crt").write_bytes(_pem(kwok_srv))
    _write_key(pki / "kwok-serving.key", kwok_key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    clients: dict[str, tuple[str, tuple[str, ...]]] = {
        "admin": ("bosun-admin", ("system:masters",)),
        "kcm": ("system:kube-controller-manager", ()),
        "scheduler": ("system:kube-scheduler", ()),
        "kwok": ("kwok-controller", ("system:masters",)),
    }
    clients.update({user: (user, groups) for user, groups in USERS.items()})
    for file, (cn, orgs) in clients.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(cn, orgs), key, ca_name, ca_key, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        (pki / f"{file}.crt").write_bytes(_pem(cert))
        _write_key(pki / f"{file}.key", key)


def write_kubeconfig(path: Path, server: str, pki: Path, client: str, user: str) -> None:
    """A self-contained kubeconfig (certificates embedded) so it can be copied anywhere."""
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "bosun-local",
                "cluster": {"server": server, "certificate-authority-data": b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki / f"{client}.crt"),
                    "client-key-data": b64(pki / f"{client}.key"),
                },
            }
        ],
        "contexts": [{"name": f"{user}@bosun-local", "context": {"cluster": "bosun-local", "user": user}}],
        "current-context": f"{user}@bosun-local",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    procs: dict[str, subprocess.Popen[bytes]],
    log_dir: Path = STATE_DIR / "logs",
) -> None:
    """Poll ``check`` until it holds; fail early with the log hint if a started process died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode} while waiting for {what}; "
                    f"see {log_dir / (name + '.log')}"
                )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; logs are in {log_dir}")


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as resp:
        return resp.status == 200 and resp.read().strip() in (b"ok", b'{"health":"true","reason":""}')


def _etcd_healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=2) as resp:
        return bool(json.loads(resp.read()).get("health") == "true")


def _data_dir(state_dir: Path) -> Path:
    tag = hashlib.sha256(str(state_dir).encode()).hexdigest()[:10]
    return Path("/dev/shm") / f"bosun-etcd-{tag}"


def _start(name: str, argv: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None, user: str | None = None) -> str:
    """Run the cluster's own kubectl as the admin (or as ``user``); returns stdout, raises on failure."""
    config = cluster.user_kubeconfig(user) if user else cluster.kubeconfig
    out = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(config), *args],
        input=stdin,
        text=True,
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


# What a fake container prints (CRI log format) and runs: `kubectl logs` reads this file, and
# `kubectl exec` runs commands on this machine in a scratch directory (tests only run harmless ones).
POD_LOG = """\
2026-01-01T00:00:00.000000000Z stdout F starting web server on :8080
2026-01-01T00:00:01.000000000Z stdout F GET /healthz 200
2026-01-01T00:00:02.000000000Z stderr F GET /api/orders 500 upstream timeout
"""


def _kwok_config(bin_dir: Path, state_dir: Path) -> Path:
    """kwok's stages (node and pod lifecycle) plus logs and exec for every fake container."""
    docs = [p.read_text() for p in sorted((bin_dir / "kwok-stages").glob("*.yaml"))]
    log_file = state_dir / "pod.log"
    log_file.write_text(POD_LOG)
    exec_dir = state_dir / "exec"
    exec_dir.mkdir(exist_ok=True)
    docs.append(
        json.dumps(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterLogs",
                "metadata": {"name": "all-containers"},
                "spec": {"logs": [{"logsFile": str(log_file), "follow": False}]},
            }
        )
    )
    docs.append(
        json.dumps(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterExec",
                "metadata": {"name": "all-containers"},
                "spec": {"execs": [{"local": {"workDir": str(exec_dir)}}]},
            }
        )
    )
    dest = state_dir / "kwok-config.yaml"
    dest.write_text("\n---\n".join(docs))
    return dest


def _node_manifest(name: str) -> dict[str, object]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


# --- state -----------------------------------------------------------------------------------------


def load_state(state_dir: Path = STATE_DIR) -> Cluster | None:
    state = state_dir / "state.json"
    if not state.exists():
        return None
    raw = json.loads(state.read_text())
    return Cluster(
        state_dir, Path(raw["bin_dir"]), raw["server"], {k: int(v) for k, v in raw["pids"].items()}
    )


def _alive(pid: int, binary: str) -> bool:
    """True if ``pid`` still runs ``binary`` (a recycled PID of another program does not count)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return Path(exe).name == binary


def _binary_of(component: str) -> str:
    return {"etcd": "etcd", "kwok": "kwok"}.get(component, component)


def running(state_dir: Path = STATE_DIR) -> Cluster | None:
    """The cluster recorded in ``state_dir`` if all of its processes live and the API server is ready."""
    cluster = load_state(state_dir)
    if cluster is None or not cluster.pids:
        return None
    if not all(_alive(pid, _binary_of(name)) for name, pid in cluster.pids.items()):
        return None
    ctx = ssl.create_default_context(cafile=str(state_dir / "pki" / "ca.crt"))
    try:
        return cluster if _http_ok(cluster.server + "/readyz", ctx) else None
    except OSError:
        return None


@dataclass(frozen=True)
class Emulation:
    """An older Kubernetes played by the same binaries (KEP-4330 compatibility versions): the API server
    and the controller manager serve the APIs and feature defaults of ``version``, with ``feature_gates``
    and ``runtime_config`` set as an administrator of such a cluster would set them."""

    version: str
    feature_gates: tuple[str, ...] = ()
    runtime_config: tuple[str, ...] = ()

    def flags(self) -> list[str]:
        flags = [f"--emulated-version={self.version}"]
        if self.feature_gates:
            flags.append(f"--feature-gates={','.join(self.feature_gates)}")
        return flags

    def apiserver_flags(self) -> list[str]:
        flags = [*self.flags(), "--emulation-forward-compatible=true"]
        if self.runtime_config:
            flags.append(f"--runtime-config={','.join(self.runtime_config)}")
        return flags


def up(quiet: bool = False, state_dir: Path = STATE_DIR, emulation: Emulation | None = None) -> Cluster:
    """Start the cluster kept in ``state_dir`` unless it is already up; returns it either way."""
    say: Callable[[str], None] = (lambda _m: None) if quiet else (lambda m: print(m, flush=True))
    existing = running(state_dir)
    if existing is not None:
        say(f"cluster already up at {existing.server} (kubeconfig {existing.kubeconfig})")
        return existing
    if load_state(state_dir) is not None:
        down(quiet=True, state_dir=state_dir)

    t0 = time.monotonic()
    bin_dir = build_binaries()
    t_build = time.monotonic() - t0
    pki = state_dir / "pki"
    logs = state_dir / "logs"
    shutil.rmtree(pki, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    make_pki(pki)

    etcd_port, etcd_peer, api_port, kwok_port = free_port(), free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    cluster = Cluster(state_dir, bin_dir, server)
    write_kubeconfig(cluster.kubeconfig, server, pki, "admin", "bosun-admin")
    for user in USERS:
        write_kubeconfig(cluster.user_kubeconfig(user), server, pki, user, user)
    for internal in ("kcm", "scheduler", "kwok"):
        write_kubeconfig(pki / f"{internal}.kubeconfig", server, pki, internal, internal)

    data = _data_dir(state_dir)
    shutil.rmtree(data, ignore_errors=True)
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def record() -> None:
        cluster.pids = {name: p.pid for name, p in procs.items()}
        (state_dir / "state.json").write_text(
            json.dumps(
                {"bin_dir": str(bin_dir), "server": server, "pids": cluster.pids, "etcd_data": str(data)}
            )
        )

    t_start = time.monotonic()
    try:
        procs["etcd"] = _start(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=bosun",
                f"--data-dir={data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=bosun=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
            ],
            logs,
        )
        record()
        wait_for("etcd /health", lambda: _etcd_healthy(etcd_url), 30, procs, logs)
        procs["kube-apiserver"] = _start(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={pki}",
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                *(emulation.apiserver_flags() if emulation else []),
            ],
            logs,
        )
        record()
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        wait_for("kube-apiserver /readyz", lambda: _http_ok(server + "/readyz", ctx), 60, procs, logs)
        t_ready = time.monotonic() - t_start
        for component in ("kcm", "scheduler"):
            name = "kube-controller-manager" if component == "kcm" else "kube-scheduler"
            kubeconfig = str(pki / f"{component}.kubeconfig")
            argv = [
                str(bin_dir / name),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
            ]
            if component == "kcm":
                argv += [
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--controllers=*,-bootstrapsigner,-tokencleaner",
                    *(emulation.flags() if emulation else []),
                ]
            procs[name] = _start(name, argv, logs)
        record()
        procs["kwok"] = _start(
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={pki / 'kwok.kubeconfig'}",
                f"--config={_kwok_config(bin_dir, state_dir)}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.0.1.0/24",
                "--node-ip=127.0.0.1",
                f"--node-port={kwok_port}",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{kwok_port}",
                f"--tls-cert-file={pki / 'kwok-serving.crt'}",
                f"--tls-private-key-file={pki / 'kwok-serving.key'}",
            ],
            logs,
        )
        record()
        kubectl(
            cluster, "apply", "-f", "-", stdin="\n---\n".join(json.dumps(_node_manifest(n)) for n in NODES)
        )
        wait_for(
            "kwok nodes Ready",
            lambda: (
                kubectl(
                    cluster,
                    "get",
                    "nodes",
                    "-o",
                    'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
                ).split()
                == ["True"] * len(NODES)
            ),
            60,
            procs,
            logs,
        )
        wait_for(
            "the default ServiceAccount",
            lambda: bool(kubectl(cluster, "get", "serviceaccount", "default", "-o", "name")),
            60,
            procs,
            logs,
        )
    except BaseException:
        down(quiet=True, state_dir=state_dir)
        raise
    total = time.monotonic() - t0
    say(
        f"cluster up at {server} in {total:.1f}s "
        f"(binaries {t_build:.1f}s, API server ready {t_ready:.1f}s after start)\n"
        f"  admin kubeconfig: {cluster.kubeconfig}\n"
        f"  users: {', '.join(str(cluster.user_kubeconfig(u)) for u in USERS)}\n"
        f"  logs: {logs}"
    )
    return cluster


def _wait_gone(pid: int, binary: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, binary):
            return True
        time.sleep(0.05)
    return not _alive(pid, binary)


def down(quiet: bool = False, state_dir: Path = STATE_DIR) -> None:
    """Stop exactly the processes ``up`` recorded (newest first) and remove etcd's data."""
    state_file = state_dir / "state.json"
    if not state_file.exists():
        if not quiet:
            print("cluster is not running (no .cluster/state.json)")
        return
    raw = json.loads(state_file.read_text())
    t0 = time.monotonic()
    for name, pid in reversed(list(raw["pids"].items())):
        binary = _binary_of(name)
        if not _alive(int(pid), binary):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGTERM)
        if not _wait_gone(int(pid), binary, 10):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
            _wait_gone(int(pid), binary, 5)
    shutil.rmtree(raw.get("etcd_data", _data_dir(state_dir)), ignore_errors=True)
    for leftover in ("state.json", "kwok-config.yaml", "pod.log"):
        (state_dir / leftover).unlink(missing_ok=True)
    for leftover_dir in ("pki", "users", "exec"):
        shutil.rmtree(state_dir / leftover_dir, ignore_errors=True)
    (state_dir / "kubeconfig").unlink(missing_ok=True)
    if not quiet:
        print(f"cluster stopped in {time.monotonic() - t0:.1f}s; logs kept in {state_dir / 'logs'}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def status() -> int:
    cluster = running()
    if cluster is None:
        print("cluster is not running")
        return 1
    print(f"cluster up at {cluster.server}; kubeconfig {cluster.kubeconfig}")
    total = 0.0
    for name, pid in cluster.pids.items():
        rss = rss_mib(pid)
        total += rss
        print(f"  {name:<24} pid {pid:<8} RSS {rss:7.1f} MiB")
    print(f"  {'total':<24} {'':<12} RSS {total:7.1f} MiB")
    return 0


@contextlib.contextmanager
def session_cluster() -> Iterator[tuple[Cluster, bool]]:
    """Reuse a running cluster, or start one and stop it afterwards; yields (cluster, started_here)."""
    existing = running()
    if existing is not None:
        yield existing, False
        return
    cluster = up(quiet=False)
    try:
        yield cluster, True
    finally:
        down(quiet=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
        return 0
    if args.command == "down":
        down()
        return 0
    return status()


if __name__ == "__main__":
    sys.exit(main())
