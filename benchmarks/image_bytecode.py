"""Benchmark: an engine image's imports with the bytecode compiled at build time, against the
same imports compiling every module in memory, as an image built without bytecode does on a
read-only root filesystem. Both run in the image (buildah, as its user 65532), in the same run;
an empty `python -c pass` gives the cost of starting a container. Needs an image from
`make images` in buildah's storage; run as root.

    python -m benchmarks.image_bytecode [--engine pyannote] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from berth_operator.config import DEFAULT_TAG

IMPORTS = {
    "pyannote": "import torch, pyannote.audio",
    "nemo-asr": "import torch, nemo.collections.asr",
    "vllm": "import torch, vllm.entrypoints.openai.api_server",
}
# Python looks for bytecode only under this empty prefix and writes none: what a start costs
# when the image holds no bytecode and its site-packages cannot be written.
NO_BYTECODE = ("--env=PYTHONPYCACHEPREFIX=/tmp/no-bytecode", "--env=PYTHONDONTWRITEBYTECODE=1")


def timed(container: str, code: str, env: tuple[str, ...] = ()) -> float:
    """Seconds `python -c code` takes in the container, container start included."""
    start = time.monotonic()
    subprocess.run(
        [
            "buildah",
            "run",
            "--runtime",
            "runc",
            "--user",
            "65532:65532",
            *env,
            container,
            "--",
            "python",
            "-c",
            code,
        ],
        check=True,
    )
    return time.monotonic() - start


def main() -> None:
    """Prints the median of each case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(IMPORTS), default="pyannote")
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    image = f"localhost/berth-{arguments.engine}:{DEFAULT_TAG}"
    container = subprocess.run(
        ["buildah", "from", "--pull-never", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    code = IMPORTS[arguments.engine]
    try:
        timed(container, code)  # the page cache holds the image's files for every case
        cases = {
            "container start (python -c pass)": ("pass", ()),
            f"{code}, bytecode from the image": (code, ()),
            f"{code}, compiled at start (baseline)": (code, NO_BYTECODE),
        }
        for label, (source, env) in cases.items():
            runs = [timed(container, source, env) for _ in range(arguments.runs)]
            print(f"{label:<70} {statistics.median(runs):6.2f} s  (runs: {runs})")
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


if __name__ == "__main__":
    main()
