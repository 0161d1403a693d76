"""Deleting pods on the real node leaves no container, mount or network namespace behind."""

from __future__ import annotations

from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.realnode import RealNode
from tests.realnode.pods import box_container, real_node_pod
from tests.realnode.traces import PodTraces
from tests.realnode.waiting import wait_until


def test_a_deleted_pod_leaves_no_container_mount_or_network_namespace(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    container = box_container(
        "server", "serve", "8080", volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]
    )
    kubectl.apply(
        real_node_pod("doomed", [container], volumes=[{"name": "scratch", "emptyDir": {}}])
    )
    pod = kubectl.wait_for("pod", "doomed", condition_is("Ready"), timeout=60)
    uid = pod["metadata"]["uid"]
    traces = PodTraces.of(real_node, uid)
    assert traces.mounted(uid)

    kubectl("delete", "pod", "doomed", "--wait=true")
    # First what leaks: processes, mounts, the network namespace; then the kubelet's garbage
    # collection (once a minute) removes the stopped sandbox and container records.
    wait_until(lambda: not traces.left(real_node), "state without task, mount or netns")
    real_node.wait_for_sandbox_removed(traces.sandbox)
    assert traces.records_left(real_node) == []
