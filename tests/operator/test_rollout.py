"""A change of the pod template rolls the model's pods as spec.rollout says: a surge pod first
(none stopped before its replacement is ready); on a full node, in place, one pod at a time; and
a node drain takes one of the model's pods at a time (its PodDisruptionBudget)."""

from __future__ import annotations

import time

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.cluster.nodes import FakeNode
from tests.gpu_nodes import on_own_nodes, own_gpu_nodes
from tests.operator.helpers import model_deployment

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")


def rolling_update(kubectl: Kubectl) -> dict:
    return kubectl.get("deployment", "speech")["spec"]["strategy"]["rollingUpdate"]


def rolled_out(deployment: dict) -> bool:
    status = deployment.get("status") or {}
    return (
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == 2
        and status.get("availableReplicas") == 2
        and status.get("replicas") == 2
    )


def test_a_rollout_surges_where_a_gpu_is_free_and_goes_in_place_where_none_is(
    cluster: ControlPlane, kubectl: Kubectl
):
    ns = kubectl.namespace
    with own_gpu_nodes(cluster, ns, FakeNode("gpus", gpus=2)):
        md = model_deployment(
            "speech", resources={"gpus": 1}, replicas=2, scheduling=on_own_nodes(ns)
        )
        kubectl.apply(md)
        kubectl.wait_for("deployment", "speech", rolled_out, timeout=60)
        assert rolling_update(kubectl) == {"maxSurge": 1, "maxUnavailable": 0}
        budget = kubectl.get("poddisruptionbudget", "speech")["spec"]
        assert budget["maxUnavailable"] == 1

        assert kubectl.get("deployment", "speech")["metadata"]["generation"] == 1

        # a new revision: the surge pod finds no GPU free on the full node
        md["spec"]["model"]["revision"] = "v2"
        kubectl.apply(md)
        deadline = time.monotonic() + 90
        while True:
            deployment = kubectl.get("deployment", "speech")
            template = deployment["spec"]["template"]["metadata"]["annotations"]
            strategy = deployment["spec"]["strategy"]["rollingUpdate"]
            surging = strategy == {"maxSurge": 1, "maxUnavailable": 0}
            if "v2" in str(template) and rolled_out(deployment) and surging:
                break  # done, and surging again for the next rollout
            assert time.monotonic() < deadline, deployment.get("status")
            time.sleep(0.5)
        # the Deployment's spec changed three times: the new revision, in place, surging again
        # (no pod of the new revision could be placed beside the two old ones)
        assert deployment["metadata"]["generation"] == 4
