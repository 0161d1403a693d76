"""Leader election on a coordination.k8s.io Lease, as controllers elect their leader: the
operator's replicas (one reconciles) and the gateway's (one scales the models).

Freshness is judged as client-go judges it: by when this process saw the Lease change, never by
comparing another machine's clock with its own."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from berth_operator.api.metadata import MANAGED_BY

logger = logging.getLogger(__name__)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Freshness:
    """When this process last saw each Lease change (its resourceVersion), on its own clock."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}

    def age(self, name: str, version: str) -> float:
        """Seconds since the Lease `name` last changed, as far as this process saw."""
        now = time.monotonic()
        seen = self._seen.get(name)
        if seen is None or seen[0] != version:
            self._seen[name] = (version, now)
            return 0.0
        return now - seen[1]


class LeaderElection:
    """Holds the Lease `name` while this replica renews it; another takes it once it has not
    changed for its duration."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        name: str,
        identity: str,
        duration: int,
        field_manager: str,
        role: str,
    ) -> None:
        """`role` says, in log lines, what the leader does ("scales the models")."""
        self.client, self.namespace, self.name = client, namespace, name
        self.identity, self.duration = identity, duration
        self.field_manager, self.role = field_manager, role
        self._until = 0.0
        self._freshness = Freshness()

    def leading(self) -> bool:
        return time.monotonic() < self._until

    async def run(self) -> None:
        """Tries to take or renew the Lease three times per duration, until cancelled."""
        while True:
            try:
                await self.attempt()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("Lease %s/%s: %s", self.namespace, self.name, error)
            await asyncio.sleep(self.duration / 3)

    async def attempt(self) -> None:
        started = time.monotonic()
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            await self._create()
            self._until = started + self.duration
            return
        spec = lease.spec or LeaseSpec()
        age = self._freshness.age(self.name, lease.metadata.resourceVersion or "")
        duration = spec.leaseDurationSeconds or self.duration
        if spec.holderIdentity not in (None, "", self.identity) and age < duration:
            self._until = 0.0
            return
        now = utcnow()
        if spec.holderIdentity != self.identity:
            spec.acquireTime = now
            spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
            logger.info("%s now %s", self.identity, self.role)
        spec.holderIdentity, spec.renewTime = self.identity, now
        spec.leaseDurationSeconds = self.duration
        lease.spec = spec
        try:
            # the resourceVersion read above makes this fail if another replica wrote first
            await self.client.replace(lease, field_manager=self.field_manager)
        except ApiError as error:
            if error.status.code != 409:
                raise
            self._until = 0.0
            return
        self._until = started + self.duration

    async def _create(self) -> None:
        now = utcnow()
        lease = Lease(
            metadata=ObjectMeta(name=self.name, namespace=self.namespace, labels=dict(MANAGED_BY)),
            spec=LeaseSpec(
                holderIdentity=self.identity,
                acquireTime=now,
                renewTime=now,
                leaseDurationSeconds=self.duration,
                leaseTransitions=0,
            ),
        )
        await self.client.create(lease, field_manager=self.field_manager)
        logger.info("%s now %s", self.identity, self.role)

    async def release(self) -> None:
        """On shutdown: hands the Lease over at once rather than after its duration."""
        if not self.leading():
            return
        self._until = 0.0
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                await self.client.replace(lease, field_manager=self.field_manager)
        except ApiError as error:
            logger.warning("releasing the Lease %s/%s: %s", self.namespace, self.name, error)
