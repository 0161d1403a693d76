"""The tiny models the container stack serves: built once by the engines' tests, published on
the local hub, applied as ModelDeployments that land on the real node."""

from __future__ import annotations

from typing import Any

from tests.engines.runner import tiny_model_dir
from tests.hub.download import repo_from_directory
from tests.hub.server import LocalHub
from tests.operator.helpers import model_deployment

# repo -> (engine, builder script in tests/engines)
TINY_MODELS = {
    "berth-test/tiny-diarization": ("pyannote", "tiny_pyannote.py"),
    "berth-test/tiny-canary": ("nemo-asr", "tiny_canary.py"),
}


def tiny_model_manifest(name: str, repo: str) -> dict[str, Any]:
    """A ModelDeployment of a tiny model on the CPU (gpus 0): it lands on the real node."""
    engine = TINY_MODELS[repo][0]
    return model_deployment(name, engine, repo, resources={"gpus": 0})


def publish_tiny_models(hub: LocalHub) -> None:
    """Builds (once, cached) and publishes every tiny model on `hub`."""
    for repo, (engine, builder) in TINY_MODELS.items():
        hub.add(repo_from_directory(repo, tiny_model_dir(engine, builder)))
