"""The tiny Qwen3 and its LoRA adapters on a local hub, and the ModelDeployment that serves them
on vLLM's CPU build: shared by the LoRA engine test and benchmarks/lora.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from berth_operator.controller.naming import server_labels
from openai import OpenAI

from tests.cluster.kubectl import Kubectl
from tests.engines.runner import tiny_model_dir
from tests.engines.vllm_server import BUILDER, ENVIRONMENT, TEST_EXTRA_ARGS, VllmServer
from tests.hub.download import download_into, repo_from_directory
from tests.hub.server import LocalHub
from tests.operator.helpers import model_deployment

NAME = "lora-qwen3"
BASE_REPO = "tiny/qwen3-dense"
POD = f"{NAME}-0"
LORA = {"maxLoras": 2, "maxLoraRank": 16}
SETTINGS = {
    "servedModelName": "tiny",
    "maxModelLen": 512,
    "lora": LORA,
    "extraArgs": TEST_EXTRA_ARGS,
}
MESSAGES = [{"role": "user", "content": "What is the weather like in Paris today?"}]


def adapter(name: str) -> dict[str, str]:
    return {"name": name, "repo": f"tiny/{name}-lora"}


class Hub:
    """The tiny base model and its adapters on a local hub; each fetched by the real download
    Job into one cache when the test says so."""

    def __init__(self, work: Path) -> None:
        self.built = tiny_model_dir(ENVIRONMENT, BUILDER)
        self.cache = work / "cache"
        self.hub = LocalHub().start()
        self.hub.add(repo_from_directory(BASE_REPO, self.built / "dense"))
        for path in sorted((self.built / "adapters").iterdir()):
            self.hub.add(repo_from_directory(adapter(path.name)["repo"], path))

    def download(self, repo: str) -> None:
        download_into(self.hub, self.cache, repo)

    def stop(self) -> None:
        self.hub.stop()


def resource(*names: str) -> dict[str, Any]:
    body = model_deployment(NAME, engine="vllm", repo=BASE_REPO)
    body["spec"]["vllm"] = {
        "servedModelName": "tiny",
        "lora": LORA,
        "adapters": [adapter(n) for n in names],
    }
    return body


def pod_object(kubectl: Kubectl) -> None:
    """The Pod object POD, as the resource's Deployment would make it, so that an operator that
    watches the namespace keeps that pod's adapter reports (it drops those of pods that are
    gone). Its node selector matches no node: the supervisor runs here, not in it."""
    container = {"name": "server", "image": "berth.invalid/never-pulled:0"}
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": POD, "labels": server_labels(NAME, "vllm")},
            "spec": {"nodeSelector": {"berth.dev/no-such-node": "true"}, "containers": [container]},
        }
    )


def start_server(kubectl: Kubectl, cache: Path) -> VllmServer:
    """The supervisor of the resource's pod POD, as the pod runs it, reporting into it."""
    pod_object(kubectl)
    return VllmServer(
        cache,
        BASE_REPO,
        SETTINGS,
        KUBECONFIG=str(kubectl.plane.kubeconfig),
        POD_NAMESPACE=kubectl.namespace,
        POD_NAME=POD,
        BERTH_MODELDEPLOYMENT=NAME,
    )


def answer(client: OpenAI, model: str) -> str:
    completion = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=12, temperature=0, seed=7
    )
    return completion.choices[0].message.content or ""
