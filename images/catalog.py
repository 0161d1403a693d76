"""The five images Berth ships, their Dockerfiles and their published names."""

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
# Where each lock file's wheels exist; the engines' locks are compiled for x86_64 only.
PLATFORMS: dict[str, tuple[str, ...]] = {
    name: ("linux/amd64",) if name in ENGINES else ("linux/amd64", "linux/arm64")
    for name in DOCKERFILES
}


def repository(name: str, registry: str = DEFAULT_REGISTRY) -> str:
    """The image's repository in a registry, e.g. ghcr.io/berth-dev/berth-vllm."""
    return f"{registry}/berth-{name}"


def published(name: str, registry: str = DEFAULT_REGISTRY, tag: str = DEFAULT_TAG) -> str:
    """The image's full reference, as the chart and the operator's defaults name it."""
    return f"{repository(name, registry)}:{tag}"


def plan() -> dict[str, object]:
    """What a release builds and where it pushes: the registry, the tag, one entry per image."""
    return {
        "registry": DEFAULT_REGISTRY,
        "tag": DEFAULT_TAG,
        "images": [
            {
                "name": name,
                "repository": repository(name),
                "dockerfile": str(dockerfile),
                "platforms": ",".join(PLATFORMS[name]),
            }
            for name, dockerfile in DOCKERFILES.items()
        ],
    }
