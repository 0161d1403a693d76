"""One stack for the package: the engines' images (GBs) are pulled onto its node once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.incontainers.stack import ContainerStack
from tests.incontainers.tiny_models import publish_tiny_models

# A download that receives nothing for this long fails as Stalled (the fault tests wait for it).
STALL_SECONDS = 20
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """More time for this package's tests: the first one's setup starts the stack and pulls the
    engines' images (GBs) onto its node."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerStack]:
    """The stack, torn down after the package; the host is checked for anything left behind."""
    workdir = tmp_path_factory.mktemp("incontainers")
    with ContainerStack(workdir, values={"downloadStallSeconds": STALL_SECONDS}) as running:
        running.pull_engine_images()
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
