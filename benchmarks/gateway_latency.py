"""Benchmark: the latency the gateway adds to a small non-streaming request, against calling the
upstream directly and against nginx as a plain reverse proxy (Debian's nginx-light, installed
with apt when missing and running as root); and streamed chunks per second through the gateway
against direct.

Targets (issue 14): p50 added at most 1.5x nginx's, p99 at most 2x; streaming at least 95 % of
direct. The upstream is the tests' vLLM-compatible stand-in (tests/gateway/upstream.py), on a
non-loopback address of this machine, routed through a ModelDeployment and an EndpointSlice on
the local control plane.

    python -m benchmarks.gateway_latency [--requests 2000] [--tokens 5000] [--profile FILE]

With --profile, the gateway runs under cProfile and its busiest functions are printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pstats
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.gateway_bench import cpu_seconds, routed_gateway
from tests.cluster.controlplane import free_port
from tests.cluster.processes import ManagedProcess

BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
)
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  upstream model {{ server {upstream}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def nginx_binary() -> str:
    """Debian's nginx-light, installed with apt when it is missing (as root)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("nginx is missing: sudo apt-get install nginx-light")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env)
    return "/usr/sbin/nginx"


def start_nginx(workdir: Path, upstream: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    (workdir / "nginx.conf").write_text(
        NGINX_CONF.format(dir=workdir, upstream=upstream, port=port)
    )
    process = ManagedProcess.start(
        "nginx",
        [nginx_binary(), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
        workdir / "nginx.out",
        env=dict(os.environ),
        tied_to_parent=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return process, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nginx did not start:\n{process.log_tail()}")


def latencies(targets: dict[str, tuple[str, int]], count: int) -> dict[str, list[float]]:
    """Seconds per request for each target, each on its own keep-alive connection, taken in
    turns so that the machine's noise falls on all alike; after a warm-up."""
    connections = {n: http.client.HTTPConnection(*t, timeout=30) for n, t in targets.items()}
    headers = {"Content-Type": "application/json"}
    times: dict[str, list[float]] = {n: [] for n in targets}
    for index in range(count + 50):
        for name, connection in connections.items():
            started = time.perf_counter()
            connection.request("POST", "/v1/chat/completions", BODY, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            if index >= 50:
                times[name].append(time.perf_counter() - started)
    for connection in connections.values():
        connection.close()
    return times


def chunks_per_second(host: str, port: int, tokens: int) -> float:
    body = json.dumps({"model": "chat", "messages": [], "stream": True, "max_tokens": tokens})
    headers = {"Content-Type": "application/json", "X-Test-Chunk-Seconds": "0"}
    connection = http.client.HTTPConnection(host, port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, headers)
    response = connection.getresponse()
    events = response.read().count(b"data: ")
    elapsed = time.perf_counter() - started
    assert events == tokens + 1, events
    return tokens / elapsed


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if q < 100 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--profile", type=Path, help="cProfile the gateway into this file")
    args = parser.parse_args()
    profiler = ("-m", "cProfile", "-o", str(args.profile.resolve())) if args.profile else ()
    with routed_gateway({"chat": {}}, python_args=profiler) as bench:
        address, upstream, gateway = bench.address, bench.upstreams[0], bench.gateway
        nginx, nginx_port = start_nginx(bench.work, f"{address}:{upstream.port}")
        try:
            targets = {
                "direct": (address, upstream.port),
                "nginx": ("127.0.0.1", nginx_port),
                "gateway": ("127.0.0.1", gateway.port),
            }
            cpu_before = cpu_seconds(gateway.process.pid)
            measured = latencies(targets, args.requests)
            cpu_per_request = (cpu_seconds(gateway.process.pid) - cpu_before) / (args.requests + 50)
            p = {n: (percentile(t, 50), percentile(t, 99)) for n, t in measured.items()}
            print(f"{args.requests} small non-streaming requests, one keep-alive connection:")
            for name, (p50, p99) in p.items():
                print(f"  {name:8} p50 {p50 * 1000:7.3f} ms   p99 {p99 * 1000:7.3f} ms")
            added = {
                n: (p[n][0] - p["direct"][0], p[n][1] - p["direct"][1])
                for n in ("nginx", "gateway")
            }
            for name, (a50, a99) in added.items():
                print(f"  added by {name:8} p50 {a50 * 1000:7.3f} ms   p99 {a99 * 1000:7.3f} ms")
            print(
                f"  gateway/nginx added: p50 {added['gateway'][0] / added['nginx'][0]:.2f}x "
                f"(target <= 1.5x), p99 {added['gateway'][1] / added['nginx'][1]:.2f}x (target <= 2x)"
            )
            print(f"  gateway CPU per request: {cpu_per_request * 1000:.3f} ms")
            # best of three, in turns
            rates = [
                (
                    chunks_per_second(address, upstream.port, args.tokens),
                    chunks_per_second("127.0.0.1", gateway.port, args.tokens),
                )
                for _ in range(3)
            ]
            direct, through = max(r[0] for r in rates), max(r[1] for r in rates)
            print(
                f"streaming {args.tokens} SSE chunks: direct {direct:,.0f}/s, gateway {through:,.0f}/s "
                f"({through / direct:.0%} of direct, target >= 95%)"
            )
        finally:
            nginx.stop()
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
