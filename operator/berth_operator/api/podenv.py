"""The environment the operator gives the pods it renders, and the one reader the runtime uses.

Each variable has one owner: a field here, with its name (the alias), its type and its source.
- Rendered by the operator, by value: no default, so the runtime trusts what it is given.
- From the pod itself (a field reference) or from a Secret: the operator writes a `valueFrom`.
- Tuning knobs the operator leaves alone: a default here, and tests may set them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from berth_operator.api.metadata import JOB_NAME_LABEL
from berth_operator.api.modeldeployment import AsrSettings, DiarizationSettings, VllmSettings


def _json_text(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


JsonList = Annotated[list[str], BeforeValidator(_json_text)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_text)]


def from_pod(field_path: str) -> dict[str, str]:
    """Field metadata: the value is the pod's own `field_path` (a downward API field reference)."""
    return {"fieldRef": field_path}


class PodEnv(BaseModel):
    """Settings read from environment variables named by the fields' aliases."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Reads the process environment (or `environ`); a missing or bad variable is named."""
        env = os.environ if environ is None else environ
        aliases = {field.alias for field in cls.model_fields.values()}
        try:
            return cls.model_validate({k: v for k, v in env.items() if k in aliases and v != ""})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise SystemExit(
                f"the pod's environment is not what Berth renders: {problems}"
            ) from None

    @classmethod
    def rendered_names(cls) -> set[str]:
        """Variables the operator must render by value (the fields without a default)."""
        return {f.alias for f in cls.model_fields.values() if f.is_required() and f.alias}

    def rendered(self) -> list[dict[str, str]]:
        """The operator's `env` entries for the fields it renders by value."""
        names = self.rendered_names()
        return [
            {"name": field.alias, "value": _encode(getattr(self, name))}
            for name, field in type(self).model_fields.items()
            if field.alias in names
        ]

    @classmethod
    def field_references(cls) -> list[dict[str, Any]]:
        """The `env` entries whose value the pod takes from its own metadata."""
        return [
            {"name": field.alias, "valueFrom": {"fieldRef": {"fieldPath": extra["fieldRef"]}}}
            for field in cls.model_fields.values()
            if isinstance(extra := field.json_schema_extra, dict) and "fieldRef" in extra
        ]

    def values(self) -> dict[str, str]:
        """Every set field as an environment (for running the runtime outside a pod)."""
        return {
            field.alias: _encode(value)
            for name, field in type(self).model_fields.items()
            if field.alias and (value := getattr(self, name)) is not None
        }


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


class ModelPodEnv(PodEnv):
    """What the download Job and the model server share: the model, the cache, the pod."""

    repo: str = Field(alias="BERTH_MODEL_REPO")
    revision: str = Field(alias="BERTH_MODEL_REVISION")
    cache_dir: Path = Field(alias="MODEL_CACHE_DIR")
    pod_name: str | None = Field(
        default=None, alias="POD_NAME", json_schema_extra=from_pod("metadata.name")
    )
    namespace: str | None = Field(
        default=None, alias="POD_NAMESPACE", json_schema_extra=from_pod("metadata.namespace")
    )
    report_seconds: float = Field(default=5.0, alias="BERTH_REPORT_SECONDS")
    termination_log: Path = Field(
        default=Path("/dev/termination-log"), alias="BERTH_TERMINATION_LOG"
    )


class DownloadEnv(ModelPodEnv):
    """The download Job's settings."""

    allow_patterns: JsonList = Field(alias="BERTH_ALLOW_PATTERNS")
    ignore_patterns: JsonList = Field(alias="BERTH_IGNORE_PATTERNS")
    force: bool = Field(alias="BERTH_FORCE", description="Remove the repository first.")
    stall_seconds: float = Field(alias="BERTH_DOWNLOAD_STALL_SECONDS")
    job_name: str | None = Field(
        default=None,
        alias="BERTH_JOB_NAME",
        json_schema_extra=from_pod(f"metadata.labels['{JOB_NAME_LABEL}']"),
    )
    #: from the Secret in spec.model.tokenSecretRef; never logged
    token: str | None = Field(default=None, alias="HF_TOKEN", repr=False)
    final_report_seconds: float = Field(default=60.0, alias="BERTH_FINAL_REPORT_SECONDS")
    workers: int = Field(default=8, alias="BERTH_DOWNLOAD_WORKERS")


