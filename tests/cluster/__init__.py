"""A real Kubernetes control plane on loopback (etcd, kube-apiserver, controller-manager, scheduler, kwok)."""

from tests.cluster.controlplane import ControlPlane, ControlPlaneError
from tests.cluster.nodes import FakeNode, default_nodes

__all__ = ["ControlPlane", "ControlPlaneError", "FakeNode", "default_nodes"]
