"""The restricted Pod Security level on a real kubelet: a non-root pod with a read-only root
filesystem runs, and it can write its emptyDir and nothing else."""

from __future__ import annotations

import pytest

from tests.cluster import ControlPlane
from tests.cluster.controlplane import KubectlError
from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.realnode import RealNode
from tests.realnode.pods import RESTRICTED_LABEL, box_container, real_node_pod


@pytest.fixture
def restricted(cluster: ControlPlane, namespace: str) -> str:
    cluster.kubectl("label", "namespace", namespace, f"{RESTRICTED_LABEL}=restricted")
    return namespace


def test_a_restricted_pod_writes_only_its_empty_dir(
    real_node: RealNode, restricted: str, kubectl: Kubectl
) -> None:
    container = box_container(
        "server", "serve", "8080", volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]
    )
    kubectl.apply(
        real_node_pod("locked", [container], volumes=[{"name": "scratch", "emptyDir": {}}])
    )
    pod = kubectl.wait_for("pod", "locked", condition_is("Ready"), timeout=60)
    assert pod["spec"]["nodeName"] == real_node.name

    assert (
        "wrote /scratch/note"
        in kubectl("exec", "locked", "--", "/testbox", "write", "/scratch/note").stdout
    )
    for path in ("/note", "/testbox"):
        refused = kubectl("exec", "locked", "--", "/testbox", "write", path, check=False)
        assert refused.returncode != 0
        assert "read-only file system" in refused.stderr


def test_a_root_pod_is_refused_under_restricted(
    real_node: RealNode, restricted: str, kubectl: Kubectl
) -> None:
    container = box_container("server", "serve", "8080")
    del container["securityContext"]["runAsNonRoot"], container["securityContext"]["runAsUser"]
    with pytest.raises(KubectlError, match='violates PodSecurity "restricted:latest"'):
        kubectl.apply(real_node_pod("rooted", [container]))
