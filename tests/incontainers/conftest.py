"""One stack for the package: building it pulls GBs of images into the real node once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.e2e.stack import publish_tiny_models
from tests.incontainers.stack import ContainerStack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerStack]:
    """The stack, torn down after the package; the host is checked for anything left behind."""
    workdir = tmp_path_factory.mktemp("incontainers")
    with ContainerStack(workdir) as running:
        publish_tiny_models(running.hub)
        yield running
    left = running.node.leftovers()
    assert not left, f"the real node left behind: {left}"


@pytest.fixture(scope="package")
def cluster(stack: ContainerStack) -> ControlPlane:
    """The stack's control plane (overrides the kwok-only one for these tests)."""
    assert stack.plane is not None
    return stack.plane


@pytest.fixture
def kubectl(stack: ContainerStack) -> Kubectl:
    """kubectl in the models' namespace (restricted Pod Security enforced)."""
    return stack.kubectl
