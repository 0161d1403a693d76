"""The engine images, their lock files and the operator's expectations agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from berth_operator.config import DEFAULT_EXPECTED_DEPENDENCIES

from tests.nodeagent.images import dockerfile_entrypoint

IMAGES = Path(__file__).resolve().parents[2] / "runtime_images"
ENGINES = sorted(DEFAULT_EXPECTED_DEPENDENCIES)


def locked(engine: str) -> dict[str, str]:
    text = (IMAGES / engine / "requirements.lock").read_text()
    return {
        m[1].lower().replace("_", "-").replace(".", "-"): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", text, re.MULTILINE)
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_expected_dependencies_are_what_the_lock_installs(engine: str) -> None:
    expected = json.loads((IMAGES / engine / "expected.json").read_text())
    assert expected == DEFAULT_EXPECTED_DEPENDENCIES[engine]
    versions = locked(engine)
    for name, version in expected.items():
        if name != "cudaRuntime":
            assert versions[name.lower().replace("_", "-").replace(".", "-")] == version


@pytest.mark.parametrize("engine", ENGINES)
def test_dockerfile_uses_the_lock_and_a_cuda_base_of_the_expected_runtime(engine: str) -> None:
    dockerfile = (IMAGES / engine / "Dockerfile").read_text()
    cuda = DEFAULT_EXPECTED_DEPENDENCIES[engine]["cudaRuntime"]
    assert re.search(rf"^FROM nvidia/cuda:{re.escape(cuda)}\.\d+-", dockerfile, re.MULTILINE)
    assert f"runtime_images/{engine}/requirements.lock" in dockerfile
    assert json.loads(re.search(r"expected-dependencies='(.*)'", dockerfile)[1]) == json.loads(
        (IMAGES / engine / "expected.json").read_text()
    )
    assert dockerfile_entrypoint(IMAGES / engine / "Dockerfile") == (
        "python",
        "-m",
        "berth_runtime.server",
    )


def test_torch_wheels_of_every_image_are_cuda_builds_of_the_expected_runtime() -> None:
    for engine in ENGINES:
        cuda = DEFAULT_EXPECTED_DEPENDENCIES[engine]["cudaRuntime"]
        versions = locked(engine)
        # CUDA 12 wheels carry the major in their name; CUDA 13 ones carry it in their version
        runtime = versions.get("nvidia-cuda-runtime") or ""
        assert f"nvidia-cuda-runtime-cu{cuda.split('.')[0]}" in versions or runtime.startswith(
            f"{cuda}."
        ), engine
