"""Runs the operator: `python -m berth_operator [--namespace NS ...]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

import kopf
from berth_gateway.table import SERVICE_NAME_LABEL
from lightkube.resources.discovery_v1 import EndpointSlice
from prometheus_client import start_http_server

from berth_operator.config import OperatorConfig
from berth_operator.dashboard.server import Dashboard
from berth_operator.dashboard.traffic import Panel, TrafficScraper
from berth_operator.kube import Kube
from berth_operator.operator import Operator, build_registry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="berth-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable); default: all namespaces",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("BERTH_METRICS_PORT", 9090))
    )
    parser.add_argument(
        "--health-port", type=int, default=int(os.environ.get("BERTH_HEALTH_PORT", 8080))
    )
    parser.add_argument("--bind", default=os.environ.get("BERTH_BIND", "0.0.0.0"))
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=int(os.environ.get("BERTH_DASHBOARD_PORT", 8081)),
        help="port of the read-only dashboard; 0 turns it off (token: BERTH_DASHBOARD_TOKEN)",
    )
    parser.add_argument(
        "--gateway-service",
        default=os.environ.get("BERTH_GATEWAY_SERVICE") or None,
        help="the gateway's Service, as NAMESPACE/NAME: the dashboard shows each model's "
        "requests from the metrics of its ready pods (port named metrics)",
    )
    parser.add_argument("--log-level", default=os.environ.get("BERTH_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def gateway_traffic(
    kube: Kube, service: str | None
) -> Callable[[Callable[[Panel], None]], TrafficScraper] | None:
    """The dashboard's scraper of the gateway Service's pods, when one is named."""
    if not service:
        return None
    namespace, sep, name = service.partition("/")
    if not (sep and namespace and name):
        raise SystemExit(f"--gateway-service must be NAMESPACE/NAME, not {service!r}")

    async def slices() -> list[dict[str, Any]]:
        return await kube.list(EndpointSlice, namespace, {SERVICE_NAME_LABEL: name}, attempts=1)

    return lambda publish: TrafficScraper(slices, publish)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpx2", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    operator = Operator(OperatorConfig.from_env())
    if args.dashboard_port:
        token = os.environ.get("BERTH_DASHBOARD_TOKEN") or None
        operator.dashboard = Dashboard(
            operator.model_deployments,
            token,
            operator.store.objects,
            traffic=gateway_traffic(operator.kube, args.gateway_service),
        )
    start_http_server(args.metrics_port, addr=args.bind, registry=operator.metrics.registry)
    registry = build_registry(operator, args.namespace, (args.bind, args.dashboard_port))
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            # one replica reconciles: Berth's own election on a Lease (BERTH_LEADER_LEASE)
            standalone=True,
            liveness_endpoint=f"http://{args.bind}:{args.health_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()
