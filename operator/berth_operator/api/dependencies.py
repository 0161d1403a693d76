"""Which dependency versions a model server runs against the versions expected of it: the
operator compares what the server reports (status.runtime.dependencies) with its expectations,
so that the expectations never enter the pod template (changing them restarts nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mismatch:
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _matches(actual: str | None, expected: str) -> bool:
    """Expected versions are prefixes: '12.8' matches '12.8', '2.9' matches '2.9.0+cu128'."""
    if actual is None:
        return False
    return (
        actual == expected or actual.startswith(expected + ".") or actual.startswith(expected + "+")
    )


def compare(dependencies: dict[str, Any], expected: dict[str, str]) -> list[Mismatch]:
    """Differences between what runs and what the spec (or the image) expects."""
    found: list[Mismatch] = []
    torch = dependencies.get("torch")
    for key, want in sorted(expected.items()):
        if key == "cudaRuntime":
            have = torch.get("cuda_runtime") if torch else None
            if not _matches(have, want):
                found.append(
                    Mismatch(
                        "CudaRuntimeMismatch",
                        f"torch runs on CUDA runtime {have or 'none (CPU-only torch or no torch)'}, "
                        f"{want} expected: use the engine's image, or set spec.expectedDependencies",
                    )
                )
            continue
        have = (dependencies.get(key) or {}).get("version")
        if not _matches(have, want):
            found.append(
                Mismatch(
                    "DependencyMismatch", f"{key} {have or 'is not installed'}, {want} expected"
                )
            )
    audio = dependencies.get("torchaudio")
    if audio and audio.get("build") == "cpu" and torch and torch.get("cuda_runtime"):
        found.append(
            Mismatch(
                "CpuOnlyTorchaudio",
                f"torchaudio {audio['version']} is a CPU build beside a CUDA torch: resampling runs on "
                "the CPU and may not match; install the CUDA build",
            )
        )
    return found
