"""Runs a model server: `python -m berth_runtime.server` (settings from the pod's env).

BERTH_ENGINE names a built-in engine (vllm, nemo-asr, pyannote) or a `module:Class` of your own.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal

from aiohttp import web
from berth_operator.api.podenv import ServerEnv

from berth_runtime.server.app import ModelServer, ServerConfig
from berth_runtime.server.engine import Engine
from berth_runtime.server.reporter import reporter_for
from berth_runtime.server.state import RuntimeState
from berth_runtime.signals import end_on_sigterm

BUILT_IN_ENGINES = {
    "nemo-asr": "berth_runtime.engines.nemo_asr:NemoAsrEngine",
    "pyannote": "berth_runtime.engines.pyannote:PyannoteEngine",
}
#: engines whose own server holds the port: BERTH_ENGINE runs their entry point instead
SUPERVISED_ENGINES = {"vllm": "berth_runtime.engines.vllm:main"}


def engine_class(name: str) -> type[Engine]:
    """Imports the engine lazily: the core starts without any engine library."""
    module, _, cls = BUILT_IN_ENGINES.get(name, name).partition(":")
    return getattr(importlib.import_module(module), cls)


def build_server(env: ServerEnv) -> ModelServer:
    config = ServerConfig(
        cache_dir=env.cache_dir,
        repo=env.repo,
        revision=env.revision,
        api_keys=env.key_list,
        max_body_bytes=env.max_body_bytes,
        max_requests=env.max_requests,
        max_decodes=env.max_decodes,
    )
    state = RuntimeState(pod=env.pod_name)
    engine = engine_class(env.engine)(env.settings)
    return ModelServer(engine, config, state, reporter_for(env))


def main() -> None:
    end_on_sigterm()  # importing an engine's libraries takes seconds to minutes
    env = ServerEnv.from_env()
    logging.basicConfig(
        level=env.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if entry := SUPERVISED_ENGINES.get(env.engine):
        module, _, function = entry.partition(":")
        return getattr(importlib.import_module(module), function)(env)
    asyncio.run(serve(build_server(env), env))


async def serve(server: ModelServer, env: ServerEnv) -> None:
    """Serves until SIGTERM; then not ready, still serving for `drain_seconds` while the pod
    leaves its Service's endpoints, then the listener closes and requests in flight get
    `shutdown_seconds` to finish. A client that goes away cancels its request's work. A model
    still loading stops at once: its load is not waited for."""
    runner = web.AppRunner(
        server.app(),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=env.shutdown_seconds,
    )
    await runner.setup()
    await web.TCPSite(runner, env.host, env.port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    # a server that never was ready is in no Service's endpoints: nothing to drain
    drain = env.drain_seconds if server.state.ready else 0
    server.draining = True
    logging.getLogger(__name__).info("stopping: not ready; closing in %g s", drain)
    await asyncio.sleep(drain)
    await runner.cleanup()


if __name__ == "__main__":
    main()
