"""GPU check of the engines (run on a machine with an NVIDIA GPU and the engine environments,
`make engines`): the tiny pyannote and Canary models load on cuda:0, answer, and report the
CUDA runtime they run on.

    .venv/bin/python -m tests.gpu.check_engines

Prints one line per engine with its device, CUDA runtime and timings; exits 1 on any failure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from berth_operator.api.dependencies import compare
from berth_operator.config import DEFAULT_EXPECTED_DEPENDENCIES

from tests.engines.forms import multipart
from tests.engines.runner import EngineServer, tiny_model_dir
from tests.engines.speech import conversation, wav_bytes
from tests.hub.download import download_into, repo_from_directory
from tests.hub.server import LocalHub

CHECKS = {
    # engine: (repo, builder, route, form fields)
    "pyannote": ("berth-test/tiny-diarization", "tiny_pyannote.py", "/api/diarization/process"),
    "nemo-asr": ("berth-test/tiny-canary", "tiny_canary.py", "/v1/audio/transcriptions"),
}


def check(engine: str, work: Path, audio: bytes) -> bool:
    repo, builder, route = CHECKS[engine]
    hub = LocalHub().start()
    try:
        hub.add(repo_from_directory(repo, tiny_model_dir(engine, builder)))
        download_into(hub, work / engine, repo)
    finally:
        hub.stop()
    began = time.monotonic()
    server = EngineServer(engine, work / engine, repo, {"gpus": 1, "servedModelName": "tiny"})
    try:
        status = server.wait_ready(timeout=600)
        ready = time.monotonic() - began
        fields = {"model": "tiny"} if engine == "nemo-asr" else {}
        body, headers = multipart(fields, audio)
        started = time.monotonic()
        code, _, _ = server.call(route, body, headers)
        answer = time.monotonic() - started
    finally:
        server.stop()
    torch = status["dependencies"].get("torch", {})
    device = status["details"].get("device")
    print(
        f"{engine}: device {device}, torch {torch.get('version')} on CUDA runtime "
        f"{torch.get('cuda_runtime')}, Ready in {ready:.1f} s (load "
        f"{status['details'].get('load_seconds')} s), one request {answer * 1000:.0f} ms -> {code}"
    )
    # as the operator compares them (status.mismatches): the image's expected versions
    expected = DEFAULT_EXPECTED_DEPENDENCIES[engine]
    print(json.dumps([str(m) for m in compare(status["dependencies"], expected)]))
    return device == "cuda:0" and code == 200


def main() -> int:
    audio = wav_bytes(conversation([("en+m3", "one two three four"), ("en+f3", "five six")]))
    with tempfile.TemporaryDirectory() as directory:
        results = [check(engine, Path(directory), audio) for engine in CHECKS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
