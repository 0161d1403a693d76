"""Prometheus metrics of the operator: reconciles, errors, durations, writes, resources by phase."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OperatorMetrics:
    """The operator's metrics, in a registry of their own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "berth_reconciles", "Reconcile passes, by result.", ["result"], registry=self.registry
        )
        self.reconcile_seconds = Histogram(
            "berth_reconcile_duration_seconds",
            "Time of one reconcile pass.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.api_writes = Counter(
            "berth_api_writes", "Write requests sent to the API server.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "berth_workqueue_depth", "Resources waiting to be reconciled.", registry=self.registry
        )
        self.by_phase = Gauge(
            "berth_modeldeployments",
            "ModelDeployments by phase.",
            ["phase"],
            registry=self.registry,
        )
