"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler and kwok on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.audit import OPERATOR_USER, write_policy
from tests.cluster.binaries import CLUSTER_DIR, Binaries
from tests.cluster.nodes import KWOK_ANNOTATION, FakeNode, default_nodes
from tests.cluster.pki import write_client_cert, write_pki
from tests.cluster.processes import ManagedProcess

SERVICE_CIDR = "10.96.0.0/16"
LOOPBACK = "127.0.0.1"
STATE_FILE = "state.json"


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; the message includes what it printed on stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


class ControlPlaneError(RuntimeError):
    """A component failed to start or to become ready; the message carries its log tail."""


def wait_for_component(process: ManagedProcess, deadline: float, ready: Any) -> None:
    """Polls `ready()` until it is true; fails with the log's tail if the process exits first
    or the deadline (a time.monotonic() value) passes."""
    while time.monotonic() < deadline:
        if not process.alive():
            raise ControlPlaneError(f"{process.name} exited during start-up:\n{process.log_tail()}")
        if ready():
            return
        time.sleep(0.1)
    raise ControlPlaneError(f"{process.name} was not ready in time:\n{process.log_tail()}")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ControlPlane:
    """A running control plane in `workdir`; use as a context manager or call start()/stop().

    `address` is where the API server listens and what it advertises. It stays on loopback
    unless a real node joins: then it is a local non-loopback address that pods reach through
    the `kubernetes` Service (kube-proxy skips loopback endpoints), and the API server gets a
    kubelet client certificate and dials kubelets by their InternalIP.
    """

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="berth-cluster-")))
    nodes: list[FakeNode] = field(default_factory=default_nodes)
    binaries: Binaries = field(default_factory=Binaries.from_cache)
    tied_to_parent: bool = True
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    operator_token: str = field(default_factory=lambda: secrets.token_hex(16))
    startup_seconds: float = 0.0
    address: str = LOOPBACK

    # ---- paths and environment -------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """Credentials of the operator's own user (cluster admin), whose writes are audited."""
        return self.workdir / "operator.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The operator's writes, one JSON line each (tests/cluster/audit.py reads it)."""
        return self.workdir / "logs" / "audit.log"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.ports['apiserver']}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def pki_dir(self) -> Path:
        """The CA and the certificates it signed (a real node's client certificates go here)."""
        return self.workdir / "pki"

    @property
    def serves_real_node(self) -> bool:
        return self.address != LOOPBACK

    def env(self) -> dict[str, str]:
        """The environment for a client of this cluster: KUBECONFIG, and PATH with kubectl/helm."""
        path = os.pathsep.join([*self.binaries.path_entries(), os.environ.get("PATH", "")])
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    # ---- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        """Starts every component and returns once the API is ready and the nodes are Ready."""
        began = time.monotonic()
        deadline = began + timeout
        try:
            self._prepare()
            self._launch("etcd", self._etcd_args())
            self._wait(deadline, "etcd", self._etcd_healthy)
            self._launch("kube-apiserver", self._apiserver_args())
            self._wait(deadline, "kube-apiserver", self._apiserver_ready)
            self._launch("kube-controller-manager", self._controller_manager_args())
            self._launch("kube-scheduler", self._scheduler_args())
            self._launch("kwok", self._kwok_args())
            self.add_nodes(self.nodes)
            self._wait(deadline, "kwok", lambda: self._nodes_ready(self.nodes))
            self._wait(
                deadline,
                "kube-controller-manager",
                lambda: self._exists("serviceaccount", "default", "default"),
            )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        self._save_state()

    def stop(self) -> None:
        """Stops every component, newest first; safe to call twice."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        (self.workdir / STATE_FILE).unlink(missing_ok=True)

    def restart_apiserver(self, down_seconds: float = 0.0, timeout: float = 60.0) -> float:
        """Stops kube-apiserver, waits `down_seconds`, starts it again on the same port and
        storage; returns the seconds the API was unavailable."""
        began = time.monotonic()
        process = next(p for p in self.processes if p.name == "kube-apiserver")
        process.stop()
        self.processes.remove(process)
        time.sleep(down_seconds)
        self._launch("kube-apiserver", self._apiserver_args())
        self._wait(time.monotonic() + timeout, "kube-apiserver", self._apiserver_ready)
        self._save_state()
        return time.monotonic() - began

    def destroy(self) -> None:
        """Stops the control plane and removes its working directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def memory_rss_bytes(self) -> dict[str, int]:
        """Resident memory per component."""
        return {p.name: p.rss_bytes() for p in self.processes}

    # ---- clients -----------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl against this cluster."""
        result = subprocess.run(
            [str(self.binaries.kubectl), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, ["kubectl", *args], result.stdout, result.stderr)
        return result

    def apply(self, *manifests: dict[str, Any], namespace: str | None = None) -> None:
        """kubectl apply of the given objects."""
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=yaml.safe_dump_all(manifests))

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token for a service account, from the TokenRequest API."""
        return self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={seconds}s"
        ).stdout.strip()

    def write_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        """A kubeconfig for this cluster that authenticates with `token`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "berth-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "berth-test",
                    "context": {"cluster": "berth-test", "user": "user", "namespace": namespace},
                }
            ],
            "current-context": "berth-test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def add_nodes(self, nodes: list[FakeNode]) -> None:
        """Creates kwok nodes; kwok marks them Ready within a second or so."""
        self.apply(*(node.manifest() for node in nodes))

    def api_get(self, path: str) -> tuple[int, str]:
        """A raw GET on the API server as admin: (HTTP status, body)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    # ---- CLI state ---------------------------------------------------------------------

    def _save_state(self) -> None:
        state = {
            "address": self.address,
            "ports": self.ports,
            "admin_token": self.admin_token,
            "operator_token": self.operator_token,
            "processes": [
                {"name": p.name, "pid": p.pid, "log": str(p.log)} for p in self.processes
            ],
        }
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, workdir: Path) -> ControlPlane:
        """The control plane a previous `up` left running in `workdir`."""
        state = json.loads((workdir / STATE_FILE).read_text())
        plane = cls(workdir=workdir, tied_to_parent=False)
        plane.ports = state["ports"]
        plane.address = state.get("address", LOOPBACK)
        plane.admin_token = state["admin_token"]
        plane.operator_token = state.get("operator_token", "")
        plane.processes = [
            ManagedProcess(name=p["name"], pid=p["pid"], log=Path(p["log"]))
            for p in state["processes"]
        ]
        return plane

    # ---- internals ---------------------------------------------------------------------

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        extra_ips = (self.address,) if self.serves_real_node else ()
        write_pki(self.pki_dir, extra_ips=extra_ips)
        for name in ("etcd", "etcd-peer", "kwok"):
            self.ports[name] = free_port()
        self.ports["apiserver"] = free_port(self.address)
        (self.workdir / "tokens.csv").write_text(
            f'{self.admin_token},admin,admin-uid,"system:masters"\n'
            f'{self.operator_token},{OPERATOR_USER},{OPERATOR_USER}-uid,"system:masters"\n'
        )
        (self.workdir / "tokens.csv").chmod(0o600)
        self.write_kubeconfig(self.kubeconfig, self.admin_token)
        self.write_kubeconfig(self.operator_kubeconfig, self.operator_token)
        write_policy(self.workdir / "audit-policy.yaml")

    def _launch(self, name: str, argv: list[str]) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        self.processes.append(
            ManagedProcess.start(
                name, argv, log, env=dict(os.environ), tied_to_parent=self.tied_to_parent
            )
        )

    def _wait(self, deadline: float, name: str, ready: Any) -> None:
        wait_for_component(next(p for p in self.processes if p.name == name), deadline, ready)

    def _etcd_healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.ports['etcd']}/health"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _apiserver_ready(self) -> bool:
        try:
            return self.api_get("/readyz")[0] == 200
        except OSError:
            return False

    def _exists(self, kind: str, namespace: str, name: str) -> bool:
        return self.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0

    def _nodes_ready(self, nodes: list[FakeNode]) -> bool:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        ready = {
            item["metadata"]["name"]
            for item in json.loads(result.stdout)["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in item.get("status", {}).get("conditions", [])
            )
        }
        return all(node.name in ready for node in nodes)

    def _etcd_args(self) -> list[str]:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            str(self.binaries.etcd),
            "--name=berth",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=berth={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki_dir
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--profiling=false",
            "--v=1",
            *(self._kubelet_client_args() if self.serves_real_node else []),
            # Since 1.37 a loopback address may not back the `kubernetes` Service's endpoints;
            # without a real node nothing reaches the API through that Service.
            *([] if self.serves_real_node else ["--endpoint-reconciler-type=none"]),
        ]

    def _kubelet_client_args(self) -> list[str]:
        """How the API server reaches a real kubelet (logs, exec): by InternalIP, so that no
        name resolution is needed, with a client certificate instead of anonymous access."""
        cert, key = write_client_cert(
            self.pki_dir,
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            "system:masters",
        )
        return [
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={cert}",
            f"--kubelet-client-key={key}",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.workdir / "pki"
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-nodeipam",
            # Client-side rate limits sized for tests that create a thousand objects at once.
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--profiling=false",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            str(self.binaries.kube_scheduler),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            str(self.binaries.kwok),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={CLUSTER_DIR / 'stages.yaml'}",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
        ]
