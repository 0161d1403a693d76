"""The model server's Deployment and Service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth_operator.api.metadata import REVISION_ANNOTATION
from berth_operator.api.podenv import API_KEYS_VARIABLE, ServerEnv
from berth_operator.config import OperatorConfig, library_env
from berth_operator.controller.cache import cache_claim_name
from berth_operator.controller.engines import ENGINES, engine_settings
from berth_operator.controller.naming import runtime_account_name, server_labels, server_selector
from berth_operator.controller.quantities import byte_quantity, canonical_quantity
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.security import (
    SIGNALS_REACH_THE_ENTRY_POINT,
    restricted_container_security,
    restricted_pod_security,
)

SERVER_CONTAINER = "server"
PORT_NAME = "http"
#: a stopping model server drains, then finishes its requests (ServerEnv), with a margin
GRACE_SECONDS = int(
    ServerEnv.model_fields["drain_seconds"].default
    + ServerEnv.model_fields["shutdown_seconds"].default
    + 5
)
GPU_TOLERATION_KEY = "nvidia.com/gpu"
#: vLLM's compile caches: a directory of the cache volume, beside the models, and where vLLM
#: pods mount it writable
COMPILE_CACHE_SUBPATH = "berth-compile-cache"
COMPILE_CACHE_MOUNT = "/var/cache/berth-compile"


@dataclass(frozen=True)
class ServedModel:
    """Which download the Deployment serves: the requested one, or the previous until it is ready."""

    revision: str
    resolved_revision: str | None
    model_bytes: int | None


def endpoint(md: ModelDeployment, config: OperatorConfig) -> str:
    """The in-cluster URL of the model server."""
    host = f"{md.name}.{md.namespace}.svc.{config.cluster_domain}"
    return f"http://{host}:{config.service_port}"


def _env(md: ModelDeployment, config: OperatorConfig, served: ServedModel) -> list[dict[str, Any]]:
    spec = md.spec
    settings = ServerEnv(
        repo=spec.model.repo,
        revision=served.resolved_revision or served.revision,
        cache_dir=config.cache_mount_path,
        engine=spec.engine,
        settings=engine_settings(spec, md.name),
        model_deployment=md.name,
        port=config.service_port,
    )
    env = [*settings.rendered(), *ServerEnv.field_references(), *library_env(config)]
    env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    env += [{"name": k, "value": v} for k, v in sorted(ENGINES[spec.engine].env.items())]
    if spec.auth and (ref := spec.auth.api_key_secret_ref):
        secret = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        env.append({"name": API_KEYS_VARIABLE, "valueFrom": secret})
        if spec.engine == "vllm":
            env.append({"name": "VLLM_API_KEY", "valueFrom": secret})
    if compile_cache(md, config):
        variable = ServerEnv.model_fields["compile_cache_dir"].alias
        env.append({"name": variable, "value": COMPILE_CACHE_MOUNT})
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env or []]
    return env


def compile_cache(md: ModelDeployment, config: OperatorConfig) -> bool:
    """Does the model's server keep vLLM's compile caches on the cache volume?"""
    return md.spec.engine == "vllm" and config.vllm_compile_cache


def _tmp_size(md: ModelDeployment, served: ServedModel) -> str:
    """The size of the server's /tmp, which it also requests as ephemeral storage."""
    return byte_quantity(ENGINES[md.spec.engine].tmp_bytes(served.model_bytes))


def _resources(md: ModelDeployment, config: OperatorConfig, served: ServedModel) -> dict[str, Any]:
    """GPU, cpu and memory from the spec (request and limit), else the engine's default
    request (no limit); ephemeral storage for the engine's /tmp; every quantity in the API
    server's canonical form."""
    res = md.spec.resources
    limits: dict[str, str] = {}
    if res.gpus:
        limits[res.gpu_resource_name] = str(res.gpus)
    defaults = config.default_requests.get(md.spec.engine, {})
    requests: dict[str, str] = {}
    for key, value in (("cpu", res.cpu), ("memory", res.memory)):
        if value is not None:
            limits[key] = requests[key] = canonical_quantity(value)
        elif key in defaults:
            requests[key] = canonical_quantity(defaults[key])
    requests["ephemeral-storage"] = _tmp_size(md, served)
    return {"limits": limits, "requests": requests}


