"""Shared fixtures: a session-wide local control plane, a fresh namespace per test, kubectl."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the whole session, torn down at the end (also on failure)."""
    with ControlPlane(workdir=tmp_path_factory.mktemp("cluster")) as plane:
        yield plane


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, ready for pods (its default ServiceAccount exists)."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    Kubectl(cluster, name).wait_for("serviceaccount", "default", lambda _: True, what="existence")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(cluster: ControlPlane, namespace: str) -> Kubectl:
    """kubectl in the test's namespace."""
    return Kubectl(cluster, namespace)


@pytest.fixture(scope="session")
def crd(cluster: ControlPlane) -> None:
    """The ModelDeployment CRD, installed from crds/ and Established."""
    install_crd(cluster)


@pytest.fixture(scope="session")
def operator(
    cluster: ControlPlane, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator, running as its own process against the session's control plane."""
    process = OperatorProcess(cluster, tmp_path_factory.mktemp("operator"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def cache_volume(cluster: ControlPlane, namespace: str) -> Iterator[str]:
    """A PersistentVolume pre-bound to the namespace's default cache claim (no provisioner here)."""
    name = f"cache-{namespace}"[:63]
    cluster.apply(cache_volume_manifest(name, namespace, "berth-model-cache"))
    yield name
    cluster.kubectl("delete", "pv", name, "--wait=false", check=False)
