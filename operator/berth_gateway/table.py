"""The routing table: each ModelDeployment's served name, state and ready endpoints, kept from
the watches of ModelDeployments and of their Services' EndpointSlices."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth_operator.api.modeldeployment import (
    Autoscaling,
    Balancing,
    GatewaySettings,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    SecretKeyRef,
)
from berth_operator.controller.engines import ENGINES, served_model_name
from berth_operator.controller.names import claim_order
from berth_operator.controller.status import cannot_start
from berth_operator.controller.workload import PORT_NAME
from pydantic import ValidationError

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Key = tuple[str, str]


@dataclass(frozen=True)
class Endpoint:
    """One ready pod address of a model's Service."""

    address: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class Model:
    """What the gateway knows of one ModelDeployment."""

    namespace: str
    name: str
    served_name: str
    engine: str
    created: str
    phase: str | None
    ready: bool
    reason: str
    message: str
    auth: SecretKeyRef | None
    balancing: Balancing
    prefix_chars: int
    replicas: int = 1
    autoscaling: Autoscaling | None = None
    resource_version: str = ""
    #: the operator's status is about the current spec
    current: bool = True
    #: the operator has a pod of the model serving (phase Ready, or Degraded: some ready)
    loaded: bool = False
    #: why the model cannot come up without a change, as (reason, message); None if it can
    blocked: tuple[str, str] | None = None
    #: seconds its pods may take to start (the startup probe's budget for the model's size)
    startup_seconds: int = 0
    #: an ASR model's diarization partner: a ModelDeployment's name in the same namespace
    diarization_model: str | None = None
    #: names of its LoRA adapters (spec.vllm.adapters): requests that name one go to its pods
    adapters: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Model | None:
        """None when the spec is not one this version can read (the operator reports why)."""
        meta = body["metadata"]
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
            status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        except ValidationError:
            return None
        ready = next((c for c in status.conditions or [] if c.type == "Ready"), None)
        current = status.observed_generation == meta.get("generation")
        blocker = cannot_start(status.conditions or []) if current else None
        gateway = spec.gateway or GatewaySettings()
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            served_name=served_model_name(spec, meta["name"]),
            engine=spec.engine,
            created=meta.get("creationTimestamp") or "",
            phase=status.phase,
            ready=ready is not None and ready.status == "True",
            reason=ready.reason if ready else "NotReconciled",
            message=ready.message if ready else "the operator has not reported on it yet",
            auth=spec.auth.api_key_secret_ref if spec.auth else None,
            replicas=spec.replicas,
            autoscaling=spec.autoscaling,
            resource_version=meta.get("resourceVersion") or "",
            current=current,
            loaded=spec.replicas > 0 and status.phase in ("Ready", "Degraded"),
            blocked=(blocker.reason, blocker.message) if blocker else None,
            balancing=gateway.balancing,
            prefix_chars=gateway.prefix_chars,
            startup_seconds=ENGINES[spec.engine].startup_budget_seconds(
                status.download.bytes_total if status.download else None
            ),
            diarization_model=spec.asr.diarization_model if spec.asr else None,
            adapters=tuple(a.name for a in spec.adapters),
        )

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def scales_from_zero(self) -> bool:
        """A request brings it up from zero replicas (through the gateway's autoscaler)."""
        return self.autoscaling is not None and self.autoscaling.min_replicas == 0


def ready_endpoints(
    body: Mapping[str, Any], port_name: str = PORT_NAME
) -> tuple[str, tuple[Endpoint, ...]]:
    """(Service name, its ready endpoints) from an EndpointSlice, on the port named `port_name`
    (the model server's by default; the slice's only port when none has that name)."""
    service = (body.get("metadata", {}).get("labels") or {}).get(SERVICE_NAME_LABEL, "")
    ports = body.get("ports") or []
    port = next((p.get("port") for p in ports if p.get("name") == port_name), None)
    if port is None and len(ports) == 1:
        port = ports[0].get("port")
    if port is None:
        return service, ()
    found = []
    for endpoint in body.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        # an unset `ready` means ready (API conventions of EndpointSlice)
        if conditions.get("ready") is False or conditions.get("terminating"):
            continue
        found.extend(Endpoint(address, int(port)) for address in endpoint.get("addresses") or [])
    return service, tuple(found)


