"""The real node itself: registered, tainted, and only pods meant for it land there."""

from __future__ import annotations

from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.nodes import REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.cluster.realnode import RealNode
from tests.realnode.pods import box_container, real_node_pod


def test_real_node_is_ready_tainted_and_kwok_nodes_stay(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    node = kubectl.get("node", real_node.name)
    assert condition_is("Ready")(node)
    assert REAL_NODE_TAINT in [
        {k: t[k] for k in ("key", "value", "effect")} for t in node["spec"]["taints"]
    ]
    assert node["metadata"]["labels"][REAL_NODE_LABEL] == "true"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == real_node.address
    kwok = kubectl.get("nodes", None, "-l", "type=kwok")["items"]
    assert {n["metadata"]["name"] for n in kwok} == {"gpu-node-0", "gpu-node-1", "cpu-node-0"}


def test_a_pod_without_the_toleration_stays_off_the_real_node(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    pod = real_node_pod("elsewhere", [box_container("c", "serve", "8080")])
    del pod["spec"]["tolerations"]
    kubectl.apply(pod)
    seen = kubectl.wait_for(
        "pod", "elsewhere", condition_is("PodScheduled", "False", "Unschedulable")
    )
    assert "untolerated taint" in seen["status"]["conditions"][0]["message"]
