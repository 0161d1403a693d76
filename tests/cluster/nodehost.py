"""The host side of a real node: one per machine (a lock), its bridge and forwarding guard, the
sysctls it changes, its cgroup root, and removing all of it again, also after a crashed run."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel

# Host-wide: kube-proxy and the kubelet own global iptables chains, so one real node per machine.
STATE_DIR = Path("/run/berth-realnode")
BRIDGE = "berthrn0"
POD_CIDR = "10.89.0.0/24"
GATEWAY = "10.89.0.1"  # the bridge's address: node IP, kubelet and API server address
# containerd's socket: short (a work directory may be too deep for a unix socket) and fixed, so
# that its shims are found after a crash whatever became of the work directory.
CONTAINERD_SOCKET = STATE_DIR / "containerd.sock"
SHIM_SOCKETS = Path("/run/containerd/s")  # fixed in containerd 1.6, hashed per shim
CGROUP_ROOT = "berth-realnode"
GUARD_CHAIN = "BERTH-REALNODE"  # mangle FORWARD: nothing crosses between the bridge and outside
CGROUP_FS = Path("/sys/fs/cgroup")
# The kubelet rewrites the first three (protectKernelDefaults is off); the CNI bridge and the
# node's routing of Service traffic between pods need the last.
SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "net.ipv4.ip_forward")
# Chains the kubelet and kube-proxy leave behind after `kube-proxy --cleanup`.
LEFTOVER_CHAINS = ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY")
FIREWALL_CHAIN = "KUBE-FIREWALL"


class HostRecord(BaseModel):
    """What a running node changed on the host, kept in STATE_DIR so a later run can undo it."""

    workdir: str
    sysctls: dict[str, str]
    processes: dict[str, int] = {}


class HostBusy(RuntimeError):
    """Another real node runs on this machine."""


def _run(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    return {name: _sysctl_path(name).read_text().strip() for name in SYSCTLS}


def _hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy; the kubelet makes its root in the unified one too."""
    return sorted(p for p in CGROUP_FS.iterdir() if p.is_dir())


def _v1_hierarchies() -> list[Path]:
    """Every cgroup v1 hierarchy (the unified v2 mount holds no controllers here)."""
    return [p for p in _hierarchies() if p.name != "unified"]


class NodeHost:
    """Holds the machine's real-node lock; prepares and restores the host around one node."""

    def __init__(self, workdir: Path, kube_proxy: Path, lock_timeout: float = 600.0) -> None:
        self.workdir = workdir
        self.kube_proxy = kube_proxy
        self.lock_timeout = lock_timeout
        self._lock: int | None = None
        self.record: HostRecord | None = None

    # ---- lock and record ----------------------------------------------------------------

    @property
    def record_file(self) -> Path:
        return STATE_DIR / "host.json"

    def acquire(self) -> None:
        """Takes the machine's lock (waiting for another node to finish), undoes what a crashed
        run left behind, and prepares the host for a node in `workdir`."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(STATE_DIR / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise HostBusy(
                        f"another real node holds {STATE_DIR / 'lock'} for over "
                        f"{self.lock_timeout:.0f} s; wait for its tests to end (HostBusy)"
                    ) from None
                time.sleep(1)
        self._lock = fd
        if self.record_file.exists():
            previous = HostRecord.model_validate_json(self.record_file.read_text())
            restore_host(previous, self.kube_proxy)
        self.record = HostRecord(workdir=str(self.workdir), sysctls=read_sysctls())
        self.save()
        prepare_host()

    def save(self) -> None:
        assert self.record is not None
        self.record_file.write_text(self.record.model_dump_json(indent=2))

    def release(self) -> None:
        """Restores the host, forgets the record and lets the next node in."""
        if self.record is not None:
            restore_host(self.record, self.kube_proxy)
            self.record_file.unlink(missing_ok=True)
            self.record = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


# ---- preparing ----------------------------------------------------------------------------


def prepare_host() -> None:
    """Bridge with the gateway address, the forwarding guard, forwarding on, cgroup root."""
    if _run("ip", "link", "show", BRIDGE).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge", check=True)
    _run("ip", "addr", "replace", f"{GATEWAY}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE, check=True)
    _run("ip", "link", "set", BRIDGE, "up", check=True)
    ipt = ("iptables", "-w", "-t", "mangle")
    _run(*ipt, "-N", GUARD_CHAIN)
    _run(*ipt, "-F", GUARD_CHAIN, check=True)
    _run(*ipt, "-A", GUARD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP", check=True)
    _run(*ipt, "-A", GUARD_CHAIN, "-o", BRIDGE, "!", "-i", BRIDGE, "-j", "DROP", check=True)
    if _run(*ipt, "-C", "FORWARD", "-j", GUARD_CHAIN).returncode != 0:
        _run(*ipt, "-I", "FORWARD", "-j", GUARD_CHAIN, check=True)
    _sysctl_path("net.ipv4.ip_forward").write_text("1")
    for hierarchy in _v1_hierarchies():
        (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)
    cpuset = CGROUP_FS / "cpuset"
    for name in ("cpuset.cpus", "cpuset.mems"):
        (cpuset / CGROUP_ROOT / name).write_text((cpuset / name).read_text())


# ---- restoring ----------------------------------------------------------------------------


def _owned_pid(pid: int, marker: str) -> bool:
    """`pid` still runs a command that names `marker` (guards against reused pids)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _kill_and_wait(pids: list[int], grace: float = 10.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def cgroup_pids() -> list[int]:
    """Every process in the node's cgroup tree: containers (and pause processes) still alive."""
    pids: set[int] = set()
    for hierarchy in _hierarchies():
        for procs in (hierarchy / CGROUP_ROOT).rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in procs.read_text().split()}
    return sorted(pids)