def _in_scope(key: Key, namespace: str | None) -> bool:
    return namespace is None or key[0] == namespace


class RoutingTable:
    """Models by served name (the oldest resource keeps a contested name) and their endpoints."""

    def __init__(self) -> None:
        self._models: dict[Key, Model] = {}
        self._slices: dict[Key, tuple[str, tuple[Endpoint, ...]]] = {}
        self._by_name: dict[str, Model] = {}
        self._endpoints: dict[Key, tuple[Endpoint, ...]] = {}
        self._changed = asyncio.Event()

    # ---- updates from the watches --------------------------------------------------------

    def set_model(self, body: Mapping[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        model = Model.from_body(body)
        if model is None:
            self._models.pop(key, None)
        else:
            self._models[key] = model
        self._index()

    def remove_model(self, namespace: str, name: str) -> None:
        self._models.pop((namespace, name), None)
        self._index()

    def reset_models(self, bodies: Iterable[Mapping[str, Any]], namespace: str | None) -> None:
        """After a (re)list: the listed objects replace every model in scope."""
        self._models = {k: m for k, m in self._models.items() if not _in_scope(k, namespace)}
        for body in bodies:
            if model := Model.from_body(body):
                self._models[model.key] = model
        self._index()

    def set_slice(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self._slices[(meta["namespace"], meta["name"])] = ready_endpoints(body)
        self._index()

    def remove_slice(self, namespace: str, name: str) -> None:
        self._slices.pop((namespace, name), None)
        self._index()

    def reset_slices(self, bodies: Iterable[Mapping[str, Any]], namespace: str | None) -> None:
        self._slices = {k: s for k, s in self._slices.items() if not _in_scope(k, namespace)}
        for body in bodies:
            meta = body["metadata"]
            self._slices[(meta["namespace"], meta["name"])] = ready_endpoints(body)
        self._index()

    def _index(self) -> None:
        by_name: dict[str, Model] = {}
        claimants = sorted(
            self._models.values(), key=lambda m: claim_order(m.created, m.namespace, m.name)
        )
        for model in claimants:
            for name in (model.served_name, *model.adapters):
                by_name.setdefault(name, model)
        endpoints: dict[Key, list[Endpoint]] = {}
        for (namespace, _), (service, found) in self._slices.items():
            endpoints.setdefault((namespace, service), []).extend(found)
        self._by_name = by_name
        self._changed.set()
        self._changed = asyncio.Event()
        self._endpoints = {k: tuple(dict.fromkeys(v)) for k, v in endpoints.items()}

    # ---- reads for requests ----------------------------------------------------------------

    def model(self, name: str) -> Model | None:
        """The model that serves `name`: its served name, or one of its adapters'."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Every name a request may send as `model` (adapters included)."""
        return sorted(self._by_name)

    def models(self) -> list[Model]:
        """The models that hold their served names (one each, adapters apart)."""
        return [m for n, m in sorted(self._by_name.items()) if m.served_name == n]

    def adapters(self) -> list[tuple[str, Model]]:
        """(adapter name, the model that serves it), for each adapter name held."""
        return [(n, m) for n, m in sorted(self._by_name.items()) if m.served_name != n]

    def of_engine(self, engine: str) -> list[Model]:
        return [m for m in self.models() if m.engine == engine]

    def by_key(self, key: Key) -> Model | None:
        """The model of one resource, whether or not it holds its served name."""
        return self._models.get(key)

    def autoscaled(self) -> list[Model]:
        """Every model with spec.autoscaling, holding its served name or not."""
        return [m for m in self._models.values() if m.autoscaling is not None]

    async def changed(self) -> None:
        """Returns at the table's next change."""
        await self._changed.wait()

    def endpoints(self, model: Model) -> tuple[Endpoint, ...]:
        """The ready endpoints of the model's Service (named after the resource)."""
        return self._endpoints.get(model.key, ())
