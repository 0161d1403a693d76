"""Benchmark: a transcript with speakers in one call (`response_format=diarized_json` through
the gateway) against the two calls a client would make itself (pyannote's exclusive
diarization, then Canary's verbose_json with word times), on the tiny models' real servers.

Prints, for each recording length: the wall time of each separate call, their sum, the one
call's time and its ratio to the sum (the target: at most 1.1), and the peak resident memory of
the gateway, the Canary server and the pyannote server during each (Linux's VmHWM, reset before
each measurement).

    python -m benchmarks.diarized_transcript [--minutes 1 25]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.cluster import ControlPlane
from tests.engines.forms import multipart
from tests.engines.runner import published_and_downloaded, tiny_model_dir
from tests.engines.speech import SAMPLE_RATE, conversation, wav_bytes
from tests.gateway.parts import http, local_address
from tests.gateway.speech_stack import CANARY_REPO, DIARIZATION_REPO, speech_gateway
from tests.operator_process import install_crd

NAMESPACE = "bench-speakers"


def recording(seconds: int) -> bytes:
    """Two voices taking turns for `seconds`, as a WAV file."""
    turns = conversation(
        [
            ("en+m3", "This is the first speaker, talking for a while about the weather."),
            ("en+f3", "And this is the second one, who answers at some length as well."),
        ]
    )
    repeats = seconds * SAMPLE_RATE // len(turns) + 1
    return wav_bytes(np.tile(turns, repeats)[: seconds * SAMPLE_RATE])


def peak_rss(pids: dict[str, int], action: Callable[[], Any]) -> tuple[float, dict[str, int]]:
    """Runs `action`; its wall time and each process's peak resident bytes meanwhile."""
    for pid in pids.values():
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM
    started = time.perf_counter()
    action()
    took = time.perf_counter() - started
    peaks = {}
    for name, pid in pids.items():
        status = Path(f"/proc/{pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        peaks[name] = int(line.split()[1]) * 1024
    return took, peaks


def post(url: str, fields: dict[str, str], audio: bytes) -> None:
    status, _, payload = http("POST", url, *multipart(fields, audio), timeout=3600)
    assert status == 200, payload[:500]


#: (route, form fields) of each call measured: the client's two, then the one composed call
CALLS = {
    "diarize": ("/api/diarization/process", {"model": "diarization", "exclusive": "true"}),
    "words": (
        "/v1/audio/transcriptions",
        {"model": "canary", "response_format": "verbose_json", "timestamp_granularities[]": "word"},
    ),
    "one call": (
        "/v1/audio/transcriptions",
        {"model": "canary", "response_format": "diarized_json"},
    ),
}


def measure(url: str, pids: dict[str, int], audio: bytes) -> list[tuple[float, dict[str, int]]]:
    """Each call of CALLS in turn: its wall time and the processes' peak memory."""
    return [
        peak_rss(pids, lambda route=route, fields=fields: post(url + route, fields, audio))
        for route, fields in CALLS.values()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 25])
    args = parser.parse_args()
    address = local_address()
    assert address, "no non-loopback address on this machine"
    work = Path(tempfile.mkdtemp(prefix="berth-speakers-bench-"))
    caches = {
        "nemo-asr": published_and_downloaded(
            CANARY_REPO, tiny_model_dir("nemo-asr", "tiny_canary.py"), work / "canary"
        ),
        "pyannote": published_and_downloaded(
            DIARIZATION_REPO, tiny_model_dir("pyannote", "tiny_pyannote.py"), work / "pyannote"
        ),
    }
    rows = []
    with ControlPlane(workdir=work / "cluster") as plane:
        install_crd(plane)
        with speech_gateway(plane, NAMESPACE, address, caches, work) as stack:
            gateway = stack.gateway
            pids = {
                "gateway": gateway.process.pid,
                "canary": stack.servers["nemo-asr"].process.pid,
                "pyannote": stack.servers["pyannote"].process.pid,
            }
            for minutes in args.minutes:
                rows.append((minutes, *measure(gateway.url, pids, recording(int(minutes * 60)))))
    shutil.rmtree(work, ignore_errors=True)
    print_table(rows)


def print_table(rows: list[tuple[float, Any, Any, Any]]) -> None:
    mib = 2**20
    print(
        f"{'audio':>7} {'diarize s':>10} {'words s':>8} {'sum s':>7} {'one call s':>11} "
        f"{'ratio':>6}   peak RSS MiB (gateway / canary / pyannote): two calls | one call"
    )
    for minutes, (t1, m1), (t2, m2), (t3, m3) in rows:
        two = {k: max(m1[k], m2[k]) for k in m1}
        print(
            f"{minutes:>5g} m {t1:>10.1f} {t2:>8.1f} {t1 + t2:>7.1f} {t3:>11.1f} "
            f"{t3 / (t1 + t2):>6.2f}   "
            f"{two['gateway'] / mib:.0f} / {two['canary'] / mib:.0f} / {two['pyannote'] / mib:.0f}"
            f" | {m3['gateway'] / mib:.0f} / {m3['canary'] / mib:.0f} / {m3['pyannote'] / mib:.0f}"
        )


if __name__ == "__main__":
    main()
