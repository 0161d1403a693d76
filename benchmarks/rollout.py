"""Benchmark: day-2 changes under traffic on the real node (tests/incontainers/day2.py's events).

Prints, for each event and model: requests sent, failed requests (non-2xx or no answer), p50 and
p99 latency, and how long the change took to roll out; the steady windows before and after
are the baseline of the same run. Builds nothing: the images must be in the local registry
(`make test-images`).

    python -m benchmarks.rollout [--per-second 1] [--steady-seconds 30]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tests.incontainers.conftest import STALL_SECONDS
from tests.incontainers.day2 import prepare, restore, run_events, targets
from tests.incontainers.stack import ContainerStack
from tests.incontainers.tiny_models import publish_tiny_models
from tests.incontainers.traffic import Traffic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-second", type=float, default=1.0, help="requests/s per model")
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=2400.0, help="the whole run's bound")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="berth-rollout-bench-"))
    with ContainerStack(workdir, values={"downloadStallSeconds": STALL_SECONDS}) as stack:
        stack.pull_engine_images()
        publish_tiny_models(stack.hub)
        images = dict(stack.images)
        prepare(stack)
        traffic = Traffic(targets(stack.gateway_address(), args.per_second), args.max_seconds)
        with traffic.running():
            run_events(stack, traffic, args.steady_seconds)
        print(f"{args.per_second:g} requests/s to each model, through the gateway")
        print(traffic.table())
        failed = sum(len(f.failures) for f in traffic.figures().values())
        print(f"failed requests: {failed} of {len(traffic.outcomes)}")
        restore(stack, images)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
