"""Runs vLLM's own OpenAI server (`vllm serve`) on the service port and reports its state.

No proxy: vLLM answers /v1, /health and /metrics itself. The supervisor resolves the model's
snapshot offline, starts vLLM, forwards its output, reports Loading until /health answers, then
Ready; when vLLM exits it reports Failed with the cause read from vLLM's log and exits non-zero
so the pod restarts. SIGTERM is forwarded to vLLM for a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from berth_operator.api.podenv import ServerEnv, VllmEngineSettings

from berth_runtime.engines.vllm.adapters import (
    AdapterSync,
    VllmAdapterRoutes,
    adapter_dir,
    follow_resource,
    wanted_adapters,
)
from berth_runtime.engines.vllm.args import child_env, serve_args
from berth_runtime.engines.vllm.compile_cache import (
    CompileKey,
    StartCache,
    cache_root,
    gpu_type,
    vllm_version,
)
from berth_runtime.engines.vllm.failures import classify, clean, failure_message
from berth_runtime.engines.vllm.progress import load_step
from berth_runtime.inspector import inspect_dependencies
from berth_runtime.server.reporter import RuntimeReporter, announce, reporter_for
from berth_runtime.server.state import RuntimeState

logger = logging.getLogger(__name__)

LIBRARIES = ("vllm", "transformers")
#: how often adapters not in the cache yet are looked for, besides at each change of the resource
ADAPTER_RECHECK_SECONDS = 15.0


class VllmSupervisor:
    """Owns the `vllm serve` child process and the pod's status.runtime."""

    def __init__(
        self,
        env: ServerEnv,
        reporter: RuntimeReporter | None = None,
        tail_lines: int = 200,
        child_environ: Mapping[str, str] | None = None,
    ) -> None:
        self.env = env
        self.settings = VllmEngineSettings.model_validate(env.settings)
        self.child_environ = dict(os.environ if child_environ is None else child_environ)
        self.command = shlex.split(env.vllm_command)
        self.state = RuntimeState(pod=env.pod_name)
        self.reporter = reporter
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.process: asyncio.subprocess.Process | None = None
        self.argv_run: list[str] = []
        self.stopping = False
        self.adapters: AdapterSync | None = None
        #: this start's use of the compile cache, when the pod keeps one
        self.compile_cache: StartCache | None = None
        if self.settings.lora:
            routes = VllmAdapterRoutes(self.local_url, self.child_environ.get("VLLM_API_KEY"))
            self.adapters = AdapterSync(
                routes, self._find_adapter, self.settings.lora.max_lora_rank, self.env.repo
            )

    # ---- state ------------------------------------------------------------------------------

    def refresh_dependencies(self) -> None:
        self.state.dependencies = inspect_dependencies(LIBRARIES)

    async def report(self) -> None:
        logger.info("state %s", self.state.state)
        if self.reporter:
            await self.reporter.report(self.state, force=True)

    async def fail(self, reason: str, message: str) -> None:
        self.state.fail(reason, message)
        logger.error("%s: %s", reason, message)
        with contextlib.suppress(OSError):  # not in a pod: the log and status say it
            self.env.termination_log.write_text(json.dumps({"reason": reason, "message": message}))
        await self.report()

    # ---- the child --------------------------------------------------------------------------

    @property
    def local_url(self) -> str:
        host = "127.0.0.1" if self.env.host in ("", "0.0.0.0", "::") else self.env.host
        return f"http://{host}:{self.env.port}"

    def argv(self, model_dir: Path, adapters: dict[str, Path] | None = None) -> list[str]:
        args = serve_args(self.settings, model_dir, self.env.host, self.env.port, adapters)
        return [*self.command, *args]

    # ---- LoRA adapters ----------------------------------------------------------------------

    async def _find_adapter(self, adapter: Any) -> Path | None:
        return await asyncio.get_running_loop().run_in_executor(
            None, adapter_dir, self.env.cache_dir, adapter
        )

    def _read_resource(self) -> dict[str, Any] | None:
        """The ModelDeployment as it is now (None when it cannot be read)."""
        from lightkube import Client

        from berth_runtime.resources import ModelDeployment

        try:
            client = Client(field_manager="berth-runtime")
            found = client.get(
                ModelDeployment, self.env.model_deployment, namespace=self.env.namespace
            )
        except Exception as error:  # the adapters follow once it answers
            logger.warning("reading the adapters of %s: %s", self.env.model_deployment, error)
            return None
        return found.to_dict()

    async def _starting_adapters(self) -> dict[str, Path]:
        """The wanted adapters already in the cache: vLLM serves them from its start."""
        if self.adapters is None or not self.env.namespace:
            return {}
        body = await asyncio.get_running_loop().run_in_executor(None, self._read_resource)
        found = {a: await self._find_adapter(a) for a in wanted_adapters(body)}
        return self.adapters.startable(found)

    async def _follow_adapters(self) -> None:
        """Loads and unloads adapters as the resource changes; reports what this pod serves."""
        assert self.adapters is not None and self.env.namespace
        sync, latest = self.adapters, {"body": None}
        lock = asyncio.Lock()

        async def settle(body: Any) -> None:
            latest["body"] = body
            async with lock:
                if await sync.apply(wanted_adapters(body)) or not reported:
                    await self._report_adapters()
                    reported.append(True)

        reported: list[bool] = []

        async def recheck() -> None:
            while True:
                await asyncio.sleep(ADAPTER_RECHECK_SECONDS)
                if latest["body"] is not None:
                    await settle(latest["body"])

        await asyncio.gather(
            follow_resource(self.env.namespace, self.env.model_deployment, settle), recheck()
        )

    async def _report_adapters(self) -> None:
        if self.reporter is None or self.adapters is None:
            return
        value = {self.env.pod_name: self.adapters.report()}
        await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: self.reporter.patcher.patch(
                self.reporter.name, "adapterLoads", value, force=True
            ),
        )

    def _resolve(self) -> Path:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                self.env.repo,
                revision=self.env.revision,
                cache_dir=self.env.cache_dir,
                local_files_only=True,
            )
        )

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Forwards the child's output to ours and keeps its last lines."""
        partial = ""
        out = sys.stdout.buffer
        while chunk := await stream.read(65536):
            out.write(chunk)
            out.flush()
            *lines, partial = (
                (partial + chunk.decode(errors="replace")).replace("\r", "\n").split("\n")
            )
            self.tail.extend(clean(line) for line in lines if line.strip())
            self._follow_steps(lines)
            partial = partial[-4000:]
        if partial.strip():
            self.tail.append(clean(partial))

    def _follow_steps(self, lines: list[str]) -> None:
        """Each load step vLLM's lines announce is logged; the newest is status.runtime.progress."""
        if self.state.state != "Loading":
            return
        for step in filter(None, map(load_step, lines)):
            if step != self.state.progress:
                announce(self.state, self.reporter, step)

    # ---- the compile cache ------------------------------------------------------------------

    async def _restore_compile_cache(self, model_dir: Path) -> None:
        """The key's published compile cache into vLLM's cache root, before vLLM starts."""
        if self.env.compile_cache_dir is None:
            return
        gpus = self.state.dependencies.get("gpus") or []
        tensor_parallel = self.settings.tensor_parallel_size
        key = CompileKey(vllm_version(), model_dir.name, tensor_parallel, gpu_type(gpus))
        root = cache_root(child_env(self.child_environ, self.settings))
        writer = self.env.pod_name or "local"
        self.compile_cache = StartCache(self.env.compile_cache_dir, key, root, writer)
        announce(self.state, self.reporter, f"restoring the compile cache {key.directory}")
        await asyncio.get_running_loop().run_in_executor(None, self.compile_cache.restore)

    async def _wait_healthy(self, started: float) -> None:
        """Polls vLLM's /health until it answers 200, then reports Ready."""
        url = f"{self.local_url}/health"
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(self.env.health_poll_seconds)
        self.state.load_seconds = round(time.monotonic() - started, 3)
        self.state.details = {
            "command": shlex.join(self.argv_run),
            "tensor_parallel_size": self.settings.tensor_parallel_size,
            "max_model_len": self.settings.max_model_len,
            "served_model_name": self.settings.served_model_name,
            "load_seconds": self.state.load_seconds,
        }
        if self.compile_cache is not None:
            self.state.details["compile_cache"] = self.compile_cache.report
        self.state.state = "Ready"
        await self.report()
        if self.compile_cache is not None:  # for the next identical start
            await asyncio.get_running_loop().run_in_executor(None, self.compile_cache.publish)
            await self.report()
        if self.adapters is not None and self.env.namespace:
            await self._follow_adapters()

    def stop(self) -> None:
        """SIGTERM: vLLM, once ready, keeps serving `drain_seconds` while the pod leaves its
        Service's endpoints, then gets it, finishes its requests and exits; killed after
        `shutdown_seconds` more."""
        if self.stopping:
            return
        self.stopping = True
        # vLLM still loading is in no Service's endpoints: nothing to drain
        drain = self.env.drain_seconds if self.state.ready else 0
        logger.info("stopping: vLLM gets SIGTERM in %g s", drain)
        asyncio.get_running_loop().call_later(drain, self._terminate)

    def _terminate(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            asyncio.get_running_loop().call_later(self.env.shutdown_seconds, self._kill)

    def _kill(self) -> None:
        if self.process and self.process.returncode is None:
            logger.warning("vLLM did not stop in %.0f s: killing it", self.env.shutdown_seconds)
            self.process.kill()

    # ---- the whole run ----------------------------------------------------------------------

    async def run(self) -> int:
        """Runs vLLM to its end; returns the exit code for the supervisor."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        await loop.run_in_executor(None, self.refresh_dependencies)
        await self.report()
        if self.reporter:
            self.reporter.start(self.state, self.refresh_dependencies)
        try:
            return await self._run()
        finally:
            if self.reporter:
                await self.reporter.stop()

    async def _run(self) -> int:
        try:
            model_dir = await asyncio.get_running_loop().run_in_executor(None, self._resolve)
        except Exception as error:
            await self.fail(
                "ModelFilesMissing",
                f"{self.env.repo}@{self.env.revision} is not in the cache {self.env.cache_dir}: "
                f"{type(error).__name__}: {error}",
            )
            return 1
        if self.stopping:
            return 0
        await self._restore_compile_cache(model_dir)
        argv = self.argv_run = self.argv(model_dir, await self._starting_adapters())
        logger.info("starting %s", shlex.join(argv))  # no secret: the API key stays in the env
        started = time.monotonic()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                env=child_env(self.child_environ, self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as error:
            await self.fail(
                "EngineNotStarted", f"could not run {shlex.join(self.command)}: {error}"
            )
            return 1
        assert self.process.stdout is not None
        pump = asyncio.ensure_future(self._pump(self.process.stdout))
        health = asyncio.ensure_future(self._wait_healthy(started))
        returncode = await self.process.wait()
        health.cancel()
        await asyncio.gather(pump, health, return_exceptions=True)
        if self.stopping:
            logger.info("vLLM stopped (exit code %s)", returncode)
            return 0
        lines = list(self.tail)
        failure = classify(returncode, lines)
        await self.fail(failure.reason, failure_message(failure, returncode, lines))
        if returncode > 0:
            return returncode
        return 128 - returncode if returncode < 0 else 1


def main(env: ServerEnv) -> None:
    """`python -m berth_runtime.server` with BERTH_ENGINE=vllm ends here."""
    sys.exit(asyncio.run(VllmSupervisor(env, reporter_for(env)).run()))
