"""Services through kube-proxy on the real node: a ClusterIP answers from another pod and from
the host, pods reach the API server through the `kubernetes` Service, and resolve no names."""

from __future__ import annotations

import urllib.request

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.realnode import RealNode
from tests.realnode.pods import box_container, real_node_pod


def _succeeded(pod: dict) -> bool:
    phase = pod.get("status", {}).get("phase")
    assert phase != "Failed", f"pod failed: {pod['status']}"
    return phase == "Succeeded"


def _run_once(kubectl: Kubectl, name: str, *args: str) -> str:
    """Runs `testbox ARGS` in a pod on the real node until it exits; returns its output."""
    kubectl.apply(real_node_pod(name, [box_container("client", *args)], restartPolicy="Never"))
    kubectl.wait_for("pod", name, _succeeded, timeout=60, what="phase Succeeded")
    return kubectl("logs", name).stdout


def test_a_cluster_ip_answers_from_another_pod_and_from_the_host(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    kubectl.apply(
        real_node_pod("web", [box_container("server", "serve", "8080", readinessProbe=probe)]),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    pod = kubectl.wait_for("pod", "web", condition_is("Ready"), timeout=60)
    cluster_ip = kubectl.get("service", "web")["spec"]["clusterIP"]
    real_node.wait_for_service_rule(cluster_ip, 80, f"{pod['status']['podIP']}:8080")

    assert _run_once(kubectl, "client", "get", f"http://{cluster_ip}/") == "hello from web\n"
    with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=5) as response:
        assert response.read() == b"hello from web\n"


def test_pods_reach_the_api_server_through_the_kubernetes_service(
    real_node: RealNode, cluster: ControlPlane, kubectl: Kubectl
) -> None:
    service = cluster.kubectl(
        "get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"
    ).stdout
    real_node.wait_for_service_rule(service, 443, f"{cluster.address}:{cluster.ports['apiserver']}")

    version = _run_once(kubectl, "api-client", "get", f"https://{service}/version")
    assert '"gitVersion"' in version


def test_pods_resolve_no_names(real_node: RealNode, kubectl: Kubectl) -> None:
    pod = real_node_pod("resolver", [box_container("client", "get", "http://example.com/")])
    pod["spec"]["restartPolicy"] = "Never"
    kubectl.apply(pod)
    failed = kubectl.wait_for(
        "pod", "resolver", lambda p: p.get("status", {}).get("phase") == "Failed", timeout=60
    )
    message = failed["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert "lookup example.com on 127.0.0.1:53" in message
