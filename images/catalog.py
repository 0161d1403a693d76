"""The five images Berth ships, the torch image two of them are built on, their Dockerfiles and
their published names."""

from __future__ import annotations

from pathlib import Path

from berth_operator.config import DEFAULT_EXPECTED_DEPENDENCIES, DEFAULT_REGISTRY, DEFAULT_TAG

ROOT = Path(__file__).resolve().parents[1]
ENGINES = tuple(DEFAULT_EXPECTED_DEPENDENCIES)
DOCKERFILES: dict[str, Path] = {
    "operator": Path("operator/Dockerfile"),
    "downloader": Path("runtime_images/downloader/Dockerfile"),
    **{engine: Path(f"runtime_images/{engine}/Dockerfile") for engine in ENGINES},
}
# Images built only to be built on: their layers are the shared lower layers of the images above.
BASES: dict[str, Path] = {"torch": Path("runtime_images/torch/Dockerfile")}
# The image each one is built on (passed as its BASE); the others are built on Debian.
PARENTS: dict[str, str] = {"pyannote": "torch", "nemo-asr": "torch"}
# Where each lock file's wheels exist; the engines' locks are compiled for x86_64 only.
PLATFORMS: dict[str, tuple[str, ...]] = {
    name: ("linux/amd64",) if name in (*ENGINES, *BASES) else ("linux/amd64", "linux/arm64")
    for name in (*DOCKERFILES, *BASES)
}


def dockerfile(name: str) -> Path:
    """The Dockerfile of a shipped image or of a base image."""
    return {**DOCKERFILES, **BASES}[name]


def repository(name: str, registry: str = DEFAULT_REGISTRY) -> str:
    """The image's repository in a registry, e.g. ghcr.io/berth-dev/berth-vllm."""
    return f"{registry}/berth-{name}"


def published(name: str, registry: str = DEFAULT_REGISTRY, tag: str = DEFAULT_TAG) -> str:
    """The image's full reference, as the chart and the operator's defaults name it."""
    return f"{repository(name, registry)}:{tag}"


def _entry(name: str) -> dict[str, str]:
    parent = PARENTS.get(name)
    return {
        "name": name,
        "repository": repository(name),
        "dockerfile": str(dockerfile(name)),
        "platforms": ",".join(PLATFORMS[name]),
        # the build argument BASE, or "" for the Dockerfile's own default (Debian)
        "base": published(parent) if parent else "",
    }


def plan() -> dict[str, object]:
    """What a release builds and where it pushes: the registry, the tag, the base images (built
    first), then one entry per shipped image."""
    return {
        "registry": DEFAULT_REGISTRY,
        "tag": DEFAULT_TAG,
        "bases": [_entry(name) for name in BASES],
        "images": [_entry(name) for name in DOCKERFILES],
    }
