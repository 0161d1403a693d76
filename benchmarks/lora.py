"""Benchmark: an adapter added to a running vLLM against a restart with it, on vLLM's CPU build.

A real API server holds the ModelDeployment; the supervisor runs vLLM's real server on the
tests' tiny dense Qwen3 and follows the resource's adapters (tests/engines/lora.py). Printed:
1. in place, download excluded: the adapter's files already in the cache, seconds from the
   resource's change to the adapter's first answer;
2. in place, download included: the adapter fetched by the real downloader right after the
   change (run from here, as the adapter's download Job runs it; no node runs Jobs here), then
   picked up by the pod's next look at the cache. On a cluster the operator's status change at
   the Job's completion wakes the pod's watch at once: here the pod's periodic look (every
   15 s) does, so this figure is an upper bound;
3. the baseline, in the same run: the supervisor restarted with the adapter in the resource (so
   in vLLM's start-up flags), seconds from the restart to the adapter's first answer.

    python -m benchmarks.lora
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from openai import APIConnectionError, APIStatusError, OpenAI

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.engines.lora import BASE_REPO, Hub, adapter, answer, resource, start_server
from tests.engines.vllm_server import API_KEY, VllmServer
from tests.operator_process import install_crd


def first_answer(server: VllmServer, model: str, started: float, timeout: float = 600) -> float:
    """Seconds from `started` until `model` answers a chat (polled every 0.1 s)."""
    client = OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)
    while time.monotonic() - started < timeout:
        try:
            answer(client, model)
            return time.monotonic() - started
        except (APIStatusError, APIConnectionError):  # not served yet, or not listening yet
            time.sleep(0.1)
    raise TimeoutError(f"{model} did not answer in {timeout} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as work, ControlPlane() as plane:
        install_crd(plane)
        plane.kubectl("create", "namespace", "bench-lora")
        kubectl = Kubectl(plane, "bench-lora")
        hub = Hub(Path(work))
        try:
            for repo in (BASE_REPO, adapter("sql")["repo"], adapter("fr")["repo"]):
                hub.download(repo)
            kubectl.apply(resource("sql"))
            server = start_server(kubectl, hub.cache)
            print(f"vLLM with LoRA up in {server.wait_healthy():.1f} s")

            started = time.monotonic()
            kubectl.apply(resource("sql", "fr"))
            in_place = first_answer(server, "fr", started)

            started = time.monotonic()
            kubectl.apply(resource("sql", "fr", "poem"))
            hub.download(adapter("poem")["repo"])
            downloaded = time.monotonic() - started
            with_download = first_answer(server, "poem", started)
            server.stop()

            started = time.monotonic()
            restarted = start_server(kubectl, hub.cache)
            restart = first_answer(restarted, "poem", started)
            restarted.stop()
        finally:
            hub.stop()
    print(f"adapter added in place, files in the cache:    {in_place:6.1f} s to its first answer")
    print(
        f"adapter added in place, download included:    {with_download:6.1f} s "
        f"(download {downloaded:.1f} s, then the pod's next look at the cache)"
    )
    print(f"baseline: restart with the adapter in flags:  {restart:6.1f} s to its first answer")
    print(f"ratio in place / restart: {in_place / restart:.3f}")


if __name__ == "__main__":
    main()
