"""A real node with one running pod that waits to be killed: `python -m
tests.realnode_recovery.crashing_node WORKDIR` prints "ready" once the pod runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.realnode import TESTBOX_IMAGE, RealNode
from tests.realnode.pods import box_container, real_node_pod


def main(workdir: Path) -> None:
    node = RealNode(workdir=workdir / "node")
    plane = ControlPlane(workdir=workdir / "cluster", address=node.claim_host())
    plane.start()
    node.join(plane)
    node.import_image(node.binaries.testbox_image, TESTBOX_IMAGE.rsplit(":", 1)[0])
    kubectl = Kubectl(plane, "default")
    kubectl.wait_for("serviceaccount", "default", lambda _: True)
    container = box_container(
        "server", "serve", "8080", volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]
    )
    kubectl.apply(
        real_node_pod("survivor", [container], volumes=[{"name": "scratch", "emptyDir": {}}])
    )
    kubectl.wait_for("pod", "survivor", condition_is("Ready"), timeout=60)
    print("ready", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
