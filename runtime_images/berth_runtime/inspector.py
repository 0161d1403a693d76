"""The dependency inspector: Python, torch and its CUDA runtime, torchaudio's build, engine
libraries and GPUs, as status.runtime reports them (the operator compares them with the
versions the image is expected to ship)."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from berth_runtime.telemetry import gpu_snapshot


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch() -> dict[str, Any] | None:
    if _version("torch") is None:
        return None
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "version": str(torch.__version__),  # a TorchVersion, which JSON cannot encode
        "cuda_runtime": torch.version.cuda,
        "cudnn": cudnn,
        "cuda_available": torch.cuda.is_available(),
    }


def torchaudio_build(version: str, cuda_op: int | None) -> str:
    """cuda, cpu or unknown: the local version tag says it (2.9.0+cu128, 2.9.0+cpu); without
    one, torchaudio's own CUDA op, where this version still has it."""
    tag = version.partition("+")[2]
    if tag.startswith(("cu", "rocm")):
        return "cuda"
    if tag == "cpu":
        return "cpu"
    if cuda_op is not None:
        return "cuda" if cuda_op else "cpu"
    return "unknown"


def _torchaudio() -> dict[str, Any] | None:
    if _version("torchaudio") is None:
        return None
    import torchaudio

    cuda_op: int | None = None
    try:
        import torch

        cuda_op = int(torch.ops.torchaudio.cuda_version() or 0)
    except Exception:  # torchaudio >= 2.9 dropped most of its C++ ops
        cuda_op = None
    return {
        "version": str(torchaudio.__version__),
        "build": torchaudio_build(str(torchaudio.__version__), cuda_op),
    }


def inspect_dependencies(libraries: tuple[str, ...] = ()) -> dict[str, Any]:
    """What this process runs on, as status.runtime.dependencies shows it."""
    report: dict[str, Any] = {"python": {"version": platform.python_version()}}
    if (torch := _torch()) is not None:
        report["torch"] = torch
    if (torchaudio := _torchaudio()) is not None:
        report["torchaudio"] = torchaudio
    for library in libraries:
        report[library] = {"version": _version(library)}
    report["gpus"] = gpu_snapshot()
    return report
