"""Typed models of ModelDeployment's spec and status: the single source of the CRD's schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

Engine = Literal["vllm", "nemo-asr", "pyannote"]
Phase = Literal["Pending", "Downloading", "Starting", "Ready", "Degraded", "Failed", "Stopped"]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HF_REPO = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
LANGUAGE = r"^[a-z]{2}(-[A-Z]{2})?$"

Quantity = Annotated[
    str | int,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY}),
]


def rule(expression: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """A CEL validation rule (x-kubernetes-validations entry)."""
    entry = {"rule": expression, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the resource's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Name of the Secret.")
    key: str = Field(
        pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key inside the Secret."
    )


class ModelSource(ApiModel):
    """Which Hugging Face repository to serve, and which of its files to download."""

    repo: str = Field(
        pattern=HF_REPO,
        max_length=200,
        description="Hugging Face repository, as org/name (for example Qwen/Qwen3-VL-30B-A3B-Instruct).",
    )
    revision: str = Field(
        default="main",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length=200,
        description="Branch, tag or commit to download; changing it downloads before switching.",
    )
    allow_patterns: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=64, description="Only files matching these globs are downloaded."
    )
    ignore_patterns: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=64, description="Files matching these globs are skipped."
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding a Hugging Face token, for gated or private repositories. "
        "It reaches the download Job only.",
    )


class Resources(ApiModel):
    """GPUs and other resources of each replica."""

    gpus: int = Field(
        default=1,
        ge=0,
        le=64,
        description="GPUs per replica; for vllm also the tensor parallel size. 0 runs on CPU "
        "(nemo-asr and pyannote only).",
    )
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$",
        max_length=120,
        description="Extended resource to request, e.g. nvidia.com/gpu or a MIG profile such as "
        "nvidia.com/mig-1g.10gb.",
    )
    cpu: Quantity | None = Field(
        default=None,
        description="CPU request and limit per replica. Unset: the engine's default request "
        "(the chart's engines.defaultRequests), and no limit.",
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory request and limit per replica. Unset: the engine's default request "
        "(the chart's engines.defaultRequests), and no limit.",
    )


class Toleration(ApiModel):
    """A Pod toleration."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Scheduling(ApiModel):
    """Where replicas may run."""

    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    affinity: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="A core/v1 Affinity, passed to the Pod as is.",
    )
    priority_class_name: str | None = Field(default=None, pattern=DNS_SUBDOMAIN, max_length=253)
    runtime_class_name: str | None = Field(default=None, pattern=DNS_SUBDOMAIN, max_length=253)


AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]


class Cache(ApiModel):
    """The shared model cache volume (a PVC holding the Hugging Face cache layout)."""

    claim_name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="PVC to use; created if missing, never deleted by Berth. "
        "Default: the operator's shared cache claim.",
    )
    storage_class_name: str | None = Field(
        default=None, max_length=253, description="Storage class when Berth creates the claim."
    )
    size: Quantity | None = Field(default=None, description="Size when Berth creates the claim.")
    access_modes: list[AccessMode] | None = Field(
        default=None, min_length=1, description="Access modes when Berth creates the claim."
    )


#: the ranks vLLM accepts as max_lora_rank
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
#: names clients send as `model`: no spaces or control characters, no leading punctuation
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"


class LoraAdapter(ApiModel):
    """A LoRA adapter (a Hugging Face repository in the PEFT layout) served by the base model's
    pods under a name of its own."""

    name: str = Field(
        pattern=MODEL_NAME,
        max_length=200,
        description="The name clients send as `model` to reach the base model with this adapter.",
    )
    repo: str = Field(
        pattern=HF_REPO,
        max_length=200,
        description="Hugging Face repository of the adapter (adapter_config.json and "
        "adapter_model.safetensors), as org/name.",
    )
    revision: str = Field(
        default="main",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length=200,
        description="Branch, tag or commit of the adapter to download.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding a Hugging Face token for a gated or private adapter. "
        "Default: spec.model.tokenSecretRef. It reaches the adapter's download Job only.",
    )


