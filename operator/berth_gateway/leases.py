"""Each gateway replica's load Lease (coordination.k8s.io) in the gateway's namespace; the
replica that scales is elected on another (berth_operator.leases)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from berth_operator.api.metadata import (
    COMPONENT_LABEL,
    GATEWAY_LOAD_ANNOTATION,
    GATEWAY_LOAD_COMPONENT,
    MANAGED_BY,
)
from berth_operator.leases import Freshness, utcnow
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.coordination_v1 import Lease

from berth_gateway.autoscaler import Key, ModelLoad

logger = logging.getLogger(__name__)

FIELD_MANAGER = "berth-gateway"
LOAD_LABELS = {**MANAGED_BY, COMPONENT_LABEL: GATEWAY_LOAD_COMPONENT}


def _encode(load: dict[Key, ModelLoad]) -> str:
    return json.dumps(
        {
            f"{ns}/{name}": [entry.in_flight, round(entry.last_active, 3)]
            for (ns, name), entry in load.items()
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def decode(text: str | None) -> dict[Key, ModelLoad]:
    """A load annotation; entries that do not parse are skipped."""
    found: dict[Key, ModelLoad] = {}
    try:
        entries = json.loads(text or "{}")
    except ValueError:
        return found
    if not isinstance(entries, dict):
        return found
    for key, value in entries.items():
        namespace, _, name = str(key).partition("/")
        if name and isinstance(value, list) and len(value) == 2:
            try:
                found[(namespace, name)] = ModelLoad(int(value[0]), float(value[1]))
            except (TypeError, ValueError):
                continue
    return found


class LoadReports:
    """This replica's load, published on a Lease of its own; everyone's, read back."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        identity: str,
        duration: int,
        owner: OwnerReference | None = None,
    ) -> None:
        self.client, self.namespace, self.identity = client, namespace, identity
        self.duration, self.owner = duration, owner
        safe = re.sub(r"[^a-z0-9.-]+", "-", identity.lower())
        self.name = f"berth-gateway-load-{safe}"[:253].rstrip("-.")
        self._freshness = Freshness()
        self._published: tuple[str, float] = ("", 0.0)

    async def publish(self, load: dict[Key, ModelLoad]) -> None:
        """Applies this replica's Lease when its load changed, or a third of its duration on."""
        text = _encode(load)
        if text == self._published[0] and time.monotonic() - self._published[1] < self.duration / 3:
            return
        lease = Lease(
            metadata=ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels=LOAD_LABELS,
                annotations={GATEWAY_LOAD_ANNOTATION: text},
                ownerReferences=[self.owner] if self.owner else None,
            ),
            spec=LeaseSpec(
                holderIdentity=self.identity,
                renewTime=utcnow(),
                leaseDurationSeconds=self.duration,
            ),
        )
        await self.client.apply(lease, field_manager=FIELD_MANAGER, force=True)
        self._published = (text, time.monotonic())

    async def run(
        self, snapshot: Callable[[], dict[Key, ModelLoad]], woken: asyncio.Event, interval: float
    ) -> None:
        """Publishes every `interval`, and at once when a model goes from idle to busy."""
        while True:
            woken.clear()
            try:
                await self.publish(snapshot())
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("publishing this replica's load: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), interval)

    async def others(self) -> list[dict[Key, ModelLoad]]:
        """The load of every other replica whose Lease changed within its duration."""
        found = []
        async for lease in self.client.list(Lease, namespace=self.namespace, labels=LOAD_LABELS):
            meta: Any = lease.metadata
            if meta.name == self.name:
                continue
            duration = (lease.spec.leaseDurationSeconds if lease.spec else None) or self.duration
            if self._freshness.age(meta.name, meta.resourceVersion or "") >= duration:
                continue
            found.append(decode((meta.annotations or {}).get(GATEWAY_LOAD_ANNOTATION)))
        return found

    async def withdraw(self) -> None:
        """On shutdown: no load of this replica outlives it."""
        try:
            await self.client.delete(Lease, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                logger.warning("deleting this replica's load Lease: %s", error)
