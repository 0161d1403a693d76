"""NetworkPolicies are enforced on the real node (kube-router's firewall, as a cluster's network
plugin would): a pod the policy names gets through, another pod does not, the kubelet's probes
still do."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.nodehost import policy_chains
from tests.cluster.realnode import RealNode
from tests.realnode.pods import box_container, real_node_pod


def running_pod(kubectl: Kubectl, name: str, **labels: str) -> str:
    """A pod on the real node to call from (it serves, to stay up); its IP once Ready."""
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    pod = real_node_pod(name, [box_container("box", "serve", "8080", readinessProbe=probe)])
    pod["metadata"]["labels"].update(labels)
    kubectl.apply(pod)
    return kubectl.wait_for("pod", name, condition_is("Ready"), timeout=60)["status"]["podIP"]


def get_from(kubectl: Kubectl, pod: str, url: str) -> tuple[int, str]:
    """`testbox get URL` inside `pod` (5 s timeout): exit code and output."""
    result = kubectl("exec", pod, "--", "/testbox", "get", url, check=False)
    return result.returncode, result.stdout + result.stderr


def wait_for_enforcer(what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until kube-router's rules show `what` (it follows pods and policies by watching)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"kube-router never wrote {what}"
        time.sleep(0.2)


def in_policy_sets(address: str) -> bool:
    return address in subprocess.run(["ipset", "list"], capture_output=True, text=True).stdout


def test_only_the_pods_a_policy_names_reach_the_pod_it_guards(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    assert real_node.network_policies
    url = f"http://{running_pod(kubectl, 'web')}:8080/"
    caller = running_pod(kubectl, "caller", role="caller")
    running_pod(kubectl, "stranger")
    assert get_from(kubectl, "stranger", url) == (0, "hello from web\n"), "open before"

    before = set(policy_chains())
    kubectl.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "callers-only"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "caller"}}}]}],
            },
        }
    )
    wait_for_enforcer(
        "the policy's chain",
        lambda: any(c.startswith("KUBE-NWPLCY-") for c in set(policy_chains()) - before),
    )
    wait_for_enforcer("the caller's address", lambda: in_policy_sets(caller))
    assert get_from(kubectl, "caller", url) == (0, "hello from web\n")
    code, output = get_from(kubectl, "stranger", url)
    assert code != 0 and "hello" not in output, output
    # the kubelet's probes come from the node, which policies do not stop
    time.sleep(3)
    assert condition_is("Ready")(kubectl.get("pod", "web"))
