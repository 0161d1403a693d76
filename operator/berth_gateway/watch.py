"""Keeps the routing table and the client keys current: list, then watch from the list's
version; on any error, list again (a missed delete cannot linger)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from berth_operator.api.metadata import COMPONENT_LABEL, MANAGED_BY, SERVER_COMPONENT
from berth_operator.kube import ModelDeploymentResource
from lightkube import AsyncClient
from lightkube.core.generic_client import ALL_NS
from lightkube.resources.core_v1 import Secret
from lightkube.resources.discovery_v1 import EndpointSlice

from berth_gateway.table import RoutingTable

logger = logging.getLogger(__name__)

Body = Mapping[str, Any]


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class Watch:
    """One kind in one namespace (or all): `reset` after each list, `update` and `delete` after
    each event; `synced` once the first list is in."""

    def __init__(
        self,
        client: AsyncClient,
        resource: Any,
        namespace: str | None,
        reset: Callable[[Iterable[Body], str | None], None],
        update: Callable[[Body], None],
        delete: Callable[[str, str], None],
        labels: dict[str, str] | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.reset, self.update, self.delete = reset, update, delete
        self.labels, self.fields = labels, fields
        self.synced = asyncio.Event()

    async def run(self) -> None:
        namespace = self.namespace or ALL_NS
        while True:
            try:
                listing = self.client.list(
                    self.resource, namespace=namespace, labels=self.labels, fields=self.fields
                )
                self.reset([_plain(o) async for o in listing], self.namespace)
                self.synced.set()
                async for kind, obj in self.client.watch(
                    self.resource,
                    namespace=namespace,
                    labels=self.labels,
                    fields=self.fields,
                    resource_version=listing.resourceVersion,
                ):
                    body = _plain(obj)
                    if kind == "DELETED":
                        meta = body["metadata"]
                        self.delete(meta.get("namespace", ""), meta["name"])
                    else:
                        self.update(body)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "watching %s in %s: %s; listing again", self.resource.__name__, namespace, error
                )
                await asyncio.sleep(1.0)


def routing_watches(
    client: AsyncClient, table: RoutingTable, namespaces: tuple[str, ...]
) -> list[Watch]:
    """ModelDeployments and the EndpointSlices of their Services, per watched namespace."""
    watches = []
    server_slices = {**MANAGED_BY, COMPONENT_LABEL: SERVER_COMPONENT}
    for namespace in namespaces or (None,):
        watches.append(
            Watch(
                client,
                ModelDeploymentResource,
                namespace,
                table.reset_models,
                table.set_model,
                table.remove_model,
            )
        )
        watches.append(
            Watch(
                client,
                EndpointSlice,
                namespace,
                table.reset_slices,
                table.set_slice,
                table.remove_slice,
                labels=server_slices,
            )
        )
    return watches


def secret_watch(
    client: AsyncClient, namespace: str, name: str, take: Callable[[Body | None], None]
) -> Watch:
    """One Secret, read by name (the only Secrets the gateway may read): `take` gets its data at
    each change, None once it is gone; a rotation applies at once, without a restart."""

    def reset(bodies: Iterable[Body], _: str | None) -> None:
        found = list(bodies)
        take(found[0].get("data") if found else None)
        if not found:
            logger.warning("the gateway's Secret %s/%s does not exist", namespace, name)

    return Watch(
        client,
        Secret,
        namespace,
        reset,
        lambda body: take(body.get("data")),
        lambda *_: take(None),
        fields={"metadata.name": name},
    )
