"""What differs between engines in the pod: probes, start-up budget, settings and extra env."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from berth_operator.api.modeldeployment import (
    AsrSettings,
    DiarizationSettings,
    LoraLimits,
    ModelDeploymentSpec,
    VllmSettings,
)
from berth_operator.api.podenv import (
    AsrEngineSettings,
    DiarizationEngineSettings,
    EngineSettings,
    VllmEngineSettings,
)

PROBE_PERIOD_SECONDS = 10
GIB = 2**30
#: the size assumed for a model whose download reported none (canary-1b-v2's .nemo is ~6 GB)
UNKNOWN_MODEL_BYTES = 8 * GIB


@dataclass(frozen=True)
class EngineProfile:
    """How an engine's server starts and answers probes."""

    name: str
    live_path: str
    ready_path: str
    startup_path: str
    base_startup_seconds: int
    startup_seconds_per_gib: float
    #: what the server writes under /tmp besides an unpacked model (caches, request audio)
    scratch_bytes: int
    #: whether the server unpacks the model's archive under /tmp while it loads
    unpacks_model: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def tmp_bytes(self, model_bytes: int | None) -> int:
        """The size limit of /tmp, which the container also requests as ephemeral storage."""
        unpacked = (model_bytes or UNKNOWN_MODEL_BYTES) if self.unpacks_model else 0
        return self.scratch_bytes + unpacked

    def startup_budget_seconds(self, model_bytes: int | None) -> int:
        """Import time plus weight loading, which grows with the model's size."""
        gib = (model_bytes or 0) / GIB
        return self.base_startup_seconds + math.ceil(gib * self.startup_seconds_per_gib)

    def probes(self, port: str, model_bytes: int | None) -> dict[str, Any]:
        """startupProbe, readinessProbe and livenessProbe of the server container."""
        budget = self.startup_budget_seconds(model_bytes)

        def http(path: str, **extra: int) -> dict[str, Any]:
            return {"httpGet": {"path": path, "port": port}, "timeoutSeconds": 5, **extra}

        return {
            "startupProbe": http(
                self.startup_path,
                periodSeconds=PROBE_PERIOD_SECONDS,
                failureThreshold=math.ceil(budget / PROBE_PERIOD_SECONDS),
            ),
            "readinessProbe": http(self.ready_path, periodSeconds=5, failureThreshold=3),
            "livenessProbe": http(self.live_path, periodSeconds=15, failureThreshold=4),
        }


ENGINES: dict[str, EngineProfile] = {
    # vLLM's own OpenAI server holds the service port; /health answers once the model is loaded.
    "vllm": EngineProfile(
        name="vllm",
        live_path="/health",
        ready_path="/health",
        startup_path="/health",
        base_startup_seconds=300,
        startup_seconds_per_gib=10,
        scratch_bytes=4 * GIB,  # torch.compile and Triton caches (HOME is /tmp)
        env={"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"},
    ),
    "nemo-asr": EngineProfile(
        name="nemo-asr",
        live_path="/healthz",
        ready_path="/readyz",
        startup_path="/readyz",
        # `import nemo.collections.asr` took 28-50 s on 2 busy cores, the tiny model's start
        # 10-60 s; twice that, plus the server and CUDA start-up
        base_startup_seconds=150,
        # NeMo 3.0 unpacks the .nemo once (2.5 did it twice, for Canary and its aligner): at
        # 100 MiB/s from the cache volume ~10 s/GiB, plus reading the weights onto the GPU
        startup_seconds_per_gib=20,
        # request audio as WAV for timestamps: 115 MB an hour, 3 h at most, 8 to a batch
        scratch_bytes=4 * GIB,
        unpacks_model=True,
    ),
    "pyannote": EngineProfile(
        name="pyannote",
        live_path="/healthz",
        ready_path="/readyz",
        startup_path="/readyz",
        base_startup_seconds=120,
        startup_seconds_per_gib=15,
        scratch_bytes=1 * GIB,  # audio is decoded in memory; library caches only
        env={"PYANNOTE_METRICS_ENABLED": "0"},
    ),
}


def served_model_name(spec: ModelDeploymentSpec, name: str) -> str:
    """The name clients send as `model` (to the model server and to the gateway): the
    resource's name, unless vllm sets another."""
    if spec.engine == "vllm" and spec.vllm and spec.vllm.served_model_name:
        return spec.vllm.served_model_name
    return name


def engine_settings(spec: ModelDeploymentSpec, name: str) -> dict[str, Any]:
    """The engine's settings with every default filled in (BERTH_SETTINGS): the runtime trusts
    them."""
    common: dict[str, Any] = {
        "gpus": spec.resources.gpus,
        "served_model_name": served_model_name(spec, name),
    }
    if spec.engine == "vllm":
        vllm = spec.vllm or VllmSettings()
        # the adapters are not in the pod: the pods follow them from the resource, unrestarted
        settings: EngineSettings = VllmEngineSettings(
            **(vllm.model_dump(exclude={"adapters", "lora"}) | common),
            lora=vllm.lora or (LoraLimits() if vllm.adapters else None),
            tensor_parallel_size=spec.resources.gpus,
        )
    elif spec.engine == "nemo-asr":
        # the pairing is the gateway's business: a pod never needs it
        asr = (spec.asr or AsrSettings()).model_dump(exclude={"diarization_model"})
        settings = AsrEngineSettings(**(asr | common))
    else:
        diarization = spec.diarization or DiarizationSettings()
        settings = DiarizationEngineSettings(**(diarization.model_dump() | common))
    return settings.model_dump(by_alias=True, exclude_none=True)