class ServerEnv(ModelPodEnv):
    """The model server's settings."""

    engine: str = Field(alias="BERTH_ENGINE", description="Built-in engine or module:Class.")
    settings: JsonObject = Field(alias="BERTH_SETTINGS", description="The engine's settings.")
    model_deployment: str = Field(alias="BERTH_MODELDEPLOYMENT")
    port: int = Field(alias="BERTH_PORT")
    host: str = Field(default="0.0.0.0", alias="BERTH_HOST")
    #: from the Secret in spec.auth.apiKeySecretRef: keys separated by commas or new lines
    api_keys: str | None = Field(default=None, alias="BERTH_API_KEYS", repr=False)
    max_body_bytes: int = Field(default=100 * 2**20, alias="BERTH_MAX_BODY_BYTES")
    max_requests: int = Field(default=16, ge=1, alias="BERTH_MAX_REQUESTS")
    max_decodes: int = Field(default=2, ge=1, alias="BERTH_MAX_DECODES")
    #: on SIGTERM: not ready, still serving, while the pod leaves its Service's endpoints
    drain_seconds: float = Field(default=5.0, ge=0, alias="BERTH_DRAIN_SECONDS")
    #: then: the most seconds requests in flight get to finish (the pod's grace period is both
    #: plus a margin)
    shutdown_seconds: float = Field(default=120.0, ge=0, alias="BERTH_SHUTDOWN_SECONDS")
    log_level: str = Field(default="INFO", alias="BERTH_LOG_LEVEL")
    vllm_command: str = Field(default="vllm", alias="BERTH_VLLM_COMMAND")
    compile_cache_dir: Path | None = Field(
        default=None,
        alias="BERTH_COMPILE_CACHE_DIR",
        description="Where vLLM's compile caches are kept, one directory per start key.",
    )
    health_poll_seconds: float = Field(default=1.0, alias="BERTH_HEALTH_POLL_SECONDS")

    @property
    def key_list(self) -> tuple[bytes, ...]:
        """The API keys; empty means no access control."""
        raw = (self.api_keys or "").replace(",", "\n")
        return tuple(k.strip().encode() for k in raw.splitlines() if k.strip())


# ---- BERTH_SETTINGS: the spec's engine settings with every default filled in -------------


class EngineSettings(BaseModel):
    """Settings every engine gets; unknown keys are ignored (engines may read tuning keys)."""

    model_config = ConfigDict(extra="ignore")

    gpus: int = Field(description="GPUs per replica.")
    served_model_name: str = Field(description="The name clients send as `model`.")


class VllmEngineSettings(VllmSettings, EngineSettings):
    """vllm: the spec's settings, the served name resolved, tensor parallel = GPUs."""

    tensor_parallel_size: int


class AsrEngineSettings(AsrSettings, EngineSettings):
    """nemo-asr: the spec's settings."""


class DiarizationEngineSettings(DiarizationSettings, EngineSettings):
    """pyannote: the spec's settings."""


ENGINE_SETTINGS: dict[str, type[EngineSettings]] = {
    "vllm": VllmEngineSettings,
    "nemo-asr": AsrEngineSettings,
    "pyannote": DiarizationEngineSettings,
}


#: variables that carry Secret values: the operator writes them from secretKeyRefs only
HF_TOKEN_VARIABLE = DownloadEnv.model_fields["token"].alias
API_KEYS_VARIABLE = ServerEnv.model_fields["api_keys"].alias
