"""The node agent: registers a Node, keeps its lease, and runs the pods bound to it.

Test infrastructure, not product. Like a kubelet without containers: pods run as processes of
this machine, images map to local Python environments (`images.py`), volumes to directories
(one per claim), each pod gets a token for its service account from the TokenRequest API, and
the phase, readiness (HTTP probes), restarts and exit codes go back to the API server. Processes
share the host's network, so each pod has its own loopback address as its pod IP.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

from tests.cluster import ControlPlane
from tests.nodeagent.api import ApiError, KubeApi
from tests.nodeagent.images import LocalImage
from tests.nodeagent.pods import PodRunner

logger = logging.getLogger(__name__)
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10


def micro_time() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class NodeAgent:
    """A Node named `name` whose pods run here. Start it, stop it; it kills its pods on stop."""

    def __init__(
        self,
        plane: ControlPlane,
        images: dict[str, LocalImage],
        workdir: Path,
        name: str = "local-node-0",
        cpu: str = "16",
        memory: str = "64Gi",
        address_block: int = 10,
    ) -> None:
        self.plane, self.images, self.workdir, self.name = plane, images, workdir, name
        self.api = KubeApi(plane.server, plane.admin_token, str(plane.ca_file))
        # as a kubelet does: ephemeral storage is the size of the disk that holds its pods
        disk = shutil.disk_usage(workdir.parent if not workdir.exists() else workdir).total
        self.capacity = {
            "cpu": cpu,
            "memory": memory,
            "pods": "110",
            "ephemeral-storage": str(disk),
        }
        self.runners: dict[str, PodRunner] = {}
        self.stopping = threading.Event()
        self._addresses = (f"127.0.{address_block}.{i}" for i in itertools.count(2))

    # ---- node ------------------------------------------------------------------------------

    def start(self) -> NodeAgent:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "berth.dev/local-node": "true",
                },
            },
        }
        with contextlib.suppress(ApiError):
            self.api.request("POST", "/api/v1/nodes", node)
        self._heartbeat()
        for target in (self._keep_alive, self._watch_pods):
            threading.Thread(target=target, daemon=True, name=f"{self.name}-{target}").start()
        return self

    def stop(self) -> None:
        """Stops every pod's processes (the Node stays, NotReady once its lease expires)."""
        self.stopping.set()
        for runner in list(self.runners.values()):
            runner.terminate(grace=2)
        for runner in list(self.runners.values()):
            runner.join(15)

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _heartbeat(self) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "local node agent is posting ready status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        self.api.patch(
            f"/api/v1/nodes/{self.name}/status",
            {
                "status": {
                    "capacity": self.capacity,
                    "allocatable": self.capacity,
                    "conditions": [ready],
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": self.name},
                    ],
                    "nodeInfo": {"kubeletVersion": "berth-local-agent", "operatingSystem": "linux"},
                }
            },
        )
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        lease = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS}
        try:
            self.api.patch(lease_path, {"spec": {**lease, "renewTime": micro_time()}})
        except ApiError as error:
            if error.status != 404:
                raise
            self.api.request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "metadata": {"name": self.name},
                    "spec": {**lease, "renewTime": micro_time()},
                },
            )

    def _keep_alive(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self._heartbeat()
            except (ApiError, OSError) as error:  # the API server may be restarting
                logger.warning("node heartbeat failed: %s", error)

    # ---- pods ------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        selector = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.name}"
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    listing = self.api.get(selector)
                    for pod in listing["items"]:
                        self._seen(pod)
                    version = listing["metadata"]["resourceVersion"]
                for event in self.api.watch(selector, version, timeout=30):
                    if self.stopping.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = ""  # expired: list again
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        self._gone(obj)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._seen(obj)
            except (ApiError, OSError, urllib.error.URLError, ValueError) as error:
                logger.info("pod watch interrupted (%s); resuming", error)
                version = ""
                self.stopping.wait(1)

    def _key(self, pod: dict[str, Any]) -> str:
        return pod["metadata"]["uid"]

    def _seen(self, pod: dict[str, Any]) -> None:
        key = self._key(pod)
        if pod["metadata"].get("deletionTimestamp"):
            self._delete(pod)
            return
        if key in self.runners or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        runner = PodRunner(
            pod,
            self.plane,
            self.api,
            self.images,
            self.workdir / "pods" / f"{pod['metadata']['namespace']}-{pod['metadata']['name']}",
            self.workdir / "claims",
            next(self._addresses),
        )
        self.runners[key] = runner
        runner.start()

    def _delete(self, pod: dict[str, Any]) -> None:
        """Graceful deletion: stop the containers, then remove the pod for good."""
        runner = self.runners.pop(self._key(pod), None)
        if runner is not None:
            runner.terminate(pod["metadata"].get("deletionGracePeriodSeconds") or 30)
            threading.Thread(target=self._finish_delete, args=(runner, pod), daemon=True).start()
        else:
            self._finish_delete(None, pod)

    def _finish_delete(self, runner: PodRunner | None, pod: dict[str, Any]) -> None:
        if runner is not None:
            runner.join(15)
        meta = pod["metadata"]
        with contextlib.suppress(ApiError, OSError):
            self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )

    def _gone(self, pod: dict[str, Any]) -> None:
        runner = self.runners.pop(self._key(pod), None)
        if runner is not None:
            runner.terminate(grace=2)

    def runner_for(self, namespace: str, name: str) -> PodRunner | None:
        """The runner of a live pod, for tests that act on its processes."""
        return next(
            (
                r
                for r in self.runners.values()
                if r.meta["namespace"] == namespace and r.meta["name"] == name
            ),
            None,
        )