class LoraLimits(ApiModel):
    """What vLLM reserves for adapters when it starts. Changing a limit restarts the pods;
    adding or removing an adapter within them does not."""

    max_loras: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Adapters that can run in one batch (GPU slots; vLLM's --max-loras).",
    )
    max_lora_rank: int = Field(
        default=16,
        json_schema_extra={"enum": list(LORA_RANKS)},
        description="The highest adapter rank accepted (vLLM's --max-lora-rank: "
        + ", ".join(map(str, LORA_RANKS))
        + "); an adapter of a higher rank is not loaded, and its status says so.",
    )
    max_cpu_loras: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Adapters kept in CPU memory, ready to swap in (vLLM's --max-cpu-loras). "
        "Default: maxLoras.",
    )

    @model_validator(mode="after")
    def _limits_agree(self) -> LoraLimits:
        if self.max_lora_rank not in LORA_RANKS:
            raise ValueError(
                f"maxLoraRank {self.max_lora_rank} is not one vLLM accepts: "
                f"{', '.join(map(str, LORA_RANKS))}"
            )
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError(
                f"maxCpuLoras ({self.max_cpu_loras}) must be at least maxLoras ({self.max_loras})"
            )
        return self


class VllmSettings(ApiModel):
    """Settings of the vllm engine (vllm serve)."""

    served_model_name: str | None = Field(
        default=None,
        max_length=200,
        description="Model name in the OpenAI API. Default: the resource's name.",
    )
    max_model_len: int = Field(default=8192, ge=1, le=10_000_000, description="Context length.")
    gpu_memory_utilization: float = Field(
        default=0.90,
        gt=0,
        le=1,
        description="Fraction of each GPU's memory vLLM may use.",
    )
    limit_mm_per_prompt: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="Items per prompt by modality, e.g. {image: 4, video: 0}."
    )
    trust_remote_code: bool = Field(default=False, description="Run the repository's own code.")
    extra_args: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        default=None,
        max_length=64,
        description="More vllm serve flags. Flags Berth sets itself are refused.",
    )
    adapters: list[LoraAdapter] | None = Field(
        default=None,
        max_length=64,
        description="LoRA adapters served next to the base model, each under its own name. "
        "Adding or removing one changes what running pods serve without restarting them "
        "(the first adapter on a deployment without spec.vllm.lora restarts it once, to "
        "start vLLM with LoRA enabled).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    lora: LoraLimits | None = Field(
        default=None,
        description="LoRA limits. Setting it (even to {}) starts vLLM with LoRA enabled, "
        "so that the first adapter needs no restart either.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "!has(self.adapters) || !has(self.servedModelName) || "
                    "self.adapters.all(a, a.name != self.servedModelName)",
                    "an adapter's name must differ from vllm.servedModelName: clients tell "
                    "the base model and its adapters apart by name",
                    ".adapters",
                ),
                rule(
                    "!has(self.lora) || !has(self.lora.maxCpuLoras) || "
                    "self.lora.maxCpuLoras >= (has(self.lora.maxLoras) ? self.lora.maxLoras : 4)",
                    "lora.maxCpuLoras must be at least lora.maxLoras",
                    ".lora.maxCpuLoras",
                ),
            ]
        }
    )

    @model_validator(mode="after")
    def _adapter_names(self) -> VllmSettings:
        names = [a.name for a in self.adapters or []]
        if duplicated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"adapters: name {duplicated[0]} is given more than once")
        if self.served_model_name and self.served_model_name in names:
            raise ValueError(
                f"adapters: name {self.served_model_name} is vllm.servedModelName: clients "
                "tell the base model and its adapters apart by name"
            )
        return self

    @property
    def lora_enabled(self) -> bool:
        """Whether vLLM starts with LoRA: limits set, or an adapter to serve."""
        return self.lora is not None or bool(self.adapters)


#: Canary-1B-v2 translates to and from this language only (X->en, en->X); X->X transcribes
TRANSLATION_HUB = "en"


def translation_pair_supported(source: str, target: str) -> bool:
    """Whether Canary can go from `source` to `target`: the same language, or one side English."""
    return source == target or TRANSLATION_HUB in (source, target)


def supported_pairs_sentence() -> str:
    """The translation pairs Canary supports, in words, for messages."""
    hub = TRANSLATION_HUB
    return f"Canary translates only X->{hub} and {hub}->X (or transcribes X->X)"


