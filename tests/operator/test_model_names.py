"""Two ModelDeployments that claim one served model name in the watched namespaces: the newer
gets ModelNameConflict naming the older, and the name passes to it when the older goes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl, condition_is
from tests.operator.helpers import condition, model_deployment

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def second_namespace(cluster: ControlPlane, namespace: str) -> Iterator[Kubectl]:
    """Another namespace, whose name sorts after the test's (creation times tie within a second;
    the namespace then decides, so the resource created there second is the newer either way)."""
    name = f"{namespace}-b"
    cluster.kubectl("create", "namespace", name)
    yield Kubectl(cluster, name)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_newer_claimant_names_the_older_until_it_is_deleted(
    kubectl: Kubectl, namespace: str, second_namespace: Kubectl
) -> None:
    # pyannote serves the resource's name: one name in two namespaces is one gateway name
    name = f"names-{namespace[-6:]}"
    kubectl.apply(model_deployment(name))
    older = kubectl.wait_for("md", name, condition_is("ModelNameConflict", "False"))
    assert condition(older, "ModelNameConflict")["reason"] == "ModelNameHeld"

    second_namespace.apply(model_deployment(name))
    newer = second_namespace.wait_for(
        "md", name, condition_is("ModelNameConflict", "True", reason="ModelNameTaken")
    )
    assert f"{namespace}/{name}" in condition(newer, "ModelNameConflict")["message"]
    # the older keeps its name (the newer's arrival reconciles it too, and changes nothing)
    assert condition(kubectl.get("md", name), "ModelNameConflict")["status"] == "False"

    kubectl("delete", "md", name)
    second_namespace.wait_for(
        "md", name, condition_is("ModelNameConflict", "False", reason="ModelNameHeld")
    )
