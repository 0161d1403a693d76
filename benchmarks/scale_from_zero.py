"""Benchmark: the time from the first request for a model at zero replicas to its answer, through
the gateway and the real operator on the local control plane, split into

- scale: the request until the ModelDeployment's replicas read 1 (the gateway's write),
- scheduling: until the pod is bound to a node,
- start: until the pod is Ready,
- load: until Berth's Ready (the runtime's report, then the operator's status),
- forward: until the answer.

Baselines measured in the same run: a request to the model once it is up (the gateway alone),
and a plain Deployment scaled from 0 to 1 until its pod is Ready (the control plane's floor).

On kwok nodes the split is what it is: no image is pulled and no container starts (start is
kwok's own stage), and no model loads (load is this script's runtime report, written as soon as
the pod is Ready, plus the operator's reconcile). On a real cluster, start and load dominate.

    python -m benchmarks.scale_from_zero [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from berth_operator.kube import ModelDeploymentResource
from lightkube import Client, KubeConfig
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import (
    GatewayProcess,
    StandIn,
    endpoint_slice,
    http,
    local_address,
    model_deployment,
)
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd

NAMESPACE = "bench"
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
JSON = {"Content-Type": "application/json"}
PHASES = ("scale", "scheduling", "start", "load", "forward")


def pod_state(client: Client, selector: dict[str, str]) -> tuple[str | None, bool, bool]:
    """(name, bound to a node, Ready) of the first live pod the selector picks."""
    for pod in client.list(Pod, namespace=NAMESPACE, labels=selector):
        if pod.metadata.deletionTimestamp:
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return pod.metadata.name, bool(pod.spec.nodeName), ready
    return None, False, False


def served(client: Client) -> bool:
    md = client.get(ModelDeploymentResource, "chat", namespace=NAMESPACE).to_dict()
    status = md.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return (
        ready.get("reason") == "ModelServing"
        and status.get("observedGeneration") == md["metadata"]["generation"]
    )


def one_round(client: Client, gateway: GatewayProcess) -> dict[str, float]:
    """One request at zero replicas; the time each step was first seen, from the request."""
    answer: dict[str, Any] = {}
    selector = {"berth.dev/modeldeployment": "chat"}

    def send() -> None:
        answer["status"] = http("POST", gateway.url + "/v1/chat/completions", BODY, JSON)[0]
        answer["at"] = time.perf_counter()

    started = time.perf_counter()
    sender = threading.Thread(target=send)
    sender.start()
    seen: dict[str, float] = {}
    while "at" not in answer:
        now = time.perf_counter() - started
        if "scale" not in seen:
            scale = client.get(ModelDeploymentResource.Scale, "chat", namespace=NAMESPACE)
            if scale.spec.replicas:
                seen["scale"] = now
        elif "load" not in seen:
            name, bound, ready = pod_state(client, selector)
            if bound:
                seen.setdefault("scheduling", now)
            if ready and name:
                seen.setdefault("start", now)
                if "reported" not in seen:
                    # the runtime's part: the model is loaded as soon as the pod runs
                    client.patch(
                        ModelDeploymentResource.Status,
                        "chat",
                        {"status": {"runtime": {"state": "Ready", "pod": name}}},
                        namespace=NAMESPACE,
                        patch_type=PatchType.MERGE,
                        field_manager="berth-runtime",
                    )
                    seen["reported"] = now
            if "reported" in seen and served(client):
                seen["load"] = now
        time.sleep(0.005)
    sender.join()
    assert answer["status"] == 200, answer
    seen["forward"] = answer["at"] - started
    steps, previous = {}, 0.0
    for phase in PHASES:
        steps[phase] = seen[phase] - previous
        previous = seen[phase]
    steps["total"] = previous
    return steps


def wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        time.sleep(0.05)


def at_zero(client: Client) -> bool:
    scale = client.get(ModelDeploymentResource.Scale, "chat", namespace=NAMESPACE)
    return (
        not scale.spec.replicas
        and pod_state(client, {"berth.dev/modeldeployment": "chat"})[0] is None
    )


def plain_deployment_start(client: Client, kubectl: Kubectl) -> float:
    """A plain Deployment on the same nodes, scaled from 0 to 1 until its pod is Ready."""
    labels = {"app": "plain"}
    kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "plain"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "plain:1"}]},
                },
            },
        }
    )

    def scale(replicas: int) -> None:
        client.patch(
            Deployment.Scale,
            "plain",
            {"spec": {"replicas": replicas}},
            namespace=NAMESPACE,
            patch_type=PatchType.MERGE,
        )

    started = time.perf_counter()
    scale(1)
    wait(lambda: pod_state(client, labels)[2], "ready plain pod")
    elapsed = time.perf_counter() - started
    scale(0)
    wait(lambda: pod_state(client, labels)[0] is None, "no plain pod")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    address = local_address()
    if address is None:
        raise SystemExit("this machine has no address but loopback, which EndpointSlices refuse")
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(workdir=Path(tmp) / "cluster") as plane:
        work = Path(tmp)
        install_crd(plane)
        operator = OperatorProcess(plane, work)
        operator.start()
        stand_in = StandIn(address, work, "a")
        gateway = None
        try:
            plane.kubectl("create", "namespace", NAMESPACE)
            plane.apply(cache_volume_manifest("bench-cache", NAMESPACE, "berth-model-cache"))
            kubectl = Kubectl(plane, NAMESPACE)
            client = Client(config=KubeConfig.from_file(plane.kubeconfig), namespace=NAMESPACE)
            autoscaling = {"maxReplicas": 1, "scaleDownDelaySeconds": 1}
            kubectl.apply(
                # kwok runs this image's pods without an address: only the stand-in answers
                model_deployment(
                    "chat", "vllm", replicas=0, autoscaling=autoscaling, image="berth-test/no-ip:1"
                ),
                endpoint_slice("chat", stand_in.address, stand_in.port),
            )
            gateway = GatewayProcess(
                plane,
                work,
                f"--namespace={NAMESPACE}",
                f"--lease-namespace={NAMESPACE}",
                "--autoscale-interval=0.1",
                "--lease-seconds=2",
            )
            wait(lambda: gateway.models().get("chat", {}).get("available") == "onRequest", "model")
            rounds, warm, plain = [], [], []
            for _ in range(args.rounds):
                wait(lambda: at_zero(client), "the model at zero")
                rounds.append(one_round(client, gateway))
                started = time.perf_counter()
                assert http("POST", gateway.url + "/v1/chat/completions", BODY, JSON)[0] == 200
                warm.append(time.perf_counter() - started)
                plain.append(plain_deployment_start(client, kubectl))
        finally:
            if gateway:
                gateway.stop()
            stand_in.stop()
            operator.stop()

    def median(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:8.1f} ms"

    print(
        f"first request to a model at zero replicas, median of {args.rounds} rounds (kwok nodes):"
    )
    for phase in (*PHASES, "total"):
        print(f"  {phase:<11}{median([r[phase] for r in rounds])}")
    print("baselines, same run:")
    print(f"  request to the model once up, through the gateway  {median(warm)}")
    print(f"  plain Deployment 0 -> 1 until its pod is Ready      {median(plain)}")


if __name__ == "__main__":
    main()