class AsrSettings(ApiModel):
    """Settings of the nemo-asr engine."""

    source_lang: str = Field(
        default="en", pattern=LANGUAGE, description="Default language of the audio."
    )
    target_lang: str = Field(
        default="en",
        pattern=LANGUAGE,
        description="Default output language: sourceLang transcribes; a translation needs "
        f"'{TRANSLATION_HUB}' on one side.",
    )
    pnc: bool = Field(default=True, description="Punctuation and capitalisation.")
    timestamps: bool = Field(default=False, description="Word and segment timestamps by default.")
    diarization_model: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="The pyannote ModelDeployment in this namespace that says who speaks: "
        "requests through the gateway with response_format=diarized_json (or diarize=true) "
        "get each segment's speaker. Changing it restarts no pod.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "!has(self.sourceLang) || !has(self.targetLang)"
                    " || self.sourceLang == self.targetLang"
                    f" || self.sourceLang == '{TRANSLATION_HUB}'"
                    f" || self.targetLang == '{TRANSLATION_HUB}'",
                    f"{supported_pairs_sentence()}: set sourceLang or targetLang to "
                    f"'{TRANSLATION_HUB}', or both to the same language",
                    ".targetLang",
                ),
            ]
        }
    )


class DiarizationSettings(ApiModel):
    """Settings of the pyannote engine; requests may override them."""

    min_speakers: int | None = Field(default=None, ge=1, le=100)
    max_speakers: int | None = Field(default=None, ge=1, le=100)
    num_speakers: int | None = Field(default=None, ge=1, le=100)
    known_speaker_threshold: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="Least cosine similarity between a known speaker's reference clip and a "
        "diarized speaker for the speaker to get the name (default 0.5; doc/models.md).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "!has(self.numSpeakers) || (!has(self.minSpeakers) && !has(self.maxSpeakers))",
                    "numSpeakers fixes the count: leave minSpeakers and maxSpeakers unset",
                    ".numSpeakers",
                ),
                rule(
                    "!has(self.minSpeakers) || !has(self.maxSpeakers) || self.minSpeakers <= self.maxSpeakers",
                    "minSpeakers must not exceed maxSpeakers",
                    ".minSpeakers",
                ),
            ]
        }
    )


class Auth(ApiModel):
    """Access control of the inference endpoints."""

    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="When set, inference requests need Authorization: Bearer <key>. The key "
        "reaches pods as env from the Secret only.",
    )


class Autoscaling(ApiModel):
    """Replicas driven by the gateway from the requests in flight, down to zero when idle."""

    min_replicas: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Fewest replicas; 0 unloads the model when idle, and the first request "
        "through the gateway loads it again (held until the model is Ready).",
    )
    max_replicas: int = Field(default=1, ge=1, le=1000, description="Most replicas.")
    target_in_flight: int = Field(
        default=8,
        ge=1,
        le=100_000,
        description="Requests in flight per replica (across every gateway replica) the "
        "autoscaler aims for; more adds replicas.",
    )
    scale_down_delay_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="Seconds without the load that needs the current replicas (for zero: without "
        "any request) before the autoscaler removes replicas.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "self.minReplicas <= self.maxReplicas",
                    "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
                    ".minReplicas",
                ),
            ]
        }
    )

    @model_validator(mode="after")
    def _min_within_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.minReplicas ({self.min_replicas}) must not exceed "
                f"autoscaling.maxReplicas ({self.max_replicas})"
            )
        return self

    def bounded(self, replicas: int) -> int:
        """`replicas` within minReplicas..maxReplicas."""
        return max(self.min_replicas, min(self.max_replicas, replicas))


class Rollout(ApiModel):
    """How a change of the pod template (a new revision, image or setting) replaces the pods."""

    max_surge: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Pods started above spec.replicas during a rollout, each on free GPUs, so "
        "that none is stopped before its replacement is ready. When no node can place such a "
        "pod (no GPU free), the rollout goes on in place: one pod at a time is stopped and its "
        "replacement started on its GPUs; a model with a single replica is then down while its "
        "replacement loads.",
    )
    max_unavailable: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Pods a rollout may stop before their replacements are ready (capacity "
        "lost meanwhile; no GPU needed). With two or more replicas, 1 keeps the model serving.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "!has(self.maxSurge) || !has(self.maxUnavailable) || "
                    "self.maxSurge + self.maxUnavailable > 0",
                    "rollout.maxSurge and rollout.maxUnavailable cannot both be 0",
                    ".maxSurge",
                ),
            ]
        }
    )

    @model_validator(mode="after")
    def _moves(self) -> Rollout:
        if self.max_surge + self.max_unavailable == 0:
            raise ValueError("rollout.maxSurge and rollout.maxUnavailable cannot both be 0")
        return self


