"""The dashboard's GPU panel, computed from Nodes, Pods and ModelDeployments alone."""

from __future__ import annotations

from typing import Any

from berth_operator.controller.naming import server_labels
from berth_operator.dashboard.gpus import gpu_panel


def node(name: str, gpus: dict[str, str] | None = None, product: str | None = None) -> dict:
    labels = {"nvidia.com/gpu.product": product} if product else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "64", "memory": "512Gi", **(gpus or {})}},
    }


def server_pod(
    md: str,
    on: str | None,
    limits: dict[str, str],
    phase: str = "Running",
    namespace: str = "team",
    suffix: str = "x",
    containers: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"resources": {"limits": {"cpu": "4", **limits}}}] * containers
    }
    if on:
        spec["nodeName"] = on
    return {
        "metadata": {
            "name": f"{md}-{suffix}",
            "namespace": namespace,
            "labels": server_labels(md, "vllm"),
        },
        "spec": spec,
        "status": {"phase": phase},
    }


def resource(name: str, gpu_resource_name: str | None = None) -> dict[str, Any]:
    resources = {"gpus": 1} | ({"gpuResourceName": gpu_resource_name} if gpu_resource_name else {})
    return {"metadata": {"name": name, "namespace": "team"}, "spec": {"resources": resources}}


def wire(panel: Any) -> dict[str, Any]:
    return panel.model_dump(mode="json", by_alias=True)


NODES = [
    node("gpu-b", {"nvidia.com/mig-1g.10gb": "7"}, "NVIDIA-A100-SXM4-80GB"),
    node("gpu-a", {"nvidia.com/gpu": "8"}, "NVIDIA-H200"),
    node("cpu-0"),
]


def test_per_node_allocatable_requested_and_models():
    pods = [
        server_pod("qwen", "gpu-a", {"nvidia.com/gpu": "2"}, suffix="1"),
        server_pod("qwen", "gpu-a", {"nvidia.com/gpu": "2"}, suffix="2", phase="Pending"),
        server_pod("canary", "gpu-a", {"nvidia.com/gpu": "1"}, namespace="audio"),
        server_pod("small", "gpu-b", {"nvidia.com/mig-1g.10gb": "1"}),
    ]
    panel = wire(gpu_panel(NODES, pods, [resource("qwen"), resource("canary")]))
    assert panel == {
        "nodes": [
            {
                "name": "gpu-a",
                "product": "NVIDIA-H200",
                "allocatable": {"nvidia.com/gpu": 8},
                "requested": {"nvidia.com/gpu": 5},
                "models": [
                    {
                        "key": "audio/canary",
                        "namespace": "audio",
                        "name": "canary",
                        "pods": 1,
                        "requested": {"nvidia.com/gpu": 1},
                    },
                    {
                        "key": "team/qwen",
                        "namespace": "team",
                        "name": "qwen",
                        "pods": 2,
                        "requested": {"nvidia.com/gpu": 4},
                    },
                ],
            },
            {
                "name": "gpu-b",
                "product": "NVIDIA-A100-SXM4-80GB",
                "allocatable": {"nvidia.com/mig-1g.10gb": 7},
                "requested": {"nvidia.com/mig-1g.10gb": 1},
                "models": [
                    {
                        "key": "team/small",
                        "namespace": "team",
                        "name": "small",
                        "pods": 1,
                        "requested": {"nvidia.com/mig-1g.10gb": 1},
                    }
                ],
            },
        ]
    }


def test_only_placed_live_server_pods_count():
    download = server_pod("qwen", "gpu-a", {"nvidia.com/gpu": "1"}, suffix="dl")
    download["metadata"]["labels"]["app.kubernetes.io/component"] = "download"
    pods = [
        server_pod("done", "gpu-a", {"nvidia.com/gpu": "1"}, phase="Succeeded"),
        server_pod("crashed", "gpu-a", {"nvidia.com/gpu": "1"}, phase="Failed"),
        server_pod("waiting", None, {"nvidia.com/gpu": "1"}, phase="Pending"),
        download,
    ]
    (gpu_a,) = (n for n in wire(gpu_panel(NODES, pods, []))["nodes"] if n["name"] == "gpu-a")
    assert gpu_a["requested"] == {"nvidia.com/gpu": 0}
    assert gpu_a["models"] == []


def test_a_resource_named_by_a_model_deployment_counts_as_a_gpu():
    nodes = [node("accel-0", {"example.com/accelerator": "4"})]
    pods = [server_pod("custom", "accel-0", {"example.com/accelerator": "1"}, containers=2)]
    assert wire(gpu_panel(nodes, pods, [])) == {"nodes": []}
    (accel,) = wire(gpu_panel(nodes, pods, [resource("custom", "example.com/accelerator")]))[
        "nodes"
    ]
    assert accel["allocatable"] == {"example.com/accelerator": 4}
    assert accel["requested"] == {"example.com/accelerator": 2}
    assert accel["product"] is None


def test_gpu_nodes_show_even_with_nothing_allocatable_or_reported():
    nodes = [node("plugin-down", {"nvidia.com/gpu": "0"}, "NVIDIA-H200"), node("not-reported")]
    pods = [server_pod("qwen", "not-reported", {"nvidia.com/gpu": "1"})]
    panel = wire(gpu_panel(nodes, pods, []))
    assert [(n["name"], n["allocatable"], n["requested"]) for n in panel["nodes"]] == [
        ("not-reported", {}, {"nvidia.com/gpu": 1}),
        ("plugin-down", {"nvidia.com/gpu": 0}, {"nvidia.com/gpu": 0}),
    ]
