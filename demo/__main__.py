"""Runs the demo: starts the local control plane, shows its GPU nodes, schedules GPU work, stops."""

from __future__ import annotations

import sys
import time

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl, condition_is

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(plane: ControlPlane, *args: str) -> None:
    print(f"$ kubectl {' '.join(args)}")
    print(plane.kubectl(*args).stdout.rstrip(), flush=True)


def gpu_workload(name: str, gpus: int, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "tolerations": [GPU_TOLERATION],
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.example/model-server:demo",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ],
                },
            },
        },
    }


def main() -> int:
    say("Starting a Kubernetes control plane on 127.0.0.1 (etcd, API server, scheduler, kwok)")
    with ControlPlane() as plane:
        rss = sum(plane.memory_rss_bytes().values()) / 2**20
        print(f"up in {plane.startup_seconds:.1f} s, {rss:.0f} MiB resident, at {plane.server}")
        show(plane, "version")
        say("Fake nodes: two with 8 NVIDIA H200 each (tainted for GPU work), one CPU-only")
        show(
            plane,
            "get",
            "nodes",
            "-L",
            "nvidia.com/gpu.product,nvidia.com/gpu.count",
        )
        kubectl = Kubectl(plane, "default")
        say("A model server with 2 replicas of 4 GPUs, and one that asks for 100 GPUs")
        kubectl.apply(gpu_workload("fits", gpus=4, replicas=2), gpu_workload("too-big", 100, 1))
        kubectl.wait_for(
            "deployment", "fits", lambda d: d.get("status", {}).get("readyReplicas") == 2
        )
        started = time.monotonic()
        while time.monotonic() - started < 30:
            pods = kubectl.get("pods", None, "-l", "app=too-big")["items"]
            if pods and condition_is("PodScheduled", "False")(pods[0]):
                break
            time.sleep(0.2)
        show(plane, "get", "pods", "-o", "wide")
        show(
            plane,
            "get",
            "pods",
            "-l",
            "app=too-big",
            "-o",
            "jsonpath={.items[0].status.conditions[0].message}",
        )
        print()
        say("Stopping the control plane")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
