"""GPU check (run on a machine with an NVIDIA GPU): NVML telemetry and the dependency inspector.

    PYTHONPATH=runtime_images python tests/gpu/check_runtime.py

Prints what the runtime would report, and exits 1 when no GPU is seen.
"""

from __future__ import annotations

import json
import sys

from berth_operator.api.dependencies import compare
from berth_runtime.inspector import inspect_dependencies
from berth_runtime.telemetry import gpu_snapshot


def main() -> int:
    gpus = gpu_snapshot()
    report = inspect_dependencies()
    print(json.dumps({"gpus": gpus, "dependencies": report}, indent=2, default=str))
    torch = report.get("torch")
    if torch:
        import torch as t

        if t.cuda.is_available():
            x = t.randn(4096, 4096, device="cuda:0")
            t.cuda.synchronize()
            print(
                f"torch on cuda:0: {t.cuda.get_device_name(0)}, matmul ok: {float((x @ x).sum()) == float((x @ x).sum())}"
            )
        expected = {"cudaRuntime": torch.get("cuda_runtime") or "none"}
        print(
            "mismatches against its own CUDA runtime:",
            [m.reason for m in compare(report, expected)],
        )
    if not gpus:
        print("no GPU seen through NVML", file=sys.stderr)
        return 1
    print(
        f"{len(gpus)} GPU(s): "
        + ", ".join(f"{g['name']} {g['memoryTotalMiB']} MiB, driver {g['driver']}" for g in gpus)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
