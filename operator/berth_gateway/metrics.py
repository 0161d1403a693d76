"""Prometheus metrics of the gateway, per model: requests by code, latency, time to first byte,
requests in flight, upstream errors, scale-ups from zero and the wait they cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class ModelMetrics:
    """One model's metric children, looked up once: `labels()` costs more than the update."""

    name: str
    latency: Any
    first_byte: Any
    in_flight: Any
    requests: Counter
    upstream_errors: Counter
    _by_code: dict[int, Any] = field(default_factory=dict)
    _by_kind: dict[str, Any] = field(default_factory=dict)

    def answered(self, code: int) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self.requests.labels(self.name, str(code))
        child.inc()

    def upstream_error(self, kind: str) -> None:
        child = self._by_kind.get(kind)
        if child is None:
            child = self._by_kind[kind] = self.upstream_errors.labels(self.name, kind)
        child.inc()


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own. Keys never appear in labels."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "berth_gateway_requests",
            "Requests answered, by model and status code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "berth_gateway_request_duration_seconds",
            "Time from the request to the end of the answer.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_byte = Histogram(
            "berth_gateway_time_to_first_byte_seconds",
            "Time from the request to the upstream's status line.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "berth_gateway_in_flight_requests",
            "Requests being answered, by model.",
            ["model"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "berth_gateway_upstream_errors",
            "Upstream failures, by model and kind (connect, timeout, broken, refused).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.scale_ups_from_zero = Counter(
            "berth_gateway_scale_ups_from_zero",
            "Scale-ups of a model from zero replicas this gateway replica wrote, by model.",
            ["model"],
            registry=self.registry,
        )
        self.scale_from_zero_wait = Histogram(
            "berth_gateway_scale_from_zero_wait_seconds",
            "Time a request was held while its model came up from zero replicas, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.buffered_body_bytes = Gauge(
            "berth_gateway_buffered_body_bytes",
            "Bytes of request bodies held in memory (reserved when a body's head is read).",
            registry=self.registry,
        )
        self.refused = Counter(
            "berth_gateway_refused_requests",
            "Requests answered at once because a limit was reached, by limit.",
            ["limit"],
            registry=self.registry,
        )
        self._models: dict[str, ModelMetrics] = {}

    def model(self, name: str) -> ModelMetrics:
        """The metric children of model `name` ("": requests that named no known model)."""
        found = self._models.get(name)
        if found is None:
            found = self._models[name] = ModelMetrics(
                name,
                self.latency.labels(name),
                self.first_byte.labels(name),
                self.in_flight.labels(name),
                self.requests,
                self.upstream_errors,
            )
        return found
