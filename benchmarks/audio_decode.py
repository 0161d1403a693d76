"""Benchmark: decode and resample one hour of 44.1 kHz stereo MP3 to mono float32 at 16 kHz.

Berth's decoder (PyAV, in memory) against the ffmpeg command line doing the same
(`ffmpeg -i in.mp3 -ac 1 -ar 16000 -f f32le -`), in the same run. Target: at most 1.2x.
Needs the ffmpeg command (Debian: apt-get install ffmpeg).

    python -m benchmarks.audio_decode [--minutes 60]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from berth_runtime.audio import decode_audio


def make_mp3(path: Path, minutes: float) -> None:
    """Speech-like noise bursts, 44.1 kHz stereo, 128 kb/s MP3, made by ffmpeg itself."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=color=pink:sample_rate=44100:duration={minutes * 60}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=220:sample_rate=44100:duration={minutes * 60}",
            "-filter_complex",
            "[0][1]amix=inputs=2,aformat=channel_layouts=stereo",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            str(path),
        ],
        check=True,
    )


def best_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        raise SystemExit("the ffmpeg command is needed for the baseline: apt-get install ffmpeg")
    with tempfile.TemporaryDirectory() as work:
        mp3 = Path(work) / "hour.mp3"
        make_mp3(mp3, args.minutes)
        data = mp3.read_bytes()
        print(f"input: {args.minutes:.0f} min of 44.1 kHz stereo MP3, {len(data) / 2**20:.0f} MiB")

        def cli() -> None:
            out = subprocess.run(
                [
                    "ffmpeg",
                    "-loglevel",
                    "error",
                    "-i",
                    str(mp3),
                    "-ac",
                    "1",
                    "-ar",
                    "16000",
                    "-f",
                    "f32le",
                    "-",
                ],
                check=True,
                capture_output=True,
            ).stdout
            assert len(out) // 4 > 0

        samples: list[np.ndarray] = []
        ours = best_of(
            args.runs,
            lambda: samples.append(decode_audio(data, max_seconds=args.minutes * 60 + 60)),
        )
        baseline = best_of(args.runs, cli)
        print(f"ffmpeg command line: {baseline:.2f} s")
        print(
            f"berth_runtime.audio.decode_audio: {ours:.2f} s = {ours / baseline:.2f}x ffmpeg (target <= 1.2x)"
        )
        print(f"output: {len(samples[-1]) / 16000 / 60:.1f} min of mono float32 at 16 kHz")


if __name__ == "__main__":
    main()
