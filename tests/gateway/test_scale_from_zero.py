"""Scaling from zero through the gateway, with the real operator: a request for a model at zero
replicas is held until Berth's Ready and then answered; the replicas follow the requests in
flight of every gateway replica; the model goes back to zero after its delay; a model that
cannot start answers 503 with its reason at once.

The operator makes the Deployment and kwok runs its pod; the test plays the model server's part:
it reports the model loaded (status.runtime, with the pod's own service account) and publishes
an EndpointSlice to a stand-in. The pods' image, berth-test/no-ip, has kwok run them without an
address (tests/cluster/stages.yaml), so that no request goes to a kwok address, which is not on
this machine.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from berth_operator.api.metadata import AUTOSCALER_LEASE

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until
from tests.operator.helpers import report_runtime

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")

CHAT = "/v1/chat/completions"
FAST = ("--autoscale-interval=0.2", "--lease-seconds=2")
NO_IP = "berth-test/no-ip:1"


def body(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


def replicas(kubectl: Kubectl, name: str) -> int:
    return kubectl.get("md", name)["spec"]["replicas"]


def reason_of(md: dict[str, Any], type_: str) -> str | None:
    """The reason of the resource's condition `type_`, None before the operator wrote it."""
    found = [c for c in (md.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    return found[0]["reason"] if found else None


def ready_pod(kubectl: Kubectl, name: str) -> str | None:
    pods = kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={name}")["items"]
    for pod in pods:
        conditions = pod.get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return pod["metadata"]["name"]
    return None


def error_of(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, Any]]:
    return answer[0], json.loads(answer[2])["error"]


def test_a_request_at_zero_is_answered_once_ready_and_the_model_scales_back(
    cluster: ControlPlane, kubectl: Kubectl, start_gateway: Any, stand_ins: Any, tmp_path: Path
) -> None:
    upstream = stand_ins("a")
    autoscaling = {"maxReplicas": 2, "targetInFlight": 1, "scaleDownDelaySeconds": 2}
    kubectl.apply(
        model_deployment("chat", "vllm", replicas=0, autoscaling=autoscaling, image=NO_IP)
    )
    kubectl.wait_for(
        "md",
        "chat",
        lambda m: (
            reason_of(m, "CacheReady") == "Downloaded" and reason_of(m, "Ready") == "ScaledToZero"
        ),
        what="the model downloaded, at zero replicas",
    )
    first = start_gateway("--identity=first", *FAST)
    wait_until(
        lambda: kubectl("get", "lease", AUTOSCALER_LEASE, check=False).returncode == 0,
        "the autoscaler Lease",
    )
    second = start_gateway("--identity=second", *FAST)
    leader = kubectl.get("lease", AUTOSCALER_LEASE)["spec"]["holderIdentity"]
    follower = second if leader == "first" else first
    listed = follower.models()["chat"]
    assert (listed["available"], listed["replicas"], listed["scalesFromZero"]) == (
        "onRequest",
        0,
        True,
    )
    url = follower.url + CHAT

    # the stand-in holds what reaches it until released: the model stays busy throughout
    hold = {"Content-Type": "application/json", "X-Test-Hold": "1"}
    with ThreadPoolExecutor(4) as pool:
        # held by the gateway while the model scales to one and its pod runs (kwok: at once) ...
        held = pool.submit(http, "POST", url, body("chat"), hold)
        kubectl.wait_for("md", "chat", lambda m: m["spec"]["replicas"] == 1, what="1 replica")
        pod = wait_until(lambda: ready_pod(kubectl, "chat"), "a ready pod of chat")
        kubectl.apply(endpoint_slice("chat", upstream.address, upstream.port))
        follower.wait_for_endpoints("chat", 1)
        # ... and still held, though its pod is ready: Berth's Ready waits for the runtime
        assert not held.done()
        assert upstream.stats()["in_flight"] == 0
        reported = report_runtime(
            kubectl, cluster, "chat", {"state": "Ready", "pod": pod}, tmp_path
        )
        assert reported.returncode == 0, reported.stderr
        wait_until(lambda: upstream.stats()["in_flight"] == 1, "the request at the stand-in")
        assert reason_of(kubectl.get("md", "chat"), "Ready") == "ModelServing"

        # a second request in flight on the follower, one per replica: the elected gateway
        # reads both from the follower's load Lease and adds a replica
        busy = pool.submit(http, "POST", url, body("chat"), hold)
        wait_until(
            lambda: upstream.stats()["in_flight"] == 2 or busy.done(),
            "two requests at the stand-in",
        )
        assert not busy.done(), busy.result()
        kubectl.wait_for("md", "chat", lambda m: m["spec"]["replicas"] == 2, what="2 replicas")
        upstream.release()
        for answer in (held.result(), busy.result()):
            assert answer[0] == 200, answer
            assert json.loads(answer[2])["system_fingerprint"] == "a"

    # idle for the delay: back to zero, and the pods go
    kubectl.wait_for("md", "chat", lambda m: m["spec"]["replicas"] == 0, what="0 replicas")
    kubectl("wait", "--for=delete", "pod", "-l", "berth.dev/modeldeployment=chat", "--timeout=30s")
    # one scale-up from zero, written by the follower or (had its look come first) the leader
    ups = 'berth_gateway_scale_ups_from_zero_total{model="chat"} 1.0'
    assert [ups in g.metrics() for g in (first, second)].count(True) == 1
    waits = 'berth_gateway_scale_from_zero_wait_seconds_count{model="chat"} 1.0'
    assert waits in follower.metrics()


def test_a_model_that_cannot_start_answers_with_its_reason_at_once(
    kubectl: Kubectl, start_gateway: Any
) -> None:
    autoscaling = {"scaleDownDelaySeconds": 2}
    kubectl.apply(
        # the download of berth-test/gated fails (kwok's stage): gated, and no token is set
        model_deployment("gated", "vllm", replicas=0, autoscaling=autoscaling),
        # no node has 16 GPUs
        model_deployment(
            "huge", "vllm", replicas=0, autoscaling=autoscaling, resources={"gpus": 16}
        ),
    )
    kubectl.wait_for(
        "md",
        "gated",
        lambda m: reason_of(m, "CacheReady") == "AuthRequired",
        what="the download's AuthRequired",
    )
    gateway = start_gateway(*FAST, "--hold-timeout=600")
    url = gateway.url + CHAT
    headers = {"Content-Type": "application/json"}
    assert gateway.models()["gated"]["available"] == "no"

    # at zero, a download that failed: 503 at once, and no scale-up that could not help
    status, error = error_of(http("POST", url, body("gated"), headers))
    assert (status, error["code"]) == (503, "AuthRequired"), error
    assert "cannot start" in error["message"] and "tokenSecretRef" in error["message"]
    assert replicas(kubectl, "gated") == 0

    # scaled up for the request, its pod finds no node: 503 with the operator's reason as soon
    # as it says so, not after the hold timeout
    status, error = error_of(http("POST", url, body("huge"), headers))
    assert (status, error["code"]) == (503, "Unschedulable"), error
    assert "cannot start" in error["message"] and "Insufficient nvidia.com/gpu" in error["message"]
    assert replicas(kubectl, "huge") == 1
    # nothing in flight: back to zero after the delay
    kubectl.wait_for("md", "huge", lambda m: m["spec"]["replicas"] == 0, what="0 replicas")
