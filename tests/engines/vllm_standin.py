"""A stand-in for `vllm serve`, for what vLLM's CPU build cannot produce: a CUDA out-of-memory
crash. Same argv, a slow start, /health; the other engine tests run vLLM's real server.

Env: VLLM_STANDIN_START_SECONDS (default 3) before /health answers; VLLM_STANDIN_CRASH=oom to
die after start-up with a CUDA out-of-memory traceback on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys

from aiohttp import web

OOM_TRACEBACK = """\
ERROR 11-26 10:02:11 [core.py:708] EngineCore failed to start.
ERROR 11-26 10:02:11 [core.py:708] Traceback (most recent call last):
ERROR 11-26 10:02:11 [core.py:708]   File "/usr/local/lib/python3.11/site-packages/vllm/v1/engine/core.py", line 699, in run_engine_core
ERROR 11-26 10:02:11 [core.py:708]     engine_core = EngineCoreProc(*args, **kwargs)
ERROR 11-26 10:02:11 [core.py:708]   File "/usr/local/lib/python3.11/site-packages/vllm/v1/worker/gpu_model_runner.py", line 2712, in load_model
ERROR 11-26 10:02:11 [core.py:708]     self.model = model_loader.load_model(vllm_config=self.vllm_config, model_config=self.model_config)
ERROR 11-26 10:02:11 [core.py:708]   File "/usr/local/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1340, in convert
ERROR 11-26 10:02:11 [core.py:708]     return t.to(device, dtype if t.is_floating_point() or t.is_complex() else None, non_blocking)
ERROR 11-26 10:02:11 [core.py:708] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 768.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 412.44 MiB is free. Including non-PyTorch memory, this process has 78.77 GiB memory in use. Of the allocated memory 77.91 GiB is allocated by PyTorch, and 301.52 MiB is reserved by PyTorch but unallocated.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def parse(argv: list[str]) -> argparse.Namespace:
    """The flags the supervisor passes; unknown ones are refused as vLLM would."""
    if not argv or argv[0] != "serve":
        sys.exit("usage: vllm serve MODEL [options]")
    parser = argparse.ArgumentParser(prog="vllm serve", allow_abbrev=False)
    parser.add_argument("model")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--limit-mm-per-prompt", type=json.loads, default={})
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--enable-prefix-caching", action="store_true")
    parser.add_argument("--max-num-seqs", type=int)
    return parser.parse_args(argv[1:])


async def serve(args: argparse.Namespace) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    print(f"INFO vllm stand-in: non-default args: {vars(args)}", flush=True)
    # like vLLM: the port is bound first, requests wait in the backlog until the engine is up
    sock = socket.create_server((args.host, args.port), backlog=128)
    await asyncio.sleep(float(os.environ.get("VLLM_STANDIN_START_SECONDS") or 3))
    app = web.Application()
    app.add_routes([web.get("/health", health)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(f"INFO:     Uvicorn running on http://{args.host}:{args.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if os.environ.get("VLLM_STANDIN_CRASH") == "oom":
        await asyncio.sleep(1)
        sys.stderr.write(OOM_TRACEBACK)
        sys.stderr.flush()
        os._exit(1)
    await stop.wait()
    print("INFO:     Shutting down", flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(parse(sys.argv[1:])))
