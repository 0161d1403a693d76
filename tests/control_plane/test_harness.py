"""The local control plane behaves like a real cluster: scheduling, GPUs, Jobs, GC, Pod Security, RBAC."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cluster import ControlPlane, FakeNode
from tests.cluster.binaries import pinned_versions
from tests.cluster.kubectl import Kubectl, WaitTimeout, condition_is

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_pod(name: str, gpus: int) -> dict:
    """A bare Pod asking for `gpus`."""
    pod = {"apiVersion": "v1", "kind": "Pod", **gpu_pod_template(gpus)}
    pod["metadata"] = {**pod["metadata"], "name": name}
    return pod


def gpu_pod_template(gpus: int) -> dict:
    return {
        "metadata": {"labels": {"app": "gpu"}},
        "spec": {
            "tolerations": [GPU_TOLERATION],
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/gpu:1",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


def test_kubectl_version_shows_the_server(cluster: ControlPlane):
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == pinned_versions()["KUBERNETES_VERSION"]
    assert version["clientVersion"]["gitVersion"] == pinned_versions()["KUBERNETES_VERSION"]


def test_default_nodes_carry_gpu_labels_taints_and_capacity(cluster: ControlPlane):
    nodes = {
        n["metadata"]["name"]: n
        for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    }
    gpu_nodes = [n for n in nodes.values() if "nvidia.com/gpu" in n["status"]["allocatable"]]
    assert len(gpu_nodes) == 2
    for node in gpu_nodes:
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H200"
        assert node["metadata"]["labels"]["nvidia.com/gpu.memory"].isdigit()
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node[
            "spec"
        ]["taints"]
    cpu_only = nodes["cpu-node-0"]
    assert "nvidia.com/gpu" not in cpu_only["status"]["allocatable"]
    assert not cpu_only["spec"].get("taints")


def test_gpu_deployment_runs_on_gpu_nodes(kubectl: Kubectl):
    kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gpu"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "gpu"}},
                "template": gpu_pod_template(1),
            },
        }
    )
    kubectl.wait_for(
        "deployment",
        "gpu",
        lambda d: d.get("status", {}).get("readyReplicas") == 2,
        what="2 ready replicas",
    )
    pods = kubectl.get("pods", None, "-l", "app=gpu")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith("gpu-node-")


def test_oversized_gpu_request_is_unschedulable(kubectl: Kubectl):
    kubectl.apply(gpu_pod("huge", 100))
    pod = kubectl.wait_for(
        "pod", "huge", condition_is("PodScheduled", "False", reason="Unschedulable")
    )
    message = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "Insufficient nvidia.com/gpu" in message
    assert pod["status"]["phase"] == "Pending"


def test_gpu_pod_without_toleration_stays_off_gpu_nodes(kubectl: Kubectl):
    pod = gpu_pod("untolerated", 1)
    pod["spec"]["tolerations"] = []
    kubectl.apply(pod)
    pod = kubectl.wait_for(
        "pod", "untolerated", condition_is("PodScheduled", "False", reason="Unschedulable")
    )
    message = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "untolerated taint" in message


def test_job_completes(kubectl: Kubectl):
    kubectl.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "registry.example/job:1"}],
                    }
                },
            },
        }
    )
    job = kubectl.wait_for("job", "once", condition_is("Complete"))
    assert job["status"]["succeeded"] == 1


def test_garbage_collection_deletes_owned_objects(kubectl: Kubectl):
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    owner_uid = kubectl.get("configmap", "owner")["metadata"]["uid"]
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "owned",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
                ],
            },
        }
    )
    assert kubectl.get("configmap", "owned")["metadata"]["ownerReferences"][0]["uid"] == owner_uid
    kubectl("delete", "configmap", "owner")
    gone = kubectl("wait", "--for=delete", "configmap/owned", "--timeout=30s", check=False)
    assert gone.returncode == 0, gone.stderr


def test_restricted_namespace_refuses_privileged_pod(kubectl: Kubectl, namespace: str):
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    result = kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "privileged"},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.example/x:1",
                        "securityContext": {"privileged": True},
                    }
                ]
            },
        },
        check=False,
    )
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr
    assert "privileged" in result.stderr


def test_rbac_resource_names_limit_a_service_account(
    cluster: ControlPlane, kubectl: Kubectl, namespace: str, tmp_path
):
    kubectl.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "patcher"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}, "data": {"v": "0"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "theirs"},
            "data": {"v": "0"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "patch-mine"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["mine"],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "patch-mine"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "patch-mine",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "patcher", "namespace": namespace}],
        },
    )
    token = cluster.service_account_token(namespace, "patcher", seconds=600)
    config = cluster.write_kubeconfig(tmp_path / "patcher.kubeconfig", token, namespace)

    def patch(name: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            f"--kubeconfig={config}",
            "patch",
            "configmap",
            name,
            "--type=merge",
            "-p",
            '{"data":{"v":"1"}}',
            check=False,
        )

    allowed = patch("mine")
    assert allowed.returncode == 0, allowed.stderr
    assert kubectl.get("configmap", "mine")["data"]["v"] == "1"
    denied = patch("theirs")
    assert denied.returncode != 0
    assert (
        "Forbidden" in denied.stderr
        and "system:serviceaccount:" + namespace + ":patcher" in denied.stderr
    )
    assert kubectl.get("configmap", "theirs")["data"]["v"] == "0"


def test_nodes_are_configurable_per_test(cluster: ControlPlane, kubectl: Kubectl):
    mig = FakeNode(
        "mig-node-0",
        gpus=7,
        gpu_resource_name="nvidia.com/mig-1g.10gb",
        gpu_product="NVIDIA-A100-SXM4-80GB",
    )
    cluster.add_nodes([mig])
    try:
        pod = gpu_pod("mig", 1)
        pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/mig-1g.10gb": "1"}}
        pod["spec"]["tolerations"] = [{"operator": "Exists"}]
        kubectl.apply(pod)
        pod = kubectl.wait_for("pod", "mig", condition_is("Ready"))
        assert pod["spec"]["nodeName"] == "mig-node-0"
    finally:
        kubectl("delete", "pod", "mig", "--wait=false", check=False)
        cluster.kubectl("delete", "node", "mig-node-0", check=False)


def test_wait_failure_shows_what_it_saw_last(kubectl: Kubectl):
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "seen"},
            "data": {"colour": "blue"},
        }
    )
    with pytest.raises(WaitTimeout) as failure:
        kubectl.wait_for(
            "configmap",
            "seen",
            lambda cm: cm["data"]["colour"] == "red",
            timeout=0.5,
            what="red colour",
        )
    message = str(failure.value)
    assert "configmap/seen" in message and "no red colour" in message
    assert "colour: blue" in message