Balancing = Literal["LeastRequests", "PrefixAffinity"]


class GatewaySettings(ApiModel):
    """How Berth's gateway spreads this model's requests over its replicas."""

    balancing: Balancing = Field(
        default="LeastRequests",
        description="LeastRequests: the replica with the fewest requests in flight. "
        "PrefixAffinity (vllm only): requests whose prompts start alike go to the same replica, "
        "so that vLLM's prefix cache is hit (consistent hashing with bounded loads).",
    )
    prefix_chars: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="PrefixAffinity: how many bytes of the prompt's start (its JSON as sent: "
        "the chat messages, or the prompt) choose the replica.",
    )


class EnvVar(ApiModel):
    """An environment variable for the model server container (core/v1 EnvVar)."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253)
    value: str | None = None
    value_from: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )


#: `vllm serve` flags Berth sets itself, each with where its value comes from. extraArgs may not
#: set them; the runtime's serve_args emits only these (a unit test holds the two together).
MANAGED_VLLM_FLAGS: dict[str, str] = {
    "--model": "spec.model.repo",
    "--download-dir": "the cache volume",
    "--host": "the pod",
    "--port": "the pod",
    "--api-key": "spec.auth.apiKeySecretRef",
    "--served-model-name": "spec.vllm.servedModelName",
    "--tensor-parallel-size": "spec.resources.gpus",
    "--max-model-len": "spec.vllm.maxModelLen",
    "--gpu-memory-utilization": "spec.vllm.gpuMemoryUtilization",
    "--limit-mm-per-prompt": "spec.vllm.limitMmPerPrompt",
    "--trust-remote-code": "spec.vllm.trustRemoteCode",
    "--enable-lora": "spec.vllm.lora or spec.vllm.adapters",
    "--max-loras": "spec.vllm.lora.maxLoras",
    "--max-lora-rank": "spec.vllm.lora.maxLoraRank",
    "--max-cpu-loras": "spec.vllm.lora.maxCpuLoras",
    "--lora-modules": "spec.vllm.adapters",
}


def _managed_flags_rule() -> dict[str, str]:
    # argparse accepts abbreviations (--tensor-parallel 2), so a prefix of a managed flag is
    # refused as well as the flag itself.
    flags = ", ".join(f"'{f}'" for f in MANAGED_VLLM_FLAGS)
    name = "(a.contains('=') ? a.substring(0, a.indexOf('=')) : a)"
    fields = "; ".join(f"{flag}: {source}" for flag, source in MANAGED_VLLM_FLAGS.items())
    return rule(
        "!has(self.vllm) || !has(self.vllm.extraArgs) || !self.vllm.extraArgs.exists(a, "
        f"a.startsWith('--') && a.size() > 3 && [{flags}].exists(f, f.startsWith({name})))",
        "vllm.extraArgs must not set flags Berth manages, nor abbreviations of them; "
        f"set them through the spec instead ({fields})",
        ".vllm.extraArgs",
    )


class ModelDeploymentSpec(ApiModel):
    """What to serve, on what, and how."""

    engine: Engine = Field(description="Model server: vllm, nemo-asr or pyannote.")
    model: ModelSource
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Replicas; 0 unloads the model and frees its GPUs. With autoscaling, the "
        "gateway writes it (through the scale subresource): leave it out of Git.",
    )
    autoscaling: Autoscaling | None = Field(
        default=None,
        description="Scale on the gateway's requests in flight, to zero when idle "
        "(doc/gateway.md). Unset: spec.replicas alone decides.",
    )
    rollout: Rollout = Field(default_factory=Rollout, json_schema_extra={"default": {}})
    resources: Resources = Field(default_factory=Resources, json_schema_extra={"default": {}})
    scheduling: Scheduling | None = None
    cache: Cache | None = None
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Overrides the engine's default image.",
    )
    vllm: VllmSettings | None = None
    asr: AsrSettings | None = None
    diarization: DiarizationSettings | None = None
    auth: Auth | None = None
    gateway: GatewaySettings | None = None
    env: list[EnvVar] | None = Field(default=None, max_length=128)
    expected_dependencies: dict[str, str] | None = Field(
        default=None,
        description="Expected versions reported by the runtime, by dependency (cudaRuntime, "
        "torch, ...); a mismatch shows in status. Default: the image's own.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "self.engine != 'vllm' || self.resources.gpus >= 1",
                    "engine vllm needs at least 1 GPU (resources.gpus)",
                    ".resources.gpus",
                ),
                rule(
                    "self.engine != 'vllm' || self.resources.gpus in [1, 2, 4, 8, 16, 32, 64]",
                    "for engine vllm, resources.gpus is the tensor parallel size: use 1, 2, 4, 8, "
                    "16, 32 or 64 so that it divides the model's attention heads",
                    ".resources.gpus",
                ),
                rule(
                    "!has(self.vllm) || self.engine == 'vllm'",
                    "vllm settings need engine vllm",
                    ".vllm",
                ),
                rule(
                    "!has(self.gateway) || !has(self.gateway.balancing)"
                    " || self.gateway.balancing != 'PrefixAffinity' || self.engine == 'vllm'",
                    "gateway.balancing PrefixAffinity needs engine vllm (its prefix cache)",
                    ".gateway.balancing",
                ),
                rule(
                    "!has(self.asr) || self.engine == 'nemo-asr'",
                    "asr settings need engine nemo-asr",
                    ".asr",
                ),
                rule(
                    "!has(self.diarization) || self.engine == 'pyannote'",
                    "diarization settings need engine pyannote",
                    ".diarization",
                ),
                _managed_flags_rule(),
                rule(
                    "!has(self.autoscaling) || self.replicas <= self.autoscaling.maxReplicas",
                    "replicas must not exceed autoscaling.maxReplicas: the autoscaler owns "
                    "replicas; raise maxReplicas, or remove replicas from the manifest",
                    ".replicas",
                ),
                rule(
                    "!has(self.env) || !self.env.exists(e, e.name == 'HF_TOKEN' || "
                    "e.name == 'HUGGING_FACE_HUB_TOKEN' || e.name == 'VLLM_API_KEY' || "
                    "e.name == 'BERTH_API_KEYS')",
                    "env must not set HF_TOKEN, HUGGING_FACE_HUB_TOKEN, VLLM_API_KEY or "
                    "BERTH_API_KEYS: use model.tokenSecretRef and auth.apiKeySecretRef",
                    ".env",
                ),
            ]
        }
    )

    @model_validator(mode="after")
    def _replicas_within_autoscaling(self) -> ModelDeploymentSpec:
        if self.autoscaling and self.replicas > self.autoscaling.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must not exceed autoscaling.maxReplicas "
                f"({self.autoscaling.max_replicas}): the autoscaler owns replicas"
            )
        return self

    @property
    def adapters(self) -> list[LoraAdapter]:
        """The LoRA adapters of spec.vllm.adapters (none without vLLM settings)."""
        return list(self.vllm.adapters or []) if self.vllm else []


# ---- status ------------------------------------------------------------------------------


class StatusModel(ApiModel):
    """Status parts are read leniently: fields this version does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """A condition, as the Kubernetes API conventions define it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class DownloadReport(StatusModel):
    """What the downloader reports of its Job's progress (on the Job, as JSON in an annotation).

    The operator copies it into status.download of every resource that shares the Job.
    """

    resolved_revision: str | None = Field(
        default=None, description="Commit the revision resolved to."
    )
    bytes_done: int | None = None
    bytes_total: int | None = None
    files_done: int | None = None
    files_total: int | None = None
    percent: int | None = None
    progress: str | None = Field(default=None, description="Percent for kubectl get, as in 42%.")
    bytes_per_second: int | None = None
    started_at: str | None = None
    completed_at: str | None = None
    updated_at: str | None = None
    dependencies: list[str] | None = Field(
        default=None,
        description="Other repositories the model's pipeline config names, downloaded with it "
        "into the same cache (org/name@commit); the byte and file counts include them.",
    )


class DownloadStatus(DownloadReport):
    """Progress of the download of the model into the cache: the current Job and its report."""

    job: str | None = None
    revision: str | None = Field(default=None, description="Requested revision.")


class RuntimeErrorReport(StatusModel):
    """The last error the model server reported."""

    time: str | None = None
    reason: str | None = None
    message: str | None = None
    pod: str | None = None


class RuntimeStatus(StatusModel):
    """What the model server itself reports (written by the runtime, never by the operator)."""

    state: str | None = None
    pod: str | None = None
    updated_at: str | None = None
    #: while Loading, the step the engine is at, in its own words (e.g. "loading checkpoint
    #: shards 3/13"); the Loading condition quotes it
    progress: str | None = None
    details: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    dependencies: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    gpus: list[dict[str, Any]] | None = Field(
        default=None,
        json_schema_extra={
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    )
    last_error: RuntimeErrorReport | None = None


class AdapterFailure(StatusModel):
    """An adapter a model server pod could not load, and why."""

    name: str
    reason: str
    message: str | None = None


#: the reason of an adapter trained on another model than the one it is loaded on
BASE_MODEL_MISMATCH = "BaseModelMismatch"


class AdapterLoads(StatusModel):
    """What one model server pod serves of spec.vllm.adapters (written by that pod)."""

    loaded: list[str] | None = None
    #: wanted, but its files are not in the cache (yet)
    not_in_cache: list[str] | None = None
    failed: list[AdapterFailure] | None = None
    #: loaded (or to be), but trained on another base model than the one served
    mismatched: list[AdapterFailure] | None = None
    updated_at: str | None = None


class AdapterStatus(StatusModel):
    """One adapter of spec.vllm.adapters: its download and where it is loaded."""

    name: str
    repo: str | None = None
    revision: str | None = None
    state: Literal["Downloading", "Loading", "Loaded", "Failed"] | None = None
    reason: str | None = None
    message: str | None = None
    loaded: str | None = Field(
        default=None, description="Ready pods that serve it over ready pods, as in 2/2."
    )


#: the keys of status the model server writes (through its pod's service account); the operator
#: writes every other key, the download Job none (it annotates its own Job)
MODEL_SERVER_STATUS_KEYS = frozenset({"runtime", "adapterLoads"})


class StartupStep(StatusModel):
    """One step of a model server pod's start."""

    step: Literal["PodCreated", "Scheduled", "ImagePulled", "ContainerStarted", "ModelLoaded"]
    at: str
    seconds: float = Field(description="Seconds since the step before (or since `since`).")


