"""Runs the demo: a local control plane with a real node and two fake GPU nodes, Berth installed
by Helm from its images, two tiny models served for real in their engines' images, and
Qwen3-VL scheduled on a fake GPU node."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import openai
import yaml

from tests.engines.forms import multipart
from tests.engines.speech import conversation, wav_bytes
from tests.hub.download import MiB, repo_from_directory
from tests.hub.server import Faults
from tests.incontainers.stack import SYSTEM_NAMESPACE, ContainerStack, ImagesMissing
from tests.incontainers.tiny_models import publish_tiny_models, tiny_model_manifest

REPO = Path(__file__).resolve().parents[1]
MODELS = ("diarization", "canary")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(stack: ContainerStack, *args: str, namespace: str | None = None) -> None:
    """Prints a kubectl command and its output: in the models' namespace unless told, with no
    namespace for "" (cluster-scoped objects)."""
    assert stack.plane is not None
    where = ("-n", namespace or stack.namespace) if namespace != "" else ()
    print(f"$ kubectl {' '.join((*where, *args))}")
    print(stack.plane.kubectl(*where, *args).stdout.rstrip(), flush=True)


def watch_until_ready(stack: ContainerStack, names: tuple[str, ...], timeout: float) -> float:
    """Prints each new line of `kubectl get md` until the named resources are Ready."""
    began, seen = time.monotonic(), set()
    while time.monotonic() - began < timeout:
        lines = stack.kubectl("get", "md", *names).stdout.splitlines()
        for line in lines[1:]:
            key = " ".join(line.split()[:-1])  # without AGE
            if key not in seen:
                seen.add(key)
                print(f"  {time.monotonic() - began:5.1f} s  {line}", flush=True)
        phases = [
            m["status"].get("phase")
            for m in stack.kubectl.get("md")["items"]
            if m["metadata"]["name"] in names and m.get("status")
        ]
        if phases.count("Ready") == len(names):
            return time.monotonic() - began
        time.sleep(1)
    raise TimeoutError(f"{names} not Ready after {timeout} s")


def ask_the_models(stack: ContainerStack) -> None:
    speech = wav_bytes(
        conversation(
            [
                ("en+m3", "Good morning, this is the first speaker."),
                ("en+f3", "Hello, and this is the second voice."),
            ]
        )
    )
    url = stack.service_address("diarization")
    body, headers = multipart({}, speech)
    request = urllib.request.Request(url + "/api/diarization/process", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as reply:
        answer = json.loads(reply.read())
    print(f"POST {url}/api/diarization/process (its Service; two espeak-ng voices)")
    for segment in answer["segments"][:6]:
        print(f"  {segment['speaker']}: {segment['start']:.2f} s - {segment['end']:.2f} s")

    gateway = stack.gateway_address()
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    text = client.audio.transcriptions.create(
        model="canary", file=("talk.wav", io.BytesIO(speech), "audio/wav"), response_format="text"
    )
    print(f"openai.audio.transcriptions.create(model='canary') at the gateway, {gateway}/v1:")
    print(f"  {str(text).strip()[:100]!r}  (random weights: the words are noise, the path is real)")
    with urllib.request.urlopen(gateway + "/v1/models", timeout=30) as reply:
        listed = json.loads(reply.read())["data"]
    print(f"GET {gateway}/v1/models:")
    for model in listed:
        print(f"  {model['id']}: ready {model['ready']}, {model['endpoints']} endpoint(s)")


def run(stack: ContainerStack) -> None:
    print(f"up at {stack.plane.server if stack.plane else '?'}")
    show(stack, "get", "nodes", "-L", "nvidia.com/gpu.product,nvidia.com/gpu.count", namespace="")
    show(stack, "get", "pods", "-o", "wide", namespace=SYSTEM_NAMESPACE)

    say("Publishing two tiny random models on the local hub (built once, then cached)")
    publish_tiny_models(stack.hub)
    stack.hub.repos["berth-test/tiny-diarization"].faults = Faults(bytes_per_second=MiB)
    for repo in ("berth-test/tiny-diarization", "berth-test/tiny-canary"):
        size = sum(len(c) for c in stack.hub.repos[repo].files.values())
        print(f"  {repo}: {size / MiB:.1f} MiB")
    qwen_config = REPO / "tests" / "engines" / "qwen3-vl-30b-a3b"
    stack.hub.add(repo_from_directory("Qwen/Qwen3-VL-30B-A3B-Instruct", qwen_config))

    say("Applying them (gpus: 0: the real node), and following kubectl get md")
    print("The node pulls each engine's image (about 8 GB) the first time: a few minutes.")
    manifests = [
        tiny_model_manifest("diarization", "berth-test/tiny-diarization"),
        tiny_model_manifest("canary", "berth-test/tiny-canary"),
    ]
    print(yaml.safe_dump(manifests[0], sort_keys=False).rstrip())
    stack.kubectl.apply(*manifests)
    seconds = watch_until_ready(stack, MODELS, timeout=900)
    print(f"apply to Ready: {seconds:.1f} s")
    for name in MODELS:  # as the resource itself tells it (kubectl describe md shows it too)
        startup = stack.kubectl.get("md", name)["status"]["startup"]
        steps = ", ".join(f"{s['step']} +{s['seconds']:.0f} s" for s in startup["steps"])
        print(f"  {name} (pod {startup['pod']} on node {startup['node']}): {steps}")
    show(stack, "get", "md", "-o", "wide")
    show(stack, "get", "pods", "-o", "wide")
    show(
        stack,
        "get",
        "md",
        "canary",
        "-o",
        "jsonpath={.status.runtime.dependencies}{'\\n'}{.status.runtime.details}",
    )

    say("Asking them: pyannote through its Service, Canary through Berth's gateway")
    ask_the_models(stack)

    say("Qwen3-VL-30B on vLLM, from examples/: scheduled on a fake GPU node")
    qwen = yaml.safe_load((REPO / "examples" / "qwen3-vl-vllm.yaml").read_text())
    qwen["spec"]["model"]["allowPatterns"] = ["*.json"]  # the local hub has its config only
    stack.kubectl.apply(qwen)
    name = qwen["metadata"]["name"]
    stack.kubectl.wait_for(
        "md", name, lambda m: (m.get("status") or {}).get("phase") == "Starting", timeout=120
    )
    show(stack, "get", "md", name, "-o", "wide")
    show(stack, "get", "pods", "-l", f"berth.dev/modeldeployment={name}", "-o", "wide")
    print(
        "kwok runs no container: the pod is 'Running' on a fake node, but no vLLM reports\n"
        "itself loaded, so Berth says Starting, not Ready. On a GPU cluster the same resource\n"
        "serves the OpenAI API on its Service and through the gateway."
    )


def main() -> int:
    if os.geteuid() != 0:
        print("the demo runs a real kubelet and containerd on this machine: run it as root")
        return 2
    say("Starting a control plane on this machine's bridge address, a real node (containerd,")
    print("kubelet, kube-proxy), two fake 8-GPU nodes (kwok), a local Hugging Face hub, and")
    print("Berth's chart (operator and gateway) from its images in the local registry")
    try:
        with tempfile.TemporaryDirectory() as workdir, ContainerStack(Path(workdir)) as stack:
            run(stack)
    except ImagesMissing as missing:
        print(missing)
        return 2
    say("Stopped everything")
    return 0


if __name__ == "__main__":
    sys.exit(main())
