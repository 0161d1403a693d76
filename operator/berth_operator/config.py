"""Operator-wide settings: default images, cache defaults, hub endpoint; read from the environment."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from berth_operator.api.metadata import GPU_PRESENT_LABEL

DEFAULT_REGISTRY = "ghcr.io/berth-dev"
DEFAULT_TAG = "0.1.0"

# What each engine image ships, as its runtime reports it (see runtime_images/<engine>/).
DEFAULT_EXPECTED_DEPENDENCIES: dict[str, dict[str, str]] = {
    "vllm": {"cudaRuntime": "13.0", "torch": "2.13.0", "vllm": "0.32.0"},
    "nemo-asr": {"cudaRuntime": "12.8", "torch": "2.9.1", "nemo_toolkit": "3.0.0"},
    "pyannote": {"cudaRuntime": "12.8", "torch": "2.9.1", "pyannote.audio": "4.0.7"},
}


#: what a model server's pod requests when its spec sets no cpu or memory: it is scheduled where
#: they are free and is not the first evicted (Burstable, not BestEffort); no limit is set
DEFAULT_REQUESTS: dict[str, dict[str, str]] = {
    "vllm": {"cpu": "2", "memory": "16Gi"},
    "nemo-asr": {"cpu": "1", "memory": "6Gi"},
    "pyannote": {"cpu": "1", "memory": "3Gi"},
}


class OperatorConfig(BaseModel):
    """Settings that apply to every ModelDeployment the operator manages."""

    model_config = ConfigDict(frozen=True)

    images: dict[str, str] = Field(
        default_factory=lambda: {
            engine: f"{DEFAULT_REGISTRY}/berth-{engine}:{DEFAULT_TAG}"
            for engine in ("vllm", "nemo-asr", "pyannote")
        }
    )
    downloader_image: str = f"{DEFAULT_REGISTRY}/berth-downloader:{DEFAULT_TAG}"
    expected_dependencies: dict[str, dict[str, str]] = Field(
        default_factory=lambda: dict(DEFAULT_EXPECTED_DEPENDENCIES)
    )
    default_requests: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_REQUESTS.items()}
    )
    cache_claim_name: str = "berth-model-cache"
    cache_size: str = "500Gi"
    cache_storage_class: str | None = None
    cache_access_modes: tuple[str, ...] = ("ReadWriteMany",)
    cache_mount_path: str = "/models"
    hf_endpoint: str | None = None
    download_stall_seconds: int = 300
    service_port: int = 8000
    cluster_domain: str = "cluster.local"
    resync_seconds: float = 300.0
    #: models that move to a new default engine image at once (controller/pacing.py); 0: all
    image_rollouts: int = 1
    #: the Secret, in model_keys_namespace, the gateway reads the models' own keys from (the
    #: operator copies each spec.auth key there); none: not copied
    model_keys_secret: str | None = None
    model_keys_namespace: str = "default"
    #: a NetworkPolicy for each model's server pods and download pods
    network_policies: bool = False
    #: who may call model servers (NetworkPolicyPeer objects: the gateway, a metrics scraper)
    model_callers: tuple[dict[str, Any], ...] = ()
    #: the API server's addresses as pods reach it (CIDRs); empty: found from the cluster
    api_server_cidrs: tuple[str, ...] = ()
    #: vLLM's compile caches kept on the cache volume (a writable subdirectory of it in vLLM
    #: pods), reused by the next identical start
    vllm_compile_cache: bool = False
    #: a DaemonSet per engine image in use keeps it on the nodes that could run its models
    image_prefetch: bool = False
    #: the nodes a GPU model's image is kept on, besides its own node selection (the label
    #: NVIDIA's GPU feature discovery sets): pods that request GPUs go only to GPU nodes
    prefetch_gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {GPU_PRESENT_LABEL: "true"}
    )
    #: reconciles at once: a first pass waits on several API round trips in turn
    workers: int = 128
    #: the Lease, in lease_namespace, the replicas elect the one that reconciles on; none: this
    #: process reconciles alone
    leader_lease: str | None = None
    lease_namespace: str = "default"
    #: seconds the leader's Lease lasts without renewal: how soon a standby takes over
    lease_seconds: int = 10

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        """Reads BERTH_* variables; BERTH_IMAGES, BERTH_EXPECTED_DEPENDENCIES and
        BERTH_DEFAULT_REQUESTS are JSON (the engines they name replace the defaults' ones)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, variable, parse in (
            ("images", "BERTH_IMAGES", json.loads),
            ("expected_dependencies", "BERTH_EXPECTED_DEPENDENCIES", json.loads),
            ("default_requests", "BERTH_DEFAULT_REQUESTS", json.loads),
            ("downloader_image", "BERTH_DOWNLOADER_IMAGE", str),
            ("cache_claim_name", "BERTH_CACHE_CLAIM_NAME", str),
            ("cache_size", "BERTH_CACHE_SIZE", str),
            ("cache_storage_class", "BERTH_CACHE_STORAGE_CLASS", str),
            ("cache_access_modes", "BERTH_CACHE_ACCESS_MODES", lambda v: tuple(v.split(","))),
            ("hf_endpoint", "HF_ENDPOINT", str),
            ("download_stall_seconds", "BERTH_DOWNLOAD_STALL_SECONDS", int),
            ("cluster_domain", "BERTH_CLUSTER_DOMAIN", str),
            ("resync_seconds", "BERTH_RESYNC_SECONDS", float),
            ("image_rollouts", "BERTH_IMAGE_ROLLOUTS", int),
            ("workers", "BERTH_WORKERS", int),
            ("leader_lease", "BERTH_LEADER_LEASE", str),
            ("lease_namespace", "POD_NAMESPACE", str),
            ("lease_seconds", "BERTH_LEASE_SECONDS", int),
            ("model_keys_secret", "BERTH_MODEL_KEYS_SECRET", str),
            ("model_keys_namespace", "BERTH_MODEL_KEYS_NAMESPACE", str),
            ("network_policies", "BERTH_NETWORK_POLICIES", lambda v: v == "true"),
            ("model_callers", "BERTH_MODEL_CALLERS", lambda v: tuple(json.loads(v))),
            ("api_server_cidrs", "BERTH_API_SERVER_CIDRS", lambda v: tuple(v.split(","))),
            ("vllm_compile_cache", "BERTH_VLLM_COMPILE_CACHE", lambda v: v == "true"),
            ("image_prefetch", "BERTH_IMAGE_PREFETCH", lambda v: v == "true"),
            ("prefetch_gpu_node_selector", "BERTH_PREFETCH_GPU_NODE_SELECTOR", json.loads),
        ):
            if env.get(variable):
                values[field] = parse(env[variable])
        for merged in ("images", "default_requests"):
            if merged in values:
                values[merged] = {**getattr(cls(), merged), **values[merged]}
        return cls(**values)


def library_env(config: OperatorConfig) -> list[dict[str, str]]:
    """What Hugging Face's library needs in every pod: the cache, no telemetry, a writable home."""
    return [
        {"name": "HF_HUB_CACHE", "value": config.cache_mount_path},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]