def leftover_shims() -> list[int]:
    """containerd shims serving the node's containerd (they outlive containerd)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = proc.joinpath("cmdline").read_bytes().split(b"\0")
                shim = argv[0].endswith(b"containerd-shim-runc-v2")
                if shim and str(CONTAINERD_SOCKET).encode() in argv:
                    pids.append(int(proc.name))
    return pids


def stale_shim_sockets() -> list[Path]:
    """Shim sockets that nothing listens on any more (a killed shim leaves its socket in the
    directory every containerd 1.6 shares)."""
    listening = {line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    return [p for p in SHIM_SOCKETS.glob("*") if p.is_socket() and str(p) not in listening]


def node_mounts(workdir: Path) -> list[str]:
    """Mount points the node made: under its workdir and CRI's network namespaces."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(f"{workdir}/") or point.startswith("/run/netns/cni-"):
            points.append(point)
    return points


def network_namespaces() -> list[str]:
    netns = Path("/run/netns")
    return (
        sorted(p.name for p in netns.iterdir() if p.name.startswith("cni-"))
        if netns.is_dir()
        else []
    )


def _delete_chain(ipt: str, table: str, chain: str, *hooks: str) -> None:
    for hook in hooks:
        while _run(ipt, "-w", "-t", table, "-D", hook, "-j", chain).returncode == 0:
            pass
    _run(ipt, "-w", "-t", table, "-F", chain)
    _run(ipt, "-w", "-t", table, "-X", chain)


def policy_chains() -> list[str]:
    """The iptables chains kube-router's firewall made (the NetworkPolicy enforcer)."""
    rules = _run("iptables-save", "-t", "filter").stdout
    return [
        line.split()[0][1:]
        for line in rules.splitlines()
        if line.startswith((":KUBE-ROUTER-", ":KUBE-POD-FW-", ":KUBE-NWPLCY-"))
    ]


def policy_sets() -> list[str]:
    """The ipsets kube-router's firewall made."""
    names = _run("ipset", "list", "-n").stdout.split()
    return [n for n in names if n.startswith(("KUBE-", "kube-router"))]


def remove_policy_rules() -> None:
    """Removes what kube-router's firewall wrote (its own cleanup leaves it on this kernel):
    the jumps into its chains, its chains, then its ipsets."""
    chains = policy_chains()
    for line in _run("iptables-save", "-t", "filter").stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["-A"] and parts[1] not in chains and parts[-1] in chains:
            _run("iptables", "-w", "-t", "filter", "-D", *shlex.split(line)[1:])
    for action in ("-F", "-X"):
        for chain in chains:
            _run("iptables", "-w", "-t", "filter", action, chain)
    for name in policy_sets():
        _run("ipset", "destroy", name)


def restore_host(record: HostRecord, kube_proxy: Path) -> None:
    """Undoes everything a node in `record.workdir` did, whether it stopped cleanly or not:
    processes, Service rules, containers, mounts, the bridge, iptables chains, sysctls and
    cgroups."""
    workdir = Path(record.workdir)
    for pid in record.processes.values():
        if _owned_pid(pid, str(workdir)):
            _kill_and_wait([pid])
    _run(str(kube_proxy), "--cleanup")
    remove_policy_rules()
    _kill_and_wait(cgroup_pids())
    _kill_and_wait(leftover_shims())
    for point in sorted(node_mounts(workdir), reverse=True):
        if _run("umount", point).returncode != 0:
            _run("umount", "-l", point)
    for name in network_namespaces():
        Path("/run/netns", name).unlink(missing_ok=True)
    _run("ip", "link", "del", BRIDGE)
    _delete_chain("iptables", "mangle", GUARD_CHAIN, "FORWARD")
    for ipt in ("iptables", "ip6tables"):
        for table in ("mangle", "filter", "nat"):
            for chain in LEFTOVER_CHAINS:
                _run(ipt, "-w", "-t", table, "-X", chain)
        _delete_chain(ipt, "filter", FIREWALL_CHAIN, "INPUT", "OUTPUT")
    for socket in [*STATE_DIR.glob(f"{CONTAINERD_SOCKET.name}*"), *stale_shim_sockets()]:
        socket.unlink()
    for name, value in record.sysctls.items():
        _sysctl_path(name).write_text(value)
    for hierarchy in _hierarchies():
        root = hierarchy / CGROUP_ROOT
        if root.is_dir():
            for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()


def leftovers(workdir: Path) -> list[str]:
    """What a node left on the host; empty once it is fully gone."""
    found = [f"mount {p}" for p in node_mounts(workdir)]
    found += [f"network namespace {n}" for n in network_namespaces()]
    found += [f"process {p} in the node's cgroups" for p in cgroup_pids()]
    found += [f"containerd shim {p}" for p in leftover_shims()]
    found += [f"shim socket {p}" for p in stale_shim_sockets()]
    if _run("ip", "link", "show", BRIDGE).returncode == 0:
        found.append(f"bridge {BRIDGE}")
    for ipt in ("iptables", "ip6tables"):
        rules = _run(f"{ipt}-save").stdout
        found += [
            f"{ipt} chain {line.split()[0][1:]}"
            for line in rules.splitlines()
            if line.startswith(":KUBE-") or line.startswith(f":{GUARD_CHAIN}")
        ]
    found += [f"ipset {name}" for name in policy_sets()]
    found += [f"cgroup {h / CGROUP_ROOT}" for h in _hierarchies() if (h / CGROUP_ROOT).exists()]
    return found
