"""A second control plane that plays Kubernetes 1.34, for the tests of this folder.

The same binaries emulate 1.34 (``--emulated-version``, KEP-4330): the APIs and feature defaults of 1.34,
so no constrained impersonation, and MutatingAdmissionPolicy only as an administrator of 1.34 turns it on
(the feature gate and ``--runtime-config=admissionregistration.k8s.io/v1beta1=true``; v1alpha1 is served
too, as 1.32/1.33 would serve it). One difference from a real 1.34 remains: the 1.36 admission plugin reads
its policies through v1, so v1 is served beside them (``--emulation-forward-compatible``); the tests
therefore say which version the chart renders, as ``auto`` would choose on 1.34 (``helm template
--kube-version`` shows that choice offline).

``cluster`` and ``kubectl`` here replace the session's for this folder only; the cluster starts in about
8 s and is gone when the module ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import localcluster
import pytest

from tests.conftest import ClusterAccess, Kubectl, kubectl_for

EMULATION = localcluster.Emulation(
    "1.34",
    feature_gates=("MutatingAdmissionPolicy=true",),
    runtime_config=(
        "admissionregistration.k8s.io/v1beta1=true",
        "admissionregistration.k8s.io/v1alpha1=true",
    ),
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterAccess]:
    if os.environ.get("BOSUN_TEST_KUBECONFIG"):
        pytest.skip("an emulated older Kubernetes needs the local control plane's binaries")
    state = tmp_path_factory.mktemp("kubernetes-1.34")
    local = localcluster.up(quiet=True, state_dir=state, emulation=EMULATION)
    try:
        yield ClusterAccess(local.kubeconfig, local.bin_dir, local.state_dir / "users")
    finally:
        localcluster.down(quiet=True, state_dir=state)


@pytest.fixture(scope="module")
def kubectl(cluster: ClusterAccess) -> Kubectl:
    return kubectl_for(cluster)
