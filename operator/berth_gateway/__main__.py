"""Runs the gateway: `python -m berth_gateway [--namespace NS ...] [--keys-secret NAME]`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from berth_operator.api.metadata import AUTOSCALER_LEASE
from berth_operator.leases import LeaderElection
from lightkube import AsyncClient
from lightkube.models.meta_v1 import OwnerReference
from prometheus_client import start_http_server

from berth_gateway.app import Gateway
from berth_gateway.auth import KeyRing, parse_keys
from berth_gateway.balancer import Balancer
from berth_gateway.config import GatewayConfig, parse_args
from berth_gateway.hold import Hold
from berth_gateway.leases import FIELD_MANAGER, LoadReports
from berth_gateway.load import Load
from berth_gateway.metrics import GatewayMetrics
from berth_gateway.proxy import Proxy
from berth_gateway.scaler import Scaler
from berth_gateway.table import RoutingTable
from berth_gateway.upstream_keys import UpstreamKeys
from berth_gateway.watch import routing_watches, secret_watch


def autoscaling(
    client: AsyncClient, config: GatewayConfig, table: RoutingTable, metrics: GatewayMetrics
) -> tuple[Load, Scaler, LeaderElection, LoadReports]:
    """This replica's load, its Leases, and the scaler they drive."""
    load = Load()
    owner = (
        OwnerReference(apiVersion="v1", kind="Pod", name=config.identity, uid=config.pod_uid)
        if config.pod_uid
        else None
    )
    reports = LoadReports(
        client, config.lease_namespace, config.identity, config.lease_seconds, owner
    )
    election = LeaderElection(
        client,
        config.lease_namespace,
        AUTOSCALER_LEASE,
        config.identity,
        config.lease_seconds,
        FIELD_MANAGER,
        "scales the models",
    )
    scaler = Scaler(client, table, load, reports, election, metrics, config.autoscale_interval)
    return load, scaler, election, reports


async def serve(config: GatewayConfig) -> None:
    """Watches the cluster and answers requests until SIGTERM or SIGINT."""
    client = AsyncClient()
    table = RoutingTable()
    metrics = GatewayMetrics()
    keys = KeyRing(required=config.keys_secret is not None)
    watches = routing_watches(client, table, config.namespaces)
    upstream_keys = UpstreamKeys(
        config.model_keys_secret, config.model_keys_namespace, config.retry_after_seconds
    )
    if config.keys_secret:
        watches.append(
            secret_watch(
                client,
                config.keys_namespace,
                config.keys_secret,
                lambda data: keys.replace(parse_keys(data)),
            )
        )
    if config.model_keys_secret:
        watches.append(
            secret_watch(
                client, config.model_keys_namespace, config.model_keys_secret, upstream_keys.replace
            )
        )
    proxy = Proxy(config, table, Balancer(config.eject_seconds, config.affinity_load_factor))
    load, scaler, election, reports = autoscaling(client, config, table, metrics)
    gateway = Gateway(
        config,
        table,
        keys,
        upstream_keys,
        proxy,
        metrics,
        synced=lambda: all(w.synced.is_set() for w in watches),
        load=load,
        hold=Hold(table, scaler, metrics, config.hold_timeout, config.retry_after_seconds),
    )
    tasks = [asyncio.create_task(w.run()) for w in watches]
    tasks += [
        asyncio.create_task(election.run()),
        asyncio.create_task(scaler.run()),
        asyncio.create_task(
            reports.run(
                lambda: load.snapshot(scaler.horizon()), load.woken, config.autoscale_interval
            )
        ),
    ]
    start_http_server(config.metrics_port, addr=config.bind, registry=metrics.registry)
    # a client that goes away cancels its handler, which closes the upstream request
    runner = web.AppRunner(
        gateway.app(),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=config.shutdown_seconds,
    )
    await runner.setup()
    await web.TCPSite(runner, config.bind, config.port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger(__name__).info("gateway listening on %s:%d", config.bind, config.port)
    await stop.wait()
    await drain(gateway, runner, config)
    await proxy.close()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await election.release()
    await reports.withdraw()
    await client.close()


async def drain(gateway: Gateway, runner: web.AppRunner, config: GatewayConfig) -> None:
    """Not ready first, still serving while endpoints and load balancers catch up; then the
    listener closes and requests in flight get `shutdown_seconds` to finish."""
    gateway.draining = True
    logging.getLogger(__name__).info(
        "stopping: not ready; the listener closes in %g s", config.drain_seconds
    )
    await asyncio.sleep(config.drain_seconds)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
