"""A real node whose test process was killed is cleaned up by the next one that starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.nodehost import (
    cgroup_pids,
    leftover_shims,
    network_namespaces,
    node_mounts,
)
from tests.cluster.realnode import RealNode

REPO = Path(__file__).resolve().parents[2]


def _kube_chains() -> list[str]:
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return [line for line in rules.splitlines() if line.startswith(":KUBE-")]


def test_the_next_node_removes_what_a_killed_one_left(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    workdir = tmp_path_factory.mktemp("crash")  # short: the kubelet's unix sockets live there
    crashed = workdir / "crashed"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.realnode_recovery.crashing_node", str(crashed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    node = RealNode(workdir=workdir / "next" / "node")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", "the crashing node never started"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        # The pod, its shim, its mounts and the Service rules outlive the killed test process.
        assert cgroup_pids() and leftover_shims() and node_mounts(crashed / "node")
        assert _kube_chains()
    finally:
        child.kill()
        child.wait()
        node.claim_host()  # whatever the killed node reached, the next one cleans it up
    try:
        assert cgroup_pids() == []
        assert leftover_shims() == []
        assert node_mounts(crashed / "node") == []
        assert network_namespaces() == []
        assert _kube_chains() == []
    finally:
        node.stop()
    assert node.leftovers() == []
