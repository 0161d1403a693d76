"""Deleting pods on the real node leaves no container, mount or network namespace behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.realnode import RealNode
from tests.realnode.pods import box_container, real_node_pod
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
    sandbox = real_node.crictl(
        "pods", "--label", f"io.kubernetes.pod.uid={uid}", "-q"
    ).stdout.split()
    assert len(sandbox) == 1
    containers = real_node.crictl("ps", "-a", "--pod", sandbox[0], "-q").stdout.split()
    spec = json.loads(real_node.crictl("inspectp", sandbox[0]).stdout)["info"]["runtimeSpec"]
    netns = next(n["path"] for n in spec["linux"]["namespaces"] if n["type"] == "network")
    traces = [uid, sandbox[0], *containers]
    assert any(t in Path("/proc/mounts").read_text() for t in traces)

    kubectl("delete", "pod", "doomed", "--wait=true")
    # First what leaks: processes, mounts, the network namespace; then the kubelet's garbage
    # collection (once a minute) removes the stopped sandbox and container records.
    wait_until(lambda: not _traces(real_node, traces, netns), "state without task, mount or netns")
    real_node.wait_for_sandbox_removed(sandbox[0])
    records = real_node.ctr("containers", "ls", "-q").stdout.split()
    assert [i for i in (sandbox[0], *containers) if i in records] == []


def _traces(real_node: RealNode, ids: list[str], netns: str) -> list[str]:
    """What of a deleted pod still exists: containerd tasks, mounts naming its ids, its netns."""
    tasks = real_node.ctr("tasks", "ls", "-q").stdout.split()
    mounts = Path("/proc/mounts").read_text()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found = [f"task {t}" for t in tasks if t in ids] + [f"mount of {i}" for i in ids if i in mounts]
    if Path(netns).name in namespaces or Path(netns).exists():
        found.append(f"network namespace {netns}")
    return found
