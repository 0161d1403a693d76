"""The engine wrapper interface: what each model server (vLLM, NeMo, pyannote) implements."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from berth_runtime.server.errors import ModelNotFound

#: what torch, cuBLAS, cuDNN and NCCL say when the device can no longer be trusted
FATAL_MARKS = (
    "CUDA error",
    "CUBLAS_STATUS_",
    "CUDNN_STATUS_",
    "device-side assert",
    "illegal memory access",
    "NCCL error",
    "AcceleratorError",
)


class Engine(ABC):
    """Resolves its files from the cache, loads, adds its routes, describes itself.

    `load` runs in a worker thread, so heavy imports and weight loading never block the server;
    requests to the engine's routes get 503 until it returns.
    """

    #: distribution names whose versions the dependency inspector reports
    libraries: tuple[str, ...] = ()

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.repo: str | None = None
        #: decodes at once; the server sets it from its config
        self.decode_slots = asyncio.Semaphore(2)
        #: where `step` goes; the server sets it to its state and status.runtime.progress
        self.on_step: Callable[[str], None] = lambda what: None

    def step(self, what: str) -> None:
        """Says what the load is doing now, in words a user can act on (called from `load`)."""
        self.on_step(what)

    async def decode(self, data: bytes, max_seconds: float) -> Any:
        """Audio to mono float32 at 16 kHz, in a worker thread, a bounded number at once."""
        from berth_runtime.audio import decode_audio

        async with self.decode_slots:
            return await asyncio.get_running_loop().run_in_executor(
                None, decode_audio, data, max_seconds
            )

    def resolve(self, cache_dir: Path, repo: str, revision: str) -> Path:
        """The local snapshot directory of repo@revision, offline."""
        from huggingface_hub import snapshot_download

        self.repo = repo
        return Path(
            snapshot_download(repo, revision=revision, cache_dir=cache_dir, local_files_only=True)
        )

    @abstractmethod
    def load(self, model_dir: Path) -> None:
        """Loads the model (blocking; runs in a thread)."""

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The inference routes (API keys apply to them)."""

    def model_names(self) -> list[str]:
        """The names a request may give as `model`: the served model name, the repository id
        and its last part."""
        names = [self.settings.get("servedModelName"), self.repo]
        if self.repo:
            names.append(self.repo.rsplit("/", 1)[-1])
        return list(dict.fromkeys(str(n) for n in names if n))

    def check_model_name(self, name: str) -> None:
        """404 naming the accepted names when `name` is not one of them."""
        accepted = self.model_names()
        if name not in accepted:
            raise ModelNotFound(
                f"model '{name}' is not served here; use one of: {', '.join(accepted)}"
            )

    def is_fatal(self, error: BaseException) -> bool:
        """An error the process cannot recover from: the device is in an unknown state (a CUDA
        fault, a failed collective), so the pod is made not ready and restarted."""
        text = f"{type(error).__name__}: {error}"
        return any(mark in text for mark in FATAL_MARKS)

    def details(self) -> dict[str, Any]:
        """What status shows about the loaded model (device, sample rate, ...)."""
        return {}

    async def close(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Frees what load took; called on shutdown."""
