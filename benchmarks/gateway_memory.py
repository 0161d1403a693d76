"""Benchmark: the gateway's memory while clients send bodies at its limits, against its idle
memory in the same run, and how every request was answered.

Two rounds through one gateway (its chart defaults: 16 MiB JSON, 100 MiB uploads, 192 MiB of
bodies held at once) to the tests' stand-in upstream, which reads and counts any body:

- JSON: `clients` clients at once, each a body just under the JSON limit that is one array of
  numbers (`/v1/embeddings`): the body that cost about 8x its bytes when the gateway parsed it;
- uploads: `clients` clients at once, each a multipart form just under the upload limit with
  the `model` field after the file (`/v1/audio/transcriptions`), so the gateway must hold it.

Target (issue 20): peak RSS under the chart's memory limit (512 MiB) with room to spare, and
every request answered with 2xx, 413, 429 or 503: none dropped.

    python -m benchmarks.gateway_memory [--clients 20]
"""

from __future__ import annotations

import argparse
import http.client
import threading
from collections import Counter
from pathlib import Path

from benchmarks.gateway_bench import routed_gateway

MIB = 2**20
JSON_LIMIT = 16 * MIB
UPLOAD_LIMIT = 100 * MIB
CHART_MEMORY_LIMIT = 512 * MIB
BOUNDARY = "berthbenchboundary"


def rss(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def json_body(size: int) -> bytes:
    head, tail = b'{"model": "embed", "input": [', b"]}"
    item = b"0.123456789,"
    count = (size - len(head) - len(tail)) // len(item)
    return head + item * count + b"0.5" + tail


def upload_body(size: int) -> bytes:
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    model = f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nembed\r\n'
    end = f"--{BOUNDARY}--\r\n".encode()
    filler = size - len(part) - len(model.encode()) - len(end)
    return part + b"\0" * filler + model.encode() + end


def send(port: int, path: str, body: bytes, content_type: str) -> str:
    """One request; its status, or what went wrong when none came back."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except (OSError, http.client.HTTPException) as error:
        return f"dropped ({type(error).__name__})"
    finally:
        conn.close()


def round_of(port: int, clients: int, path: str, body: bytes, content_type: str) -> Counter[str]:
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def client() -> None:
        answer = send(port, path, body, content_type)
        with lock:
            answers[answer] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    rounds = {
        "JSON": ("/v1/embeddings", json_body(JSON_LIMIT - 1024), "application/json"),
        "uploads": (
            "/v1/audio/transcriptions",
            upload_body(UPLOAD_LIMIT - 1024),
            f"multipart/form-data; boundary={BOUNDARY}",
        ),
    }
    with routed_gateway({"embed": {}}) as bench:
        gateway = bench.gateway
        pid = gateway.process.pid
        idle = rss(pid, "VmRSS")
        print(f"gateway idle RSS: {idle / MIB:.0f} MiB; chart limit {CHART_MEMORY_LIMIT / MIB:.0f}")
        dropped = 0
        for name, (path, body, content_type) in rounds.items():
            answers = round_of(gateway.port, args.clients, path, body, content_type)
            peak = rss(pid, "VmHWM")
            dropped += sum(n for a, n in answers.items() if a.startswith("dropped"))
            tally = ", ".join(f"{a}: {n}" for a, n in sorted(answers.items()))
            print(
                f"{name}: {args.clients} clients x {len(body) / MIB:.1f} MiB -> {tally}; "
                f"peak RSS so far {peak / MIB:.0f} MiB ({peak / idle:.1f}x idle, "
                f"{peak / CHART_MEMORY_LIMIT:.0%} of the limit)"
            )
        refused = [
            line for line in gateway.metrics().splitlines() if "refused_requests_total{" in line
        ]
        print("refusals:", "; ".join(refused) or "none")
        print(f"dropped requests: {dropped} (target 0)")


if __name__ == "__main__":
    main()
