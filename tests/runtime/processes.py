"""Berth's entry points run as processes of this host, as their images run them."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.hub.download import REPO
from tests.pod_env import server_env

ENGINE = "tests.runtime.dummy_engine:EchoEngine"

#: runs a command as PID 1 of a new PID namespace, as a container's entry point runs
AS_PID_1 = ("unshare", "--pid", "--fork", "--kill-child")


def start_server(
    cache: Path, port: int, engine: str = ENGINE, wrapper: Sequence[str] = (), **env: str
) -> subprocess.Popen[str]:
    """`python -m berth_runtime.server` (under `wrapper`) serving org/tiny from `cache`."""
    return subprocess.Popen(
        [*wrapper, sys.executable, "-m", "berth_runtime.server"],
        env={
            **os.environ,
            **server_env(engine, "org/tiny", cache, port, name="echo"),
            "HF_HUB_OFFLINE": "1",
            "BERTH_REPORT_SECONDS": "1",
            **env,
        },
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def get(port: int, path: str) -> int:
    """The status code of GET `path`; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except OSError as error:
        return getattr(error, "code", 0)
