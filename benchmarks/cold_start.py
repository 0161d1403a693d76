"""Benchmark: a model's cold start on the real node, apply to Ready, split as the resource's own
status.startup says it (download, scheduling, image pull, container start, model load), for

- (a) a node without the engine's image (a fresh node: no engine image at all),
- (c) a node holding the other engine's image (Canary's NeMo image on a node with pyannote's),
  with the bytes of its layers the node already holds,
- (b) a primed node: the chart's image prefetch on, the image removed from the node again, then
  kept there by the prefetch DaemonSet of a model at zero replicas before the model is applied.
  Target: apply to Ready at most 1.2x its download + load.

Each model's weights are downloaded afresh (each case's model is new to the cache). Builds nothing:
the images must be in the local registry (`make test-images`).

    python -m benchmarks.cold_start
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from images.registry import layers
from tests.engines.runner import tiny_model_dir
from tests.hub.download import repo_from_directory
from tests.incontainers.conftest import STALL_SECONDS
from tests.incontainers.stack import ContainerStack
from tests.incontainers.tiny_models import publish_tiny_models, tiny_model_manifest
from tests.operator.helpers import model_deployment
from tests.realnode.waiting import wait_until

STEPS = ("PodCreated", "Scheduled", "ImagePulled", "ContainerStarted", "ModelLoaded")
DIARIZATION, CANARY = "berth-test/tiny-diarization", "berth-test/tiny-canary"
KEEPER = "berth-test/tiny-diarization-keeper"


def empty_cache(stack: ContainerStack) -> None:
    """The cached weights gone: the next download fetches them again."""
    for entry in stack.cache_dir.iterdir():
        if entry.name.startswith("models--"):
            shutil.rmtree(entry)


def start(stack: ContainerStack, name: str, repo: str, **spec: Any) -> dict[str, float]:
    """Applies a model and waits until it is Ready; its status.startup in seconds per step, the
    download Job's own duration, and the total."""
    manifest = tiny_model_manifest(name, repo)
    manifest["spec"].update(spec)
    stack.kubectl.apply(manifest)
    md = stack.kubectl.wait_for(
        "md",
        name,
        lambda m: bool((m.get("status") or {}).get("startup")),
        timeout=900,
        interval=1,
        what="Ready, with its start's timeline",
    )
    startup = md["status"]["startup"]
    split = {step["step"]: step["seconds"] for step in startup["steps"]}
    job = stack.kubectl.get("job", md["status"]["download"]["job"])["status"]
    split["download"] = _seconds(job["completionTime"]) - _seconds(job["startTime"])
    split["total"] = startup["totalSeconds"]
    return split


def _seconds(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def remove_image(stack: ContainerStack, reference: str) -> None:
    result = stack.node.crictl("rmi", reference)
    assert result.returncode == 0, result.stderr


def prefetched(stack: ContainerStack, image: str) -> bool:
    """The prefetch pod on the node has pulled `image` (the kubelet's Pulled event)."""
    pods = stack.kubectl.get("pods", None, "-l", "app.kubernetes.io/component=image-prefetch")
    for pod in pods["items"]:
        selector = f"involvedObject.name={pod['metadata']['name']}"
        events = stack.kubectl.get("events", None, "--field-selector", selector)["items"]
        if any(e.get("reason") == "Pulled" and image in e.get("message", "") for e in events):
            return True
    return False


def row(case: str, split: dict[str, float]) -> str:
    """One case's figures, printed at once (a long run shows what it has) and returned."""
    steps = "  ".join(f"{split.get(s, 0):7.1f}" for s in (*STEPS, "download"))
    line = f"{case:<34} {split['total']:7.1f}  {steps}"
    print(line, flush=True)
    return line


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="berth-cold-start-bench-"))
    rows = []
    with ContainerStack(workdir, values={"downloadStallSeconds": STALL_SECONDS}) as stack:
        publish_tiny_models(stack.hub)
        pyannote, nemo = stack.images["pyannote"], stack.images["nemo-asr"]

        rows.append(row("(a) node without the image", start(stack, "cold", DIARIZATION)))

        held = set(layers(pyannote))
        nemo_layers = layers(nemo)
        shared = sum(size for digest, size in nemo_layers.items() if digest in held)
        rows.append(row("(c) node with the other engine's", start(stack, "other", CANARY)))

        stack.clear_models()
        empty_cache(stack)  # no model uses it now: the primed model downloads afresh
        remove_image(stack, pyannote)
        stack.upgrade(imagePrefetch={"enabled": True})
        began = time.monotonic()
        # the keeper serves the same weights under another name: the primed model downloads its
        # own afresh, as a new model on a primed node does
        stack.hub.add(repo_from_directory(KEEPER, tiny_model_dir("pyannote", "tiny_pyannote.py")))
        stack.kubectl.apply(
            model_deployment("keeper", "pyannote", KEEPER, replicas=0, resources={"gpus": 0})
        )
        wait_until(lambda: prefetched(stack, pyannote), "the prefetch pod's pull", timeout=900)
        prefetch_seconds = time.monotonic() - began
        primed = start(stack, "primed", DIARIZATION)
        rows.append(row("(b) primed node (prefetch)", primed))
        stack.upgrade(imagePrefetch={"enabled": False})

    header = "  ".join(f"{s[:7]:>7}" for s in (*STEPS, "download"))
    print(f"\n{'apply -> Ready, seconds':<34} {'total':>7}  {header}")
    print("\n".join(rows))
    total_nemo = sum(nemo_layers.values())
    print(
        f"(c): the node held {shared / 1e9:.2f} GB of the NeMo image's {total_nemo / 1e9:.2f} GB "
        f"of layers ({100 * shared / total_nemo:.0f}%)"
    )
    floor = primed["download"] + primed["ModelLoaded"] + primed["ContainerStarted"]
    print(
        f"(b): {primed['total']:.1f} s = {primed['total'] / floor:.2f}x its download + start + "
        f"load ({floor:.1f} s; target at most 1.2x); the DaemonSet's pull beforehand "
        f"took {prefetch_seconds:.1f} s"
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
