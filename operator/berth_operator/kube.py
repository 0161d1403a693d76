"""The operator's writes to the API server: server-side apply, merge patches, create, delete."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lightkube import AsyncClient, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import DaemonSet, Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    Event,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import CascadeType, PatchType

from berth_operator.api.metadata import GROUP, KIND, PLURAL, VERSION

FIELD_MANAGER = "berth-operator"
RETRYABLE = {429, 500, 502, 503, 504}

logger = logging.getLogger(__name__)

ModelDeploymentResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)

RESOURCES: dict[tuple[str, str], Any] = {
    ("v1", "PersistentVolumeClaim"): PersistentVolumeClaim,
    ("v1", "Service"): Service,
    ("v1", "ServiceAccount"): ServiceAccount,
    ("v1", "Secret"): Secret,
    ("v1", "Event"): Event,
    ("v1", "Pod"): Pod,
    ("apps/v1", "Deployment"): Deployment,
    ("apps/v1", "DaemonSet"): DaemonSet,
    ("batch/v1", "Job"): Job,
    ("rbac.authorization.k8s.io/v1", "Role"): Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): NetworkPolicy,
    ("policy/v1", "PodDisruptionBudget"): PodDisruptionBudget,
    ("discovery.k8s.io/v1", "EndpointSlice"): EndpointSlice,
}


def resource_of(manifest: dict[str, Any]) -> Any:
    return RESOURCES[(manifest["apiVersion"], manifest["kind"])]


def namespace_terminating(error: ApiError) -> bool:
    """The API refused a write because the namespace is being deleted: nothing to retry."""
    return error.status.code == 403 and "being terminated" in (error.status.message or "")


class Kube:
    """A thin async client; every write goes through here, so writes are counted in one place."""

    def __init__(self, client: AsyncClient | None = None, on_write: Any = None) -> None:
        self._client = client
        self._on_write = on_write

    def _count_write(self) -> None:
        if self._on_write is not None:
            self._on_write()

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            # HTTP/2, as client-go: one connection carries every concurrent request.
            self._client = AsyncClient(field_manager=FIELD_MANAGER, http2=True)
        return self._client

    async def list(
        self, resource: Any, namespace: str, labels: dict[str, str] | None, attempts: int = 30
    ) -> list[dict[str, Any]]:
        """Every object of a kind, as plain dicts; retries while the API server is not ready."""
        for attempt in range(1, attempts + 1):
            try:
                return [
                    obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
                    async for obj in self.client.list(resource, namespace=namespace, labels=labels)
                ]
            except ApiError as error:
                if error.status.code not in RETRYABLE or attempt == attempts:
                    raise
                logger.info("listing %s: %s; retrying", resource.__name__, error.status.message)
                await asyncio.sleep(min(5.0, 0.2 * attempt))
        return []

    async def events_of(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """The core Events about one object (the kubelet's, for a pod)."""
        fields = {"involvedObject.kind": kind, "involvedObject.name": name}
        return [
            obj.to_dict()
            async for obj in self.client.list(Event, namespace=namespace, fields=fields)
        ]

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of a whole object, as the operator's field manager."""
        meta = manifest["metadata"]
        self._count_write()
        logger.info("apply %s %s/%s", manifest["kind"], meta.get("namespace"), meta["name"])
        result = await self.client.patch(
            resource_of(manifest),
            meta["name"],
            manifest,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            field_manager=FIELD_MANAGER,
            force=True,
        )
        return result.to_dict()

    async def merge_patch(
        self, kind: tuple[str, str], namespace: str, name: str, patch: dict
    ) -> dict[str, Any]:
        """A JSON merge patch (used where several writers share an object); returns the
        patched object."""
        self._count_write()
        logger.info("merge-patch %s %s/%s", kind[1], namespace, name)
        result = await self.client.patch(
            RESOURCES[kind], name, patch, namespace=namespace, patch_type=PatchType.MERGE
        )
        return result.to_dict() if hasattr(result, "to_dict") else dict(result)

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patches the keys the operator owns in a ModelDeployment's status; returns the
        patched object."""
        self._count_write()
        logger.debug("patch status %s/%s", namespace, name)
        result = await self.client.patch(
            ModelDeploymentResource.Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        return result.to_dict() if hasattr(result, "to_dict") else dict(result)

    async def create(self, manifest: dict[str, Any]) -> None:
        """Creates an object (an Event)."""
        self._count_write()
        await self.client.create(codecs.from_dict(manifest), field_manager=FIELD_MANAGER)

    async def get(self, kind: tuple[str, str], namespace: str, name: str) -> dict[str, Any] | None:
        """One object as a plain dict, or None when it does not exist."""
        try:
            obj = await self.client.get(RESOURCES[kind], name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return obj.to_dict()

    async def create_if_missing(self, manifest: dict[str, Any]) -> bool:
        """Creates the object unless one of that name exists; never changes an existing one."""
        res = resource_of(manifest)
        meta = manifest["metadata"]
        try:
            await self.client.get(res, meta["name"], namespace=meta.get("namespace"))
            return False
        except ApiError as error:
            if error.status.code != 404:
                raise
        self._count_write()
        try:
            await self.client.create(codecs.from_dict(manifest), field_manager=FIELD_MANAGER)
        except ApiError as error:
            if error.status.code != 409:
                raise
            return False
        return True

    async def delete(self, kind: tuple[str, str], namespace: str, name: str) -> None:
        """Deletes an object and, in the background, what it owns."""
        self._count_write()
        try:
            await self.client.delete(
                RESOURCES[kind], name, namespace=namespace, cascade=CascadeType.BACKGROUND
            )
        except ApiError as error:
            if error.status.code != 404:
                raise

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data (base64 values, never logged), or None when it does not exist."""
        try:
            secret = await self.client.get(Secret, name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return dict(secret.data or {})
