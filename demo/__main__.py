"""Runs the demo: a local control plane with fake GPU nodes, the operator, the seed examples."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator_process import OperatorProcess, cache_volume_manifest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ("qwen3-vl-vllm.yaml", "canary-nemo-asr.yaml", "pyannote-diarization.yaml")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(plane: ControlPlane, *args: str) -> None:
    print(f"$ kubectl {' '.join(args)}")
    print(plane.kubectl(*args).stdout.rstrip(), flush=True)


def wait_for_phases(kubectl: Kubectl, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = kubectl.get("md")["items"]
        settled = [
            m
            for m in items
            if (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
            and m["status"].get("phase") not in (None, "Downloading")
        ]
        if len(settled) == len(names):
            return
        time.sleep(0.5)


def main() -> int:
    say("Starting a Kubernetes control plane on 127.0.0.1 (etcd, API server, scheduler, kwok)")
    with ControlPlane() as plane, tempfile.TemporaryDirectory() as workdir:
        rss = sum(plane.memory_rss_bytes().values()) / 2**20
        print(f"up in {plane.startup_seconds:.1f} s, {rss:.0f} MiB resident, at {plane.server}")
        show(plane, "get", "nodes", "-L", "nvidia.com/gpu.product,nvidia.com/gpu.count")

        say("Installing the ModelDeployment CRD and starting the operator")
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.berth.dev")
        operator = OperatorProcess(plane, Path(workdir))
        operator.start()
        try:
            kubectl = Kubectl(plane, "default")
            # A volume for the shared cache claim (a real cluster's storage class provides one).
            plane.apply(cache_volume_manifest("demo-cache", "default", "berth-model-cache"))
            kubectl("create", "secret", "generic", "hf-token", "--from-literal=token=hf_demo")

            say("Applying the three seed models, and one that asks for 16 GPUs per replica")
            for example in EXAMPLES:
                show(plane, "apply", "-f", str(REPO / "examples" / example))
            too_big = yaml.safe_load((REPO / "examples" / EXAMPLES[0]).read_text())
            too_big["metadata"]["name"] = "too-big"
            too_big["spec"]["resources"]["gpus"] = 16
            kubectl.apply(too_big)
            wait_for_phases(kubectl, ["qwen3-vl", "canary", "diarization", "too-big"])
            show(plane, "get", "md", "-o", "wide")
            print(
                "\nThe fake nodes run no containers, so no model server reports 'loaded': the\n"
                "resources stay Starting (Ready needs the runtime's own report). too-big waits\n"
                "for GPUs, with the scheduler's words in its Ready condition:"
            )
            show(plane, "get", "md", "too-big", "-o", "jsonpath={.status.conditions[0].message}")
            print()
            show(plane, "get", "deploy,svc,jobs,pvc")

            say("Scaling canary to 0 unloads it and frees its GPU")
            show(plane, "scale", "md", "canary", "--replicas=0")
            kubectl.wait_for("md", "canary", lambda m: m["status"].get("phase") == "Stopped")
            show(plane, "get", "md", "canary")
        finally:
            operator.stop()
        say("Stopping the control plane")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
