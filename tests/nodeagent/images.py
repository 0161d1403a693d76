"""Images as local environments: an image name maps to a Python environment, the entrypoint of
its Dockerfile, and the environment variables the image would set."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.engines.runner import RUNTIME_PYTHONPATH, engine_python

REPO = Path(__file__).resolve().parents[2]
ENGINES = ("vllm", "nemo-asr", "pyannote")


@dataclass(frozen=True)
class LocalImage:
    """What running an image means on this machine."""

    bin_dir: Path
    entrypoint: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def dockerfile_entrypoint(dockerfile: Path) -> tuple[str, ...]:
    """The exec-form ENTRYPOINT of a Dockerfile."""
    found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile.read_text(), re.MULTILINE)
    if not found:
        raise ValueError(f"{dockerfile} has no exec-form ENTRYPOINT")
    return tuple(json.loads(found[-1]))


def local_images(images: dict[str, str], downloader_image: str) -> dict[str, LocalImage]:
    """The operator's images (engine -> image name) mapped to local environments.

    Engine images run from their engine environment (the image's lock file); the downloader
    from this test environment, which has the runtime's dependencies.
    """
    source = {"PYTHONPATH": RUNTIME_PYTHONPATH}
    mapping = {
        downloader_image: LocalImage(
            Path(sys.executable).parent,
            dockerfile_entrypoint(REPO / "runtime_images" / "downloader" / "Dockerfile"),
            source,
        )
    }
    for engine in ENGINES:
        if engine in images and engine != "vllm":  # the vllm image is CUDA-only; see tests/engines
            mapping[images[engine]] = LocalImage(
                engine_python(engine).parent,
                dockerfile_entrypoint(REPO / "runtime_images" / engine / "Dockerfile"),
                source,
            )
    return mapping
