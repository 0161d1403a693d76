"""Runs a model server: `python -m berth_runtime.server` (settings from the pod's env).

BERTH_ENGINE names a built-in engine (vllm, nemo-asr, pyannote) or a `module:Class` of your own.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path

from aiohttp import web

from berth_runtime.report import StatusPatcher
from berth_runtime.server.app import ModelServer, ServerConfig
from berth_runtime.server.auth import keys_from_env
from berth_runtime.server.engine import Engine
from berth_runtime.server.reporter import RuntimeReporter
from berth_runtime.server.state import RuntimeState

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


def build_server(env: dict[str, str] | None = None) -> ModelServer:
    env = dict(os.environ if env is None else env)
    settings = json.loads(env.get("BERTH_SETTINGS") or "{}")
    config = ServerConfig(
        cache_dir=Path(env.get("MODEL_CACHE_DIR") or env.get("HF_HUB_CACHE") or "/models"),
        repo=env["BERTH_MODEL_REPO"],
        revision=env.get("BERTH_MODEL_REVISION", "main"),
        api_keys=keys_from_env(env),
        max_body_bytes=int(env.get("BERTH_MAX_BODY_BYTES") or 100 * 2**20),
        expected=json.loads(env.get("BERTH_EXPECTED_DEPENDENCIES") or "{}"),
    )
    state = RuntimeState(pod=env.get("POD_NAME"))
    reporter = None
    if env.get("BERTH_MODELDEPLOYMENT") and env.get("POD_NAMESPACE"):
        patcher = StatusPatcher(env["POD_NAMESPACE"], float(env.get("BERTH_REPORT_SECONDS") or 5))
        reporter = RuntimeReporter(env["BERTH_MODELDEPLOYMENT"], patcher)
    return ModelServer(engine_class(env["BERTH_ENGINE"])(settings), config, state, reporter)


def main() -> None:
    if entry := SUPERVISED_ENGINES.get(os.environ.get("BERTH_ENGINE", "")):
        module, _, function = entry.partition(":")
        return getattr(importlib.import_module(module), function)()
    logging.basicConfig(
        level=os.environ.get("BERTH_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = build_server()
    web.run_app(
        server.app(),
        host=os.environ.get("BERTH_HOST", "0.0.0.0"),
        port=int(os.environ.get("BERTH_PORT") or 8000),
        shutdown_timeout=float(os.environ.get("BERTH_SHUTDOWN_SECONDS") or 20),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
