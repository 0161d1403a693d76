"""Benchmark: 1,000 ModelDeployments created at once on the local control plane.

Prints: the time until every one has its children and a settled status (target < 60 s),
the operator's peak memory (target < 300 MB), and the API writes it makes during steady
state with nothing changing (target 0). Baseline, in the same run: the time the same
control plane takes to run 1,000 plain Deployments, i.e. the floor any operator sits on.

    python -m benchmarks.operator_scale [--count 1000] [--models 200] [--steady-seconds 300]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from tests.cluster import ControlPlane, FakeNode
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd


def bench_nodes() -> list[FakeNode]:
    """Enough fake capacity for every replica: 4 nodes of 512 GPUs and 2,000 pods each, and a
    CPU node for the download Jobs."""
    gpu = [FakeNode(f"gpu-node-{i}", gpus=512, pods="2000") for i in range(4)]
    return [*gpu, FakeNode("cpu-node-0", pods="2000")]


def model_deployments(count: int, models: int) -> list[dict]:
    engines = [
        ("pyannote", "org/diarization-{}"),
        ("nemo-asr", "org/asr-{}"),
        ("vllm", "org/llm-{}"),
    ]
    items = []
    for i in range(count):
        model = i % models
        engine, repo = engines[model % 3]
        items.append(
            {
                "apiVersion": "berth.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"md-{i:04d}"},
                "spec": {"engine": engine, "model": {"repo": repo.format(model)}},
            }
        )
    return items


def plain_deployments(count: int) -> list[dict]:
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"d-{i:04d}"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": f"d-{i:04d}"}},
                "template": {
                    "metadata": {"labels": {"app": f"d-{i:04d}"}},
                    "spec": {
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                        "containers": [
                            {
                                "name": "s",
                                "image": "x",
                                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                            }
                        ],
                    },
                },
            },
        }
        for i in range(count)
    ]


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(2.0)
    raise TimeoutError(f"{what} not reached in {timeout:.0f} s")


def list_json(plane: ControlPlane, *args: str) -> list[dict]:
    return json.loads(plane.kubectl("get", *args, "-o", "json", timeout=120).stdout)["items"]


def apply_all(plane: ControlPlane, namespace: str, objects: list[dict], clients: int = 10) -> None:
    """Creates the objects with `clients` kubectl processes at once, as a GitOps sync would."""
    chunks = [objects[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        for _ in pool.map(
            lambda chunk: plane.kubectl(
                "apply",
                "-n",
                namespace,
                "--server-side",
                "-f",
                "-",
                input=yaml.safe_dump_all(chunk),
                timeout=600,
            ),
            chunks,
        ):
            pass


def settled(plane: ControlPlane, namespace: str, count: int) -> bool:
    items = list_json(plane, "md", "-n", namespace)
    done = [
        m
        for m in items
        if (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
        and m["status"].get("phase") == "Starting"
        and m["status"].get("readyReplicas") == 1
    ]
    return len(done) == count


def changed_paths(old: object, new: object, path: str = "") -> list[str]:
    """Where two objects differ, as dotted paths (for the steady-state report)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            p
            for k in sorted(set(old) | set(new))
            for p in changed_paths(old.get(k), new.get(k), f"{path}.{k}")
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            p
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for p in changed_paths(a, b, f"{path}[{i}]")
        ]
    return [] if old == new else [path]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--steady-seconds", type=float, default=300)
    args = parser.parse_args()

    with ControlPlane(nodes=bench_nodes()) as plane:
        print(f"control plane up in {plane.startup_seconds:.1f} s", flush=True)
        plane.kubectl("create", "namespace", "baseline")
        started = time.monotonic()
        apply_all(plane, "baseline", plain_deployments(args.count))
        wait_until(
            "baseline ready",
            lambda: (
                sum(
                    1
                    for d in list_json(plane, "deploy", "-n", "baseline")
                    if (d.get("status") or {}).get("readyReplicas") == 1
                )
                == args.count
            ),
            600,
        )
        baseline = time.monotonic() - started
        print(f"baseline: {args.count} plain Deployments running in {baseline:.1f} s", flush=True)
        plane.kubectl("delete", "namespace", "baseline", "--timeout=600s", timeout=620)

        install_crd(plane)
        plane.kubectl("create", "namespace", "bench")
        plane.apply(cache_volume_manifest("bench-cache", "bench", "berth-model-cache"))
        operator = OperatorProcess(plane, plane.workdir, extra_env={"BERTH_RESYNC_SECONDS": "60"})
        operator.start()
        try:
            started = time.monotonic()
            apply_all(plane, "bench", model_deployments(args.count, args.models))
            applied = time.monotonic() - started
            wait_until("all settled", lambda: settled(plane, "bench", args.count), 900)
            elapsed = time.monotonic() - started
            print(
                f"operator: {args.count} ModelDeployments ({args.models} models) applied in {applied:.1f} s, "
                f"all with children and a settled status after {elapsed:.1f} s "
                f"(target < 60 s; {elapsed / baseline:.2f}x the baseline)",
                flush=True,
            )
            jobs = list_json(plane, "jobs", "-n", "bench")
            print(f"download Jobs: {len(jobs)} for {args.models} models", flush=True)

            # Steady state starts once the operator has stopped writing for 20 s.
            quiet_since, last = time.monotonic(), operator.metric("berth_api_writes_total")
            while time.monotonic() - quiet_since < 20:
                time.sleep(5)
                now = operator.metric("berth_api_writes_total")
                if now != last:
                    quiet_since, last = time.monotonic(), now
            writes_before = operator.metric("berth_api_writes_total")
            before = {m["metadata"]["name"]: m for m in list_json(plane, "md", "-n", "bench")}
            time.sleep(args.steady_seconds)
            writes = operator.metric("berth_api_writes_total") - writes_before
            after = {m["metadata"]["name"]: m for m in list_json(plane, "md", "-n", "bench")}
            changed = [
                name
                for name, m in after.items()
                if before[name]["metadata"]["resourceVersion"] != m["metadata"]["resourceVersion"]
            ]
            for name in changed[:3]:
                print(f"  changed: {name}: {changed_paths(before[name], after[name])}", flush=True)
            changed = len(changed)
            reconciles = operator.metric("berth_reconciles_total")
            print(
                f"steady state: {writes:.0f} API writes by the operator in {args.steady_seconds:.0f} s "
                f"(target 0); {changed} ModelDeployments changed; {reconciles:.0f} reconciles in all",
                flush=True,
            )
            assert operator.popen is not None
            print(
                f"operator peak memory: {peak_rss_mib(operator.popen.pid):.0f} MiB (target < 300 MB)",
                flush=True,
            )
        finally:
            operator.stop()


if __name__ == "__main__":
    main()
