"""Benchmark: the download Job against plain curl on loopback, and resume after a kill.

Serves a generated repo from the local hub, then in the same run:
- curl fetches every file (the baseline), then the download Job fetches the same repo
  (target: at least 90 % of curl's throughput). As on the real hub, the LFS files redirect to
  a CDN: nginx (Debian's nginx-light) when it is installed, so that both clients are measured
  against a server that costs little CPU; without nginx the Python hub serves them itself;
- the download Job is killed at about 50 % and started again (target: less than one file
  downloaded again).

    python -m benchmarks.download_throughput [--files 4] [--file-mib 256]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.cluster.controlplane import free_port
from tests.hub.download import finish, start_download
from tests.hub.server import HubRepo, LocalHub

MiB = 2**20


@contextlib.contextmanager
def nginx(root: Path, work: Path) -> Iterator[str | None]:
    """nginx serving `root` on loopback (its URL), or None when nginx is not installed."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    if binary is None:
        yield None
        return
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.log;
events {{ worker_connections 64; }}
http {{ access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
"""
    )
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(work)])
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], check=False
        ).returncode not in (0, 22):
            assert time.monotonic() < deadline, (work / "nginx.log").read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def curl_all(hub: LocalHub, repo: HubRepo, target: Path) -> float:
    """Seconds for curl to fetch every file, four at a time (as the Job's default workers)."""
    target.mkdir(parents=True)
    urls = [f"{hub.endpoint}/{repo.repo_id}/resolve/main/{path}" for path in repo.files]
    started = time.monotonic()
    processes = [
        subprocess.Popen(["curl", "-sSfL", "-o", str(target / Path(url).name), url]) for url in urls
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
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # nginx's worker drops to an unprivileged user when run as root
        cdn_root = work_dir / "cdn"
        for path, content in files.items():
            (cdn_root / repo.repo_id).mkdir(parents=True, exist_ok=True)
            (cdn_root / repo.repo_id / path).write_bytes(content)
        (work_dir / "nginx").mkdir()
        repo.cdn = stack.enter_context(nginx(cdn_root, work_dir / "nginx"))
        print(f"files served by {'nginx (a CDN)' if repo.cdn else 'the Python hub itself'}")
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

        repo.cdn = None  # the hub counts the bytes it sends itself
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