def _volumes(
    md: ModelDeployment, config: OperatorConfig, served: ServedModel
) -> tuple[list[dict], list[dict]]:
    """Volumes and mounts: the cache read-only, a size-limited /tmp (a start killed midway
    leaves its files there for the next), /dev/shm for multi-GPU vLLM; with vLLM's compile
    cache, its subdirectory of the cache volume writable (the weights stay read-only)."""
    tmp_limit = _tmp_size(md, served)
    writable = compile_cache(md, config)
    claim = {"claimName": cache_claim_name(md, config), "readOnly": not writable}
    volumes: list[dict[str, Any]] = [
        {"name": "cache", "persistentVolumeClaim": claim},
        {"name": "tmp", "emptyDir": {"sizeLimit": tmp_limit}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "cache", "mountPath": config.cache_mount_path, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if writable:
        mounts.append(
            {"name": "cache", "mountPath": COMPILE_CACHE_MOUNT, "subPath": COMPILE_CACHE_SUBPATH}
        )
    if md.spec.engine == "vllm" and md.spec.resources.gpus > 1:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def tolerations(md: ModelDeployment) -> list[dict[str, Any]]:
    """The spec's tolerations, and the GPU nodes' taint for a model with GPUs."""
    sched = md.spec.scheduling
    found = [
        t.model_dump(by_alias=True, exclude_none=True) for t in (sched and sched.tolerations) or []
    ]
    if md.spec.resources.gpus:
        found.append({"key": GPU_TOLERATION_KEY, "operator": "Exists", "effect": "NoSchedule"})
    return found


def _scheduling(md: ModelDeployment) -> dict[str, Any]:
    sched = md.spec.scheduling
    out: dict[str, Any] = {"tolerations": tolerations(md)}
    if sched:
        for key, value in (
            ("nodeSelector", sched.node_selector),
            ("affinity", sched.affinity),
            ("priorityClassName", sched.priority_class_name),
            ("runtimeClassName", sched.runtime_class_name),
        ):
            if value:
                out[key] = value
    return out


def strategy(md: ModelDeployment, in_place: bool) -> dict[str, Any]:
    """The spec's rollout; in place (no surge) while a surge pod cannot be placed."""
    rollout = md.spec.rollout
    surge, unavailable = rollout.max_surge, rollout.max_unavailable
    if in_place:
        surge, unavailable = 0, max(1, unavailable)
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }


def render_disruption_budget(md: ModelDeployment) -> dict[str, Any]:
    """A node drain evicts one of the model's pods at a time: with two replicas or more, the
    model keeps serving (a single replica may still be evicted)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": md.name,
            "namespace": md.namespace,
            "labels": server_labels(md.name, md.spec.engine),
            "ownerReferences": [md.owner_reference()],
        },
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": server_selector(md.name)}},
    }


def deployment_image(md: ModelDeployment, config: OperatorConfig, kept_image: str | None) -> str:
    """The image the model's pods run: `kept_image` while an engine image upgrade has not reached
    the model yet, else its own or its engine's."""
    return kept_image or md.spec.image or config.images[md.spec.engine]


def render_deployment(
    md: ModelDeployment,
    config: OperatorConfig,
    served: ServedModel,
    in_place: bool = False,
    kept_image: str | None = None,
) -> dict[str, Any]:
    """The Deployment running the engine's server on the cached weights, offline; on
    `kept_image` while an engine image upgrade has not reached this model yet."""
    labels = server_labels(md.name, md.spec.engine)
    volumes, mounts = _volumes(md, config, served)
    container = {
        "name": SERVER_CONTAINER,
        "image": deployment_image(md, config, kept_image),
        "ports": [{"name": PORT_NAME, "containerPort": config.service_port, "protocol": "TCP"}],
        "env": _env(md, config, served),
        "resources": _resources(md, config, served),
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
        **ENGINES[md.spec.engine].probes(PORT_NAME, served.model_bytes),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": md.name,
            "namespace": md.namespace,
            "labels": labels,
            "ownerReferences": [md.owner_reference()],
        },
        "spec": {
            "replicas": md.spec.replicas,
            "selector": {"matchLabels": server_selector(md.name)},
            "strategy": strategy(md, in_place),
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {REVISION_ANNOTATION: served.revision},
                },
                "spec": {
                    "serviceAccountName": runtime_account_name(md.name),
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    **SIGNALS_REACH_THE_ENTRY_POINT,
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "containers": [container],
                    "volumes": volumes,
                    **_scheduling(md),
                },
            },
        },
    }


def render_service(md: ModelDeployment, config: OperatorConfig) -> dict[str, Any]:
    """A ClusterIP Service in front of the ready replicas."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": md.name,
            "namespace": md.namespace,
            "labels": server_labels(md.name, md.spec.engine),
            "ownerReferences": [md.owner_reference()],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": server_selector(md.name),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": config.service_port,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
