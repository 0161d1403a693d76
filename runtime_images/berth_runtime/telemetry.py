"""GPU telemetry through NVML (nvidia-ml-py): memory, utilisation, temperature per visible GPU.

No GPU, no driver or no NVML: an empty list, not an error.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)
_initialised: bool | None = None


def _nvml() -> Any | None:
    global _initialised
    try:
        import pynvml
    except ImportError:
        return None
    if _initialised is None:
        try:
            pynvml.nvmlInit()
            _initialised = True
        except Exception as error:  # no driver here
            logger.info("no GPU telemetry: %s", error)
            _initialised = False
    return pynvml if _initialised else None


def gpu_snapshot() -> list[dict[str, Any]]:
    """One entry per GPU: index, name, memory used/total (MiB), utilisation %, temperature °C."""
    nvml = _nvml()
    if nvml is None:
        return []
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        name = nvml.nvmlDeviceGetName(handle)
        gpus.append(
            {
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else name,
                "memoryUsedMiB": memory.used // 2**20,
                "memoryTotalMiB": memory.total // 2**20,
                "utilizationPercent": nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                "temperatureC": nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
                "driver": _driver(nvml),
            }
        )
    return gpus


def _driver(nvml: Any) -> str:
    version = nvml.nvmlSystemGetDriverVersion()
    return version.decode() if isinstance(version, bytes) else version
