"""Fixtures for tests on the real node: the session's control plane comes with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import ControlPlane
from tests.cluster.realnode import TESTBOX_IMAGE, RealNode


@pytest.fixture(scope="package")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    """A control plane with a real node joined, the test image imported; both torn down after
    this package's tests (one real node per machine: tests/realnode_recovery needs the host
    next), and the host checked for anything left behind."""
    workdir = tmp_path_factory.mktemp("realnode")
    node = RealNode(workdir=workdir / "node", network_policies=True)
    address = node.claim_host()
    try:
        with ControlPlane(workdir=workdir / "cluster", address=address) as plane:
            try:
                node.join(plane)
                node.import_image(node.binaries.testbox_image, TESTBOX_IMAGE.rsplit(":", 1)[0])
                yield node
            finally:
                node.stop()
    finally:
        node.stop()
    left = node.leftovers()
    assert not left, f"the real node left behind: {left}"


@pytest.fixture(scope="package")
def cluster(real_node: RealNode) -> ControlPlane:
    """The control plane the real node joined (overrides the kwok-only one for these tests)."""
    assert real_node.plane is not None
    return real_node.plane
