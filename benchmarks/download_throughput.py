"""Benchmark: the download Job against plain curl on loopback, and resume after a kill.

Serves a generated repo from the local hub, then in the same run:
- curl fetches every file (the baseline), then the download Job fetches the same repo
  (target: at least 90 % of curl's throughput);
- the download Job is killed at about 50 % and started again (target: less than one file
  downloaded again).

    python -m benchmarks.download_throughput [--files 4] [--file-mib 256]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.hub.download import finish, start_download
from tests.hub.server import HubRepo, LocalHub

MiB = 2**20


def curl_all(hub: LocalHub, repo: HubRepo, target: Path) -> float:
    """Seconds for curl to fetch every file, four at a time (as the Job's default workers)."""
    target.mkdir(parents=True)
    urls = [f"{hub.endpoint}/{repo.repo_id}/resolve/main/{path}" for path in repo.files]
    started = time.monotonic()
    processes = [
        subprocess.Popen(["curl", "-sSf", "-o", str(target / Path(url).name), url]) for url in urls
    ]
    for process in processes:
        assert process.wait() == 0
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--file-mib", type=int, default=256)
    args = parser.parse_args()

    hub = LocalHub().start()
    files = {
        f"model-{i:05d}.safetensors": os.urandom(args.file_mib * MiB) for i in range(args.files)
    }
    repo = hub.add(HubRepo("bench/model", files=files, lfs=set(files)))
    total = args.files * args.file_mib * MiB
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        # Best of three each, alternating, so both see the same machine.
        curl_seconds = job_seconds = phase = float("inf")
        for attempt in range(3):
            curl_seconds = min(curl_seconds, curl_all(hub, repo, work_dir / f"curl-{attempt}"))
            cache = work_dir / f"cache-{attempt}"
            started = time.monotonic()
            result = finish(start_download(hub, cache, repo.repo_id), cache, timeout=600)
            job_seconds = min(job_seconds, time.monotonic() - started)
            assert result.returncode == 0, result.output
            logged = re.search(r"download phase: ([0-9.]+) s", result.output)
            assert logged is not None, result.output
            phase = min(phase, float(logged.group(1)))
        curl_rate, job_rate = total / curl_seconds / MiB, total / job_seconds / MiB
        phase_rate = total / phase / MiB
        print(
            f"curl (4 at once): {total / MiB:.0f} MiB in {curl_seconds:.2f} s = {curl_rate:.0f} MiB/s"
        )
        print(
            f"download Job, download phase: {phase:.2f} s = {phase_rate:.0f} MiB/s = "
            f"{100 * phase_rate / curl_rate:.0f} % of curl (target >= 90 %)"
        )
        print(
            f"download Job end to end (start, plan, download, sha256 of every file, marker): "
            f"{job_seconds:.2f} s = {job_rate:.0f} MiB/s = {100 * job_rate / curl_rate:.0f} % of curl"
        )

        cache = work_dir / "resume"
        process = start_download(hub, cache, repo.repo_id)
        blobs = cache / "models--bench--model" / "blobs"
        while True:
            on_disk = sum(p.stat().st_size for p in blobs.glob("*")) if blobs.exists() else 0
            if on_disk >= total // 2 or process.poll() is not None:
                break
            time.sleep(0.01)
        process.kill()
        process.wait()
        on_disk = sum(p.stat().st_size for p in blobs.glob("*"))
        before = hub.bytes_sent
        result = finish(start_download(hub, cache, repo.repo_id), cache, timeout=600)
        assert result.returncode == 0, result.output
        again = hub.bytes_sent - before
        refetched = max(0, again - (total - on_disk))
        print(
            f"resume: killed with {100 * on_disk / total:.0f} % on disk; the restart downloaded "
            f"{again / MiB:.0f} MiB for {(total - on_disk) / MiB:.0f} MiB missing: "
            f"{refetched / MiB:.1f} MiB fetched twice (target < one file, {args.file_mib} MiB)"
        )
    hub.stop()


if __name__ == "__main__":
    main()
