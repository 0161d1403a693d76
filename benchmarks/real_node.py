"""Benchmark: the real node's start-up, a pod's start on it, its memory and its teardown.

Prints: the control plane's start (kwok nodes only), the real node's start to Ready, the time
from creating a pod (image already imported) to Ready on the real node, and as the baseline in
the same run the same pod to Ready on a kwok node (the control plane's own floor); resident
memory of containerd, the kubelet and kube-proxy; and the full teardown.

    python -m benchmarks.real_node [--pods 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.realnode import TESTBOX_IMAGE, RealNode
from tests.realnode.pods import box_container, real_node_pod


def pod_ready_seconds(kubectl: Kubectl, name: str, real: bool) -> float:
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    pod = real_node_pod(name, [box_container("c", "serve", "8080", readinessProbe=probe)])
    if not real:
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "cpu-node-0"}
    began = time.monotonic()
    kubectl.apply(pod)
    kubectl.wait_for("pod", name, condition_is("Ready"), timeout=60, interval=0.05)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=5, help="pods per node kind")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="berth-realnode-bench-"))
    node = RealNode(workdir=workdir / "node")
    address = node.claim_host()
    try:
        with ControlPlane(workdir=workdir / "cluster", address=address) as plane:
            node.join(plane)
            node.import_image(node.binaries.testbox_image, TESTBOX_IMAGE.rsplit(":", 1)[0])
            plane.kubectl("create", "namespace", "bench")
            kubectl = Kubectl(plane, "bench")
            kubectl.wait_for("serviceaccount", "default", lambda _: True)
            real = [pod_ready_seconds(kubectl, f"real-{i}", True) for i in range(args.pods)]
            kwok = [pod_ready_seconds(kubectl, f"kwok-{i}", False) for i in range(args.pods)]
            rss = {name: b / 2**20 for name, b in node.rss_bytes().items()}
            plane_rss = sum(plane.memory_rss_bytes().values()) / 2**20
            print(f"control plane start (kwok nodes): {plane.startup_seconds:.1f} s")
            print(f"real node start to Ready:         {node.ready_seconds:.1f} s")
            print(
                f"pod Ready, image cached, real node: median {statistics.median(real):.2f} s "
                f"(min {min(real):.2f}, max {max(real):.2f}, {args.pods} pods)"
            )
            print(
                f"pod Ready on a kwok node (baseline): median {statistics.median(kwok):.2f} s; "
                f"ratio {statistics.median(real) / statistics.median(kwok):.1f}x"
            )
            print(
                "RSS: "
                + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in rss.items())
                + f"; together {sum(rss.values()):.0f} MiB (control plane {plane_rss:.0f} MiB)"
            )
            began = time.monotonic()
            node.stop()
            print(f"real node teardown:                {time.monotonic() - began:.1f} s")
    finally:
        node.stop()
    left = node.leftovers()
    print(f"left on the host: {left or 'nothing'}")
    if not left:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