class StartupStatus(StatusModel):
    """The last start of a model server pod, step by step: PodCreated (only for the resource's
    first start: the download and the workload's creation), Scheduled, ImagePulled (from the
    kubelet's events: 0 s when the image was on the node), ContainerStarted, ModelLoaded (the
    pod ready: the engine answered its readiness probe)."""

    pod: str
    node: str | None = None
    since: str = Field(description="Where the first step counts from.")
    steps: list[StartupStep]
    total_seconds: float


class ModelDeploymentStatus(StatusModel):
    """What Berth observed; conditions Ready, CacheReady and RuntimeReady, and a summary phase."""

    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = None
    ready_replicas: int | None = None
    ready: str | None = Field(default=None, description="Ready replicas over wanted, as in 1/1.")
    selector: str | None = Field(default=None, description="Label selector of the pods, for HPA.")
    endpoint: str | None = None
    gateway_model: str | None = Field(
        default=None,
        description="The name to send as `model` to Berth's gateway (and to the model server).",
    )
    download: DownloadStatus | None = None
    mismatches: list[str] | None = Field(
        default=None,
        description="Where the versions the model server reports (runtime.dependencies) differ "
        "from those expected of its image (spec.expectedDependencies over the operator's).",
    )
    pending_image: str | None = Field(
        default=None,
        description="A new default image of the engine that this model moves to once a slot is "
        "free: the operator moves a few models at a time (the chart's engines.imageRollouts); "
        "set spec.image to keep a model on an image of your choosing.",
    )
    runtime: RuntimeStatus | None = None
    adapters: list[AdapterStatus] | None = Field(
        default=None,
        description="Each LoRA adapter of spec.vllm.adapters: downloaded, loaded on how many "
        "pods, or why not.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    adapters_loaded: str | None = Field(
        default=None,
        description="Adapters loaded on every ready pod over adapters in the spec, as in 2/3.",
    )
    adapter_loads: dict[str, AdapterLoads] | None = Field(
        default=None,
        description="What each model server pod reports it serves of spec.vllm.adapters, by "
        "pod (written by the pods).",
    )
    startup: StartupStatus | None = Field(
        default=None,
        description="The timeline of the last model server pod that became ready (kubectl "
        "describe shows it).",
    )
