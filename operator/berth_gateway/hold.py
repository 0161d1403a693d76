"""Holds a request for an autoscaled model that is not up (at zero replicas, or coming up) until
Berth's Ready says a replica serves, scaling it from zero; answers at once when it cannot start."""

from __future__ import annotations

import asyncio
import contextlib
import time

from lightkube.core.exceptions import ApiError

from berth_gateway.errors import ModelNotFound, ModelNotReady
from berth_gateway.metrics import GatewayMetrics
from berth_gateway.scaler import Scaler
from berth_gateway.table import Model, RoutingTable

#: seconds between two looks while nothing changes (a scale write that failed is tried again)
RECHECK_SECONDS = 1.0


def cannot_start(model: Model, retry_after: int) -> ModelNotReady:
    """503 with the reason the operator gives for the model not coming up."""
    assert model.blocked is not None
    reason, message = model.blocked
    return ModelNotReady(
        f"model {model.served_name} ({model.namespace}/{model.name}) cannot start: "
        f"{reason}: {message}",
        reason,
        retry_after,
    )


class Hold:
    """Waits on the routing table, which the watches keep current."""

    def __init__(
        self,
        table: RoutingTable,
        scaler: Scaler,
        metrics: GatewayMetrics,
        timeout: float,
        retry_after: int,
    ) -> None:
        self.table, self.scaler, self.metrics = table, scaler, metrics
        self.timeout, self.retry_after = timeout, retry_after

    def timeout_for(self, model: Model) -> float:
        """The hold timeout, or the model's startup budget when that is longer: a request is
        not given up on while the model is still allowed to start."""
        return max(self.timeout, float(model.startup_seconds))

    def ready(self, model: Model) -> bool:
        """The request can go at once: the model does not scale, or it is up."""
        return model.autoscaling is None or self.up(model)

    def up(self, model: Model) -> bool:
        """A replica serves (Berth's Ready, not only a pod's readiness) and an endpoint is ready."""
        return model.replicas > 0 and model.loaded and bool(self.table.endpoints(model))

    async def until_up(self, model: Model) -> Model:
        """The model to forward to, as the table last saw it. A model without autoscaling, or up,
        goes at once; else the request waits for it, up to the hold timeout."""
        if self.ready(model):
            return model
        started = time.monotonic()
        timeout = self.timeout_for(model)
        from_zero = model.replicas == 0
        while True:
            if model.blocked:
                raise cannot_start(model, self.retry_after)
            if model.current and self.up(model):
                if from_zero:
                    waited = time.monotonic() - started
                    self.metrics.scale_from_zero_wait.labels(model.served_name).observe(waited)
                return model
            if model.replicas == 0:
                await self._scale_from_zero(model)
            remaining = started + timeout - time.monotonic()
            if remaining <= 0:
                raise ModelNotReady(
                    f"model {model.served_name} ({model.namespace}/{model.name}) did not become "
                    f"Ready within {timeout:g} s (gateway.holdTimeoutSeconds, or the model's "
                    f"startup budget); it is "
                    f"{model.reason}: {model.message}",
                    model.reason,
                    self.retry_after,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.table.changed(), min(remaining, RECHECK_SECONDS))
            found = self.table.by_key(model.key)
            if found is None:
                raise ModelNotFound(
                    f"model {model.served_name} ({model.namespace}/{model.name}) was deleted "
                    "while its request waited for it"
                )
            model = found

    async def _scale_from_zero(self, model: Model) -> None:
        try:
            await self.scaler.scale_from_zero(model)
        except ApiError as error:
            raise ModelNotReady(
                f"model {model.served_name} ({model.namespace}/{model.name}) is at zero replicas "
                f"and the gateway could not scale it: {error.status.message}",
                "ScaleUpFailed",
                self.retry_after,
            ) from None
