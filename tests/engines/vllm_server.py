"""The vllm engine as its pod runs it, on the CPU: the runtime's supervisor (`python -m
berth_runtime.server`, BERTH_ENGINE=vllm) in the vllm/cpu environment, starting vLLM's real
server on a tiny model through tests/engines/vllm_cpu_launcher.py."""

from __future__ import annotations

import base64
import re
import struct
import time
import urllib.error
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from berth_operator.api.modeldeployment import ModelDeploymentSpec
from berth_operator.controller.engines import engine_settings

from tests.cluster.kubectl import Kubectl
from tests.engines.runner import HERE, EngineServer, engine_python
from tests.operator.helpers import model_deployment

ENVIRONMENT = "vllm/cpu"
BUILDER = "tiny_qwen3.py"
API_KEY = "sk-tiny-never-logged"
#: settings as a ModelDeployment would give them; --enforce-eager skips compiling graphs
TEST_EXTRA_ARGS = ["--enforce-eager"]


def cpu_env(work: Path) -> dict[str, str]:
    """What only the tests set: vLLM's CPU build through the launcher, its caches in `work`."""
    return {
        "BERTH_VLLM_COMMAND": f"{engine_python(ENVIRONMENT)} {HERE / 'vllm_cpu_launcher.py'}",
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB
        "VLLM_CPU_OMP_THREADS_BIND": "auto",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CACHE_ROOT": str(work / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor-cache"),
    }


def compile_cache_env(shared: Path, root: Path) -> dict[str, str]:
    """A server that keeps vLLM's compile caches in `shared` (the volume's directory), with
    vLLM's own cache root `root` (a pod's /tmp: empty at each start), Inductor's inside it."""
    return {
        "BERTH_COMPILE_CACHE_DIR": str(shared),
        "VLLM_CACHE_ROOT": str(root),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
    }


def rendered_vllm_settings(settings: dict[str, Any], repo: str) -> dict[str, Any]:
    """BERTH_SETTINGS as the operator renders it for these GPUs and vllm settings."""
    vllm = {k: v for k, v in settings.items() if k not in ("gpus", "tensorParallelSize")}
    spec = ModelDeploymentSpec.model_validate(
        {
            "engine": "vllm",
            "model": {"repo": repo},
            "resources": {"gpus": settings.get("gpus", 1)},
            "vllm": vllm,
        }
    )
    return engine_settings(spec, "qwen")


class VllmServer(EngineServer):
    """The supervisor and its vLLM child; vLLM's own server holds the port."""

    def __init__(self, cache: Path, repo: str, settings: dict[str, Any], **env: str) -> None:
        self.started = time.monotonic()
        environment = {
            **cpu_env(cache.parent),
            "VLLM_API_KEY": API_KEY,
            "BERTH_HEALTH_POLL_SECONDS": "0.5",
            "BERTH_REPORT_SECONDS": "1",
            "BERTH_TERMINATION_LOG": str(cache.parent / "termination-log"),
            **env,  # the caller's win
        }
        super().__init__(
            "vllm",
            cache,
            repo,
            rendered_vllm_settings(settings, repo),
            python_env=ENVIRONMENT,
            **environment,
        )

    def wait_healthy(self, timeout: float = 600) -> float:
        """Waits for vLLM's /health; returns the seconds since the supervisor started."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.output()}"
            try:
                if self.call("/health")[0] == 200:
                    return time.monotonic() - self.started
            except (ConnectionError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"no /health after {timeout} s:\n{self.output()}")

    def compile_cache_report(self, timeout: float = 300) -> dict[str, str]:
        """What the supervisor restored and published of its compile cache, once it has
        published (or failed to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if published := re.search(r"compile cache \S+ published: (.*)", text):
                restored = re.search(r"compile cache \S+: (.*)", text)
                return {"restored": restored[1] if restored else "", "published": published[1]}
            time.sleep(0.5)
        raise AssertionError(f"nothing published in {timeout} s:\n{self.output()}")

    def command(self) -> str:
        """The `vllm serve` command line the supervisor logged."""
        lines = [line for line in self.log.read_text().splitlines() if " starting " in line]
        assert lines, self.output()
        return lines[0].partition(" starting ")[2]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-colour RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_data_url(width: int, height: int, rgb: tuple[int, int, int]) -> str:
    return "data:image/png;base64," + base64.b64encode(png(width, height, rgb)).decode()


def runtime_state(*states: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate on a ModelDeployment: status.runtime.state is one of `states`."""

    def check(md: dict[str, Any]) -> bool:
        return ((md.get("status") or {}).get("runtime") or {}).get("state") in states

    check.__name__ = f"status.runtime.state in {states}"
    return check


def state_or_exit(server: EngineServer, *states: str) -> Callable[[dict[str, Any]], bool]:
    """status.runtime.state is one of `states` or Failed, or the server has exited."""
    reached = runtime_state(*states, "Failed")

    def check(md: dict[str, Any]) -> bool:
        return reached(md) or server.process.poll() is not None

    check.__name__ = f"{reached.__name__} or the server's exit"
    return check


def serve_reporting(
    kubectl: Kubectl, name: str, cache: Path, repo: str, settings: dict[str, Any]
) -> tuple[VllmServer, list[dict[str, Any]]]:
    """Starts the server for a ModelDeployment `name` (no operator) that its runtime reports
    into, as in a pod; returns it once Ready, with the status.runtime seen at Loading and Ready."""
    kubectl.apply(model_deployment(name, engine="vllm", repo=repo))
    server = VllmServer(
        cache,
        repo,
        settings,
        KUBECONFIG=str(kubectl.plane.kubeconfig),
        POD_NAMESPACE=kubectl.namespace,
        POD_NAME=f"{name}-0",
        BERTH_MODELDEPLOYMENT=name,
    )
    seen = []
    for states in (("Loading", "Ready"), ("Ready",)):
        md = kubectl.wait_for("md", name, state_or_exit(server, *states), timeout=600)
        seen.append((md.get("status") or {}).get("runtime") or {})
        assert seen[-1].get("state") in states, f"{seen[-1]}\n{server.output()}"
    return server, seen
