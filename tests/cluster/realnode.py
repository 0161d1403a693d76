"""A real node for the local control plane: containerd, a kubelet and kube-proxy on this machine,
with private paths under a work directory, torn down fully (also after a crashed run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.binaries import CNI_BIN_DIR, NodeBinaries, pinned_versions
from tests.cluster.controlplane import (
    SERVICE_CIDR,
    ControlPlane,
    ControlPlaneError,
    free_port,
    wait_for_component,
)
from tests.cluster.nodehost import (
    BRIDGE,
    CGROUP_ROOT,
    CONTAINERD_SOCKET,
    GATEWAY,
    POD_CIDR,
    NodeHost,
    leftovers,
    node_mounts,
    policy_chains,
)
from tests.cluster.nodes import REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.cluster.pki import write_client_cert
from tests.cluster.processes import ManagedProcess

PAUSE_IMAGE = "registry.k8s.io/pause"
TESTBOX_IMAGE = "berth.test/testbox:latest"
# The kubelet's deepest socket is WORKDIR/kubelet/pod-resources/<10 digits>; sun_path is 108.
MAX_WORKDIR_LENGTH = 107 - len("/kubelet/pod-resources/") - 10
LOCAL_REGISTRY = "127.0.0.1:5000"  # plain HTTP, where `make images` pushes Berth's images


@dataclass
class RealNode:
    """One real node in `workdir`. claim_host() first (before the control plane starts on
    `address`), then join(plane); stop() undoes both."""

    workdir: Path
    name: str = "real-node-0"
    binaries: NodeBinaries = field(default_factory=NodeBinaries.from_cache)
    processes: list[ManagedProcess] = field(default_factory=list)
    plane: ControlPlane | None = None
    ready_seconds: float = 0.0
    address: str = GATEWAY
    # tainted, only pods meant for it land here; untainted, it is the cluster's CPU node
    taints: list[dict[str, str]] = field(default_factory=lambda: [REAL_NODE_TAINT])
    # NetworkPolicies enforced (kube-router's firewall), as a cluster's network plugin would
    network_policies: bool = False

    def __post_init__(self) -> None:
        self.host = NodeHost(self.workdir, self.binaries.kube_proxy)

    # ---- paths -------------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        return CONTAINERD_SOCKET

    def crictl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """crictl against the node's containerd."""
        return subprocess.run(
            self._crictl_command("--timeout=20s", *args),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _crictl_command(self, *args: str) -> list[str]:
        endpoint = f"unix://{self.socket}"
        return [
            str(self.binaries.crictl),
            f"--runtime-endpoint={endpoint}",
            f"--image-endpoint={endpoint}",
            *args,
        ]

    def pull(self, *references: str, timeout: float = 900) -> None:
        """Pulls images through CRI, as the kubelet would, all at once (an image pre-puller)."""
        pulls = [
            subprocess.Popen(
                self._crictl_command("pull", f"--pull-timeout={int(timeout)}s", reference),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for reference in references
        ]
        failed = []
        for reference, pull in zip(references, pulls, strict=True):
            output, _ = pull.communicate(timeout=timeout)
            if pull.returncode != 0:
                failed.append(f"{reference}: {output.strip()}")
        if failed:
            raise ControlPlaneError("pull failed: " + "; ".join(failed))

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """ctr in containerd's k8s.io namespace (the one CRI uses)."""
        return subprocess.run(
            [str(self.binaries.ctr), f"--address={self.socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of containerd, the kubelet and kube-proxy."""
        return {p.name: p.rss_bytes() for p in self.processes}

    # ---- lifecycle ---------------------------------------------------------------------

    def claim_host(self) -> str:
        """Takes this machine's real-node lock, cleans up after a crashed earlier node and
        prepares the bridge; returns the address the API server must listen on."""
        if os.geteuid() != 0:
            raise ControlPlaneError(
                "a real node needs root (containerd, iptables, cgroups, mounts); "
                "run the real-node tests as root (NotRoot)"
            )
        if len(str(self.workdir)) > MAX_WORKDIR_LENGTH:
            raise ControlPlaneError(
                f"{self.workdir} is too long: the kubelet's unix sockets under it would pass "
                f"the 107-byte limit; use a work directory of at most {MAX_WORKDIR_LENGTH} "
                "characters (WorkdirTooLong)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host.acquire()
        return self.address

    def join(self, plane: ControlPlane, timeout: float = 60.0) -> None:
        """Starts containerd, the kubelet and kube-proxy against `plane`; returns once the node
        is Ready."""
        if plane.address != self.address:
            raise ControlPlaneError(
                f"the control plane listens on {plane.address}; start it with "
                f"address={self.address} so that pods reach it"
            )
        self.plane = plane
        for sub in ("logs", "pki", "cni/net.d", "containerd/certs.d", "kubelet"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._write_configs(plane)
        self._launch(
            "containerd",
            [
                str(self.binaries.containerd),
                "--config",
                str(self.workdir / "containerd" / "config.toml"),
            ],
        )
        self._wait(time.monotonic() + timeout, "containerd", self._containerd_ready)
        self.import_image(self.binaries.pause_image, PAUSE_IMAGE)
        began = time.monotonic()
        self._launch("kubelet", self._kubelet_args())
        self._launch(
            "kube-proxy",
            [
                str(self.binaries.kube_proxy),
                f"--config={self.workdir / 'kube-proxy.yaml'}",
                "--v=1",
            ],
        )
        self._wait(began + timeout, "kubelet", self._node_ready)
        if self.network_policies:
            self._enforce_network_policies(plane, began + timeout)
        self.ready_seconds = time.monotonic() - began

    def _enforce_network_policies(self, plane: ControlPlane, deadline: float) -> None:
        """kube-router's firewall alone (no routing, no Service proxy: the bridge and
        kube-proxy do those); ready once its chains are in the filter table."""
        kubeconfig = self._kubeconfig(plane, "kube-router", "berth:kube-router", "system:masters")
        self._launch(
            "kube-router",
            [
                str(self.binaries.kube_router),
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--health-port=0",
                "--metrics-port=0",
            ],
        )
        self._wait(deadline, "kube-router", lambda: "KUBE-ROUTER-FORWARD" in policy_chains())

    def import_image(self, archive: Path, base_name: str) -> None:
        """Imports an OCI layout tar as BASE_NAME:TAG (the tag is the layout's ref name)."""
        result = self.ctr("images", "import", f"--base-name={base_name}", str(archive))
        if result.returncode != 0:
            raise ControlPlaneError(f"ctr import of {archive} failed: {result.stderr}")

    def stop(self) -> None:
        """Stops the node in the order that leaves nothing behind, then restores the host:
        kube-proxy (and its rules), the kubelet, every pod sandbox through CRI, containerd."""
        by_name = {p.name: p for p in self.processes}
        if router := by_name.get("kube-router"):
            router.stop()  # its chains and sets go when the host is restored
        if proxy := by_name.get("kube-proxy"):
            proxy.stop()
        if kubelet := by_name.get("kubelet"):
            kubelet.stop()
        if (containerd := by_name.get("containerd")) and containerd.alive():
            self.crictl("rmp", "--all", "--force")
            containerd.stop()
        self.processes.clear()
        self.host.release()
        # images and their unpacked layers (GBs for an engine's) go with the node, once nothing
        # of the node is mounted any more; the logs stay
        if not node_mounts(self.workdir):
            shutil.rmtree(self.workdir / "containerd" / "root", ignore_errors=True)

    def wait_for_service_rule(
        self, cluster_ip: str, port: int, endpoint: str, timeout: float = 30.0
    ) -> None:
        """Waits until kube-proxy has programmed `cluster_ip:port` to forward to `endpoint`
        (an "IP:port")."""
        service = f"-d {cluster_ip}/32 -p tcp -m comment"
        deadline = time.monotonic() + timeout
        while True:
            rules = subprocess.run(
                ["iptables-save", "-t", "nat"], capture_output=True, text=True, timeout=30
            ).stdout
            if f"--to-destination {endpoint}" in rules and any(
                service in line and f"--dport {port} " in line for line in rules.splitlines()
            ):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-proxy did not program {cluster_ip}:{port} -> {endpoint} in "
                    f"{timeout:.0f} s:\n{self.processes[-1].log_tail()}"
                )
            time.sleep(0.2)

    def wait_for_sandbox_removed(self, sandbox_id: str, timeout: float = 90.0) -> None:
        """Waits until the kubelet has removed a pod sandbox (after its pod was deleted)."""
        deadline = time.monotonic() + timeout
        while sandbox_id in self.crictl("pods", "-q").stdout.split():
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"sandbox {sandbox_id} still exists after {timeout:.0f} s")
            time.sleep(0.2)

    def leftovers(self) -> list[str]:
        """What the node left on this machine (empty after a clean stop)."""
        return leftovers(self.workdir)

    # ---- internals ---------------------------------------------------------------------

    def _launch(self, name: str, argv: list[str]) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        process = ManagedProcess.start(
            name, argv, log, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, tied_to_parent=True
        )
        self.processes.append(process)
        assert self.host.record is not None
        self.host.record.processes[name] = process.pid
        self.host.save()

    def _wait(self, deadline: float, name: str, ready: Any) -> None:
        wait_for_component(next(p for p in self.processes if p.name == name), deadline, ready)

    def _containerd_ready(self) -> bool:
        return self.socket.exists() and self.ctr("version", timeout=10).returncode == 0

    def _node_ready(self) -> bool:
        assert self.plane is not None
        result = self.plane.kubectl("get", "node", self.name, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _kubeconfig(self, plane: ControlPlane, name: str, user: str, group: str) -> Path:
        # Signed by the harness CA: the API server's Node authorizer and RBAC read CN and O.
        cert, key = write_client_cert(plane.pki_dir, f"node-{name}", user, group)
        path = self.workdir / "pki" / f"{name}.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "berth",
                            "cluster": {
                                "server": plane.server,
                                "certificate-authority": str(plane.ca_file),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": name,
                            "user": {"client-certificate": str(cert), "client-key": str(key)},
                        }
                    ],
                    "contexts": [{"name": name, "context": {"cluster": "berth", "user": name}}],
                    "current-context": name,
                }
            )
        )
        return path

    def trust_plain_http_registry(self, host: str) -> None:
        """Lets containerd pull from `host` (host:port) over plain HTTP; it reads the file at
        each pull, so a running node takes a new registry at once."""
        registry = self.workdir / "containerd" / "certs.d" / host
        registry.mkdir(parents=True, exist_ok=True)
        (registry / "hosts.toml").write_text(
            f'server = "http://{host}"\n\n[host."http://{host}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )

    def _write_configs(self, plane: ControlPlane) -> None:
        self._kubeconfig(plane, "kubelet", f"system:node:{self.name}", "system:nodes")
        proxy_kubeconfig = self._kubeconfig(
            plane, "kube-proxy", "system:kube-proxy", "system:node-proxier"
        )
        (self.workdir / "containerd" / "config.toml").write_text(self._containerd_config())
        self.trust_plain_http_registry(LOCAL_REGISTRY)
        (self.workdir / "cni" / "net.d" / "10-berth-realnode.conflist").write_text(
            json.dumps(self._cni_config(), indent=2)
        )
        # Pods resolve nothing: no resolver listens on the pod's own loopback.
        (self.workdir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions ndots:1\n")
        (self.workdir / "kubelet.yaml").write_text(yaml.safe_dump(self._kubelet_config()))
        (self.workdir / "kube-proxy.yaml").write_text(
            yaml.safe_dump(self._kube_proxy_config(proxy_kubeconfig))
        )

    def _containerd_config(self) -> str:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""\
version = 2
root = "{self.workdir / "containerd" / "root"}"
state = "{self.workdir / "containerd" / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{self.socket}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}:{pinned_versions()["PAUSE_TAG"]}"
  # Root has no CAP_SYS_RESOURCE here: runc cannot lower a container's oom_score_adj.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    # an engine image's compressed layers (GBs) go once unpacked: the disk holds one copy
    discard_unpacked_layers = true
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{self.workdir / "containerd" / "state" / "runc"}"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.workdir / "cni" / "net.d"}"
  [{cri}.registry]
    config_path = "{self.workdir / "containerd" / "certs.d"}"
"""

    def _cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": "berth-realnode",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.workdir / "cni" / "networks"),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                }
            ],
        }

    def _kubelet_config(self) -> dict[str, Any]:
        assert self.plane is not None
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE: the default -999 cannot be applied
            "address": self.address,
            "port": free_port(self.address),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.plane.ca_file)},
            },
            "authorization": {"mode": "AlwaysAllow"},  # only CA-signed clients get this far
            "clusterDomain": "cluster.local",
            "resolvConf": str(self.workdir / "resolv.conf"),
            "registerWithTaints": self.taints,
            "maxPods": 30,
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "nodeStatusReportFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "shutdownGracePeriod": "0s",
            "volumePluginDir": str(self.workdir / "kubelet-plugins"),
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
        }

    def _kubelet_args(self) -> list[str]:
        return [
            str(self.binaries.kubelet),
            f"--config={self.workdir / 'kubelet.yaml'}",
            f"--kubeconfig={self.workdir / 'pki' / 'kubelet.kubeconfig'}",
            f"--root-dir={self.workdir / 'kubelet'}",
            f"--cert-dir={self.workdir / 'pki' / 'kubelet-serving'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.address}",
            f"--node-labels={REAL_NODE_LABEL}=true",
            "--v=1",
        ]

    def _kube_proxy_config(self, kubeconfig: Path) -> dict[str, Any]:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "hostnameOverride": self.name,
            "clusterCIDR": POD_CIDR,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": ["127.0.0.1/32"],
            # 0 leaves the host's conntrack sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {
                "localhostNodePorts": False,
                "masqueradeAll": False,
                "syncPeriod": "30s",
                "minSyncPeriod": "1s",
            },
        }
