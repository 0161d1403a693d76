"""What a pod leaves on the real node: its sandbox, containers, mounts and network namespace."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.realnode import RealNode


@dataclass(frozen=True)
class PodTraces:
    """The CRI ids and the network namespace of one running pod, found by its uid."""

    sandbox: str
    containers: tuple[str, ...]
    netns: str

    @classmethod
    def of(cls, node: RealNode, uid: str) -> PodTraces:
        sandboxes = node.crictl("pods", "--label", f"io.kubernetes.pod.uid={uid}", "-q")
        (sandbox,) = sandboxes.stdout.split()
        containers = node.crictl("ps", "-a", "--pod", sandbox, "-q").stdout.split()
        spec = json.loads(node.crictl("inspectp", sandbox).stdout)["info"]["runtimeSpec"]
        netns = next(n["path"] for n in spec["linux"]["namespaces"] if n["type"] == "network")
        return cls(sandbox, tuple(containers), netns)

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.sandbox, *self.containers)

    def mounted(self, uid: str) -> bool:
        """Whether /proc/mounts names the pod's uid or one of its ids."""
        mounts = Path("/proc/mounts").read_text()
        return any(trace in mounts for trace in (uid, *self.ids))

    def left(self, node: RealNode) -> list[str]:
        """What still exists: containerd tasks, mounts naming the ids, the network namespace."""
        tasks = node.ctr("tasks", "ls", "-q").stdout.split()
        mounts = Path("/proc/mounts").read_text()
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        found = [f"task {t}" for t in tasks if t in self.ids]
        found += [f"mount of {i}" for i in self.ids if i in mounts]
        if Path(self.netns).name in namespaces or Path(self.netns).exists():
            found.append(f"network namespace {self.netns}")
        return found

    def records_left(self, node: RealNode) -> list[str]:
        """Container records containerd still holds (the kubelet's garbage collection)."""
        records = node.ctr("containers", "ls", "-q").stdout.split()
        return [i for i in self.ids if i in records]
