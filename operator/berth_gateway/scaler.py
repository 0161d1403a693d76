"""Writes ModelDeployments' replicas through the scale subresource: from zero when a request
comes (any replica), and every other change when this replica holds the autoscaler Lease."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from berth_operator.kube import ModelDeploymentResource
from berth_operator.leases import LeaderElection
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from berth_gateway.autoscaler import History, Key, ModelLoad, decide, merge, replicas_for
from berth_gateway.leases import LoadReports
from berth_gateway.load import Load
from berth_gateway.metrics import GatewayMetrics
from berth_gateway.table import Model, RoutingTable

logger = logging.getLogger(__name__)

IDLE = ModelLoad(0, 0.0)
#: writes the API server throttled (429) are tried this many times in all
THROTTLED_ATTEMPTS = 5


def throttled_wait(error: ApiError, attempt: int) -> float:
    """The API server's Retry-After when it gave one, else an exponential backoff."""
    details = error.status.details
    after = getattr(details, "retryAfterSeconds", None) if details else None
    return float(after) if after else min(4.0, 0.25 * 2**attempt)


class Scaler:
    """Sets replicas with the resourceVersion it decided on: a write that crossed another one
    fails, and the next look decides again."""

    def __init__(
        self,
        client: AsyncClient,
        table: RoutingTable,
        load: Load,
        reports: LoadReports,
        election: LeaderElection,
        metrics: GatewayMetrics,
        interval: float,
    ) -> None:
        self.client, self.table, self.load = client, table, load
        self.reports, self.election = reports, election
        self.metrics, self.interval = metrics, interval
        self._histories: dict[Key, History] = {}
        self._from_zero_locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: the resourceVersion each model was last scaled from zero at
        self._scaled_from_zero: dict[Key, str] = {}

    async def scale(self, model: Model, replicas: int) -> bool:
        """Sets the model's replicas; False when the resource changed since the table saw it."""
        patch = {
            "metadata": {"resourceVersion": model.resource_version},
            "spec": {"replicas": replicas},
        }
        for attempt in range(THROTTLED_ATTEMPTS):
            try:
                await self.client.patch(
                    ModelDeploymentResource.Scale,
                    model.name,
                    patch,
                    namespace=model.namespace,
                    patch_type=PatchType.MERGE,
                )
                break
            except ApiError as error:
                if error.status.code == 409:
                    return False
                if error.status.code != 429 or attempt == THROTTLED_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(throttled_wait(error, attempt))
        logger.info(
            "scaled %s/%s from %d to %d replicas",
            model.namespace,
            model.name,
            model.replicas,
            replicas,
        )
        if model.replicas == 0 and replicas > 0:
            self.metrics.scale_ups_from_zero.labels(model.served_name).inc()
        return True

    async def scale_from_zero(self, model: Model) -> bool:
        """Scales a model at zero to what this replica's requests for it need (at least one).
        One write per model at a time, and one per version of the resource: the requests that
        arrive together wait on the first one's write instead of each writing."""
        assert model.autoscaling is not None
        async with self._from_zero_locks[model.key]:
            if self._scaled_from_zero.get(model.key) == model.resource_version:
                return True
            need = max(1, replicas_for(self.load.in_flight(model.key), model.autoscaling))
            scaled = await self.scale(model, need)
            if scaled:
                self._scaled_from_zero[model.key] = model.resource_version
            return scaled

    async def run(self) -> None:
        """Looks every interval while this replica holds the Lease; forgets its history when not."""
        while True:
            await asyncio.sleep(self.interval)
            if not self.election.leading():
                self._histories.clear()
                continue
            try:
                await self.look()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("autoscaler: %s", error)

    async def look(self) -> None:
        """One decision per autoscaled model, from the load of every replica."""
        horizon = self.horizon()
        load = merge([self.load.snapshot(horizon), *await self.reports.others()])
        now = time.time()
        models = self.table.autoscaled()
        for model in models:
            assert model.autoscaling is not None
            history = self._histories.setdefault(model.key, History(now))
            target = decide(
                model.autoscaling, model.replicas, load.get(model.key, IDLE), history, now
            )
            if target != model.replicas and await self.scale(model, target):
                history.observe(now, target)
        for key in set(self._histories) - {m.key for m in models}:
            del self._histories[key]

    def horizon(self) -> float:
        """How long a model's last activity matters: the longest scale-down delay, and a bit."""
        delays = [
            m.autoscaling.scale_down_delay_seconds for m in self.table.autoscaled() if m.autoscaling
        ]
        return max(delays, default=0) + 10 * self.interval
