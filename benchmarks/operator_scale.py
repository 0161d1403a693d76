"""Benchmark: 1,000 ModelDeployments created at once on the local control plane.

The floor, measured in the same run: the objects Berth makes for those resources (rendered by
its own functions: per resource a Deployment, Service, ServiceAccount, Role and RoleBinding; per
model a download Job and its Role, ServiceAccount and RoleBinding), applied directly by the same
10 parallel server-side clients, until every Deployment is ready. Then Berth, and it prints:
the time until every resource has its children and a settled status, as a ratio to the floor
(target < 1.5x); the operator's writes per resource by kind (from the API server's audit log)
and its CPU seconds; its writes at rest over --steady-seconds (target 0); its peak memory
(target < 300 MiB).

    python -m benchmarks.operator_scale [--count 1000] [--models 200] [--steady-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from berth_operator.config import OperatorConfig
from berth_operator.controller.cache import render_cache_claim
from berth_operator.controller.desired import desired_children
from berth_operator.controller.download import download_identity
from berth_operator.controller.netpol import configured_api_server
from berth_operator.controller.observed import DownloadState, Observed
from berth_operator.controller.resource import ModelDeployment

from tests.cluster import ControlPlane, FakeNode
from tests.cluster.audit import by_resource, operator_writes
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd

#: the order the floor applies kinds in, as the operator does: identities, then workloads
FLOOR_ORDER = [
    "NetworkPolicy",
    "Role",
    "ServiceAccount",
    "RoleBinding",
    "Service",
    "PodDisruptionBudget",
    "Job",
    "Deployment",
]
COMPLETE_JOB = {"metadata": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}


def bench_nodes() -> list[FakeNode]:
    """Enough fake capacity for every replica: 4 nodes of 512 GPUs and 2,000 pods each (and the
    CPUs and memory the engines request by default), and a CPU node for the download Jobs."""
    gpu = [
        FakeNode(f"gpu-node-{i}", gpus=512, pods="2000", cpu="2000", memory="32Ti")
        for i in range(4)
    ]
    return [*gpu, FakeNode("cpu-node-0", pods="2000", cpu="2000", memory="32Ti")]


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


def floor_objects(items: list[dict], namespace: str, config: OperatorConfig) -> list[dict]:
    """What the operator would make for `items` with `config`, rendered by its own functions
    once each download has completed (the cache claim first); without ownerReferences, since
    no owner exists."""
    mds = [
        ModelDeployment.from_body(
            {**body, "metadata": {**body["metadata"], "namespace": namespace, "uid": f"u{i}"}}
        )
        for i, body in enumerate(items)
    ]
    downloads = {md.name: download_identity(md) for md in mds}
    sharers: dict[str, list[ModelDeployment]] = defaultdict(list)
    for md in mds:
        sharers[downloads[md.name].job_name].append(md)
    objects: dict[tuple[str, str], dict] = {}
    for md in mds:
        download = downloads[md.name]
        observed = Observed(
            md=md,
            download=DownloadState(
                download,
                sharers[download.job_name],
                job=COMPLETE_JOB,
                role={"metadata": {"name": download.job_name, "uid": "floor"}},
            ),
            api_server=configured_api_server(config),
        )
        for child in desired_children(observed, config):
            child["metadata"].pop("ownerReferences", None)
            objects[(child["kind"], child["metadata"]["name"])] = child
    claim = render_cache_claim(mds[0], config)
    return [claim, *sorted(objects.values(), key=lambda o: FLOOR_ORDER.index(o["kind"]))]


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
    """Creates the objects with `clients` kubectl processes at once, as a GitOps sync would (as
    JSON: YAML would let Go read a hash such as 12e45 in a label as a number)."""
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
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}),
                timeout=600,
            ),
            chunks,
        ):
            pass


def all_deployments_ready(plane: ControlPlane, namespace: str, count: int) -> bool:
    deployments = list_json(plane, "deploy", "-n", namespace)
    ready = [d for d in deployments if (d.get("status") or {}).get("readyReplicas") == 1]
    return len(ready) == count


def settled(plane: ControlPlane, namespace: str, count: int, started: float) -> bool:
    """Every resource has a settled status; prints how many are in each phase (one listing
    per poll: polling must not load the control plane more than the floor's does)."""
    items = list_json(plane, "md", "-n", namespace)
    phases = Counter((m.get("status") or {}).get("phase") or "none" for m in items)
    done = [
        m
        for m in items
        if (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
        and m["status"].get("phase") == "Starting"
        and m["status"].get("readyReplicas") == 1
    ]
    tally = ", ".join(f"{phase} {n}" for phase, n in sorted(phases.items()))
    print(
        f"  {time.monotonic() - started:5.1f} s: {tally}; {len(done)}/{count} settled", flush=True
    )
    return len(done) == count


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def measure_floor(plane: ControlPlane, items: list[dict], config: OperatorConfig) -> float:
    """Seconds until the objects Berth makes for `items`, applied directly, run."""
    plane.kubectl("create", "namespace", "floor")
    plane.apply(cache_volume_manifest("floor-cache", "floor", "berth-model-cache"))
    objects = floor_objects(items, "floor", config)
    started = time.monotonic()
    apply_all(plane, "floor", objects)
    wait_until("floor ready", lambda: all_deployments_ready(plane, "floor", len(items)), 900)
    elapsed = time.monotonic() - started
    print(
        f"floor: the {len(objects)} objects Berth makes for {len(items)} resources, applied "
        f"directly, every Deployment ready after {elapsed:.1f} s",
        flush=True,
    )
    plane.kubectl("delete", "namespace", "floor", "--timeout=900s", timeout=920)
    return elapsed


def wait_for_quiet(operator: OperatorProcess, seconds: float = 20) -> None:
    """Until the operator has written nothing for `seconds`."""
    quiet_since, last = time.monotonic(), operator.metric("berth_api_writes_total")
    while time.monotonic() - quiet_since < seconds:
        time.sleep(5)
        now = operator.metric("berth_api_writes_total")
        if now != last:
            quiet_since, last = time.monotonic(), now


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--steady-seconds", type=float, default=120)
    args = parser.parse_args()
    items = model_deployments(args.count, args.models)

    with ControlPlane(nodes=bench_nodes()) as plane:
        print(f"control plane up in {plane.startup_seconds:.1f} s", flush=True)
        install_crd(plane)
        operator = OperatorProcess(plane, plane.workdir, extra_env={"BERTH_RESYNC_SECONDS": "60"})
        # the floor is what this operator makes (NetworkPolicies included), applied directly
        floor = measure_floor(plane, items, OperatorConfig.from_env(operator.settings_env()))

        plane.kubectl("create", "namespace", "bench")
        plane.apply(cache_volume_manifest("bench-cache", "bench", "berth-model-cache"))
        operator.start()
        assert operator.popen is not None
        pid = operator.popen.pid
        try:
            audit_start = plane.audit_log.stat().st_size if plane.audit_log.exists() else 0
            cpu_start = cpu_seconds(pid)
            started = time.monotonic()
            apply_all(plane, "bench", items)
            applied = time.monotonic() - started
            wait_until("all settled", lambda: settled(plane, "bench", args.count, started), 900)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(pid) - cpu_start
            print(
                f"operator: {args.count} ModelDeployments ({args.models} models) applied in "
                f"{applied:.1f} s, all with children and a settled status after {elapsed:.1f} s "
                f"({elapsed / floor:.2f}x the floor; target < 1.5x)",
                flush=True,
            )
            writes = operator_writes(plane.audit_log, audit_start)
            per_kind = ", ".join(
                f"{kind} {n / args.count:.2f}" for kind, n in by_resource(writes).most_common()
            )
            print(
                f"writes while settling: {len(writes)} ({len(writes) / args.count:.2f} per "
                f"resource: {per_kind}); operator CPU {cpu:.1f} s",
                flush=True,
            )
            jobs = list_json(plane, "jobs", "-n", "bench")
            print(f"download Jobs: {len(jobs)} for {args.models} models", flush=True)

            wait_for_quiet(operator)
            audit_rest = plane.audit_log.stat().st_size
            writes_before = operator.metric("berth_api_writes_total")
            before = {m["metadata"]["name"]: m for m in list_json(plane, "md", "-n", "bench")}
            time.sleep(args.steady_seconds)
            counted = operator.metric("berth_api_writes_total") - writes_before
            at_rest = operator_writes(plane.audit_log, audit_rest)
            after = {m["metadata"]["name"]: m for m in list_json(plane, "md", "-n", "bench")}
            changed = [
                name
                for name, m in after.items()
                if before[name]["metadata"]["resourceVersion"] != m["metadata"]["resourceVersion"]
            ]
            for name in changed[:3]:
                print(f"  changed: {name}: {changed_paths(before[name], after[name])}", flush=True)
            reconciles = operator.metric("berth_reconciles_total")
            print(
                f"at rest: {counted:.0f} API writes by the operator in {args.steady_seconds:.0f} s "
                f"(audit log: {len(at_rest)}; target 0): {dict(by_resource(at_rest))}; "
                f"{len(changed)} ModelDeployments changed; {reconciles:.0f} reconciles in all",
                flush=True,
            )
            print(
                f"operator peak memory: {peak_rss_mib(pid):.0f} MiB (target < 300 MiB)", flush=True
            )
        finally:
            operator.stop()


if __name__ == "__main__":
    main()
