"""Shared fixtures: a session-wide local control plane, a fresh namespace per test, kubectl."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the whole session, torn down at the end (also on failure)."""
    plane = ControlPlane(workdir=tmp_path_factory.mktemp("cluster"))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


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
