"""The dashboard's request figures: each model's requests in flight and requests per second,
summed over every ready gateway pod, read from each pod's Prometheus endpoint (the pods are
found in the EndpointSlices of the gateway's Service, on its port named `metrics`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from berth_gateway.table import ready_endpoints
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

IN_FLIGHT = "berth_gateway_in_flight_requests"
REQUESTS = "berth_gateway_requests_total"
METRICS_PORT_NAME = "metrics"

Panel = dict[str, dict[str, float]]


@dataclass(frozen=True)
class GatewayCounts:
    """One gateway pod's figures by model: requests in flight, requests answered so far."""

    in_flight: Mapping[str, float]
    answered: Mapping[str, float]


def parse_metrics(text: str) -> GatewayCounts:
    """The figures of one scrape; requests that named no known model (model "") are left out."""
    in_flight: dict[str, float] = {}
    answered: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            model = sample.labels.get("model")
            if not model:
                continue
            if sample.name == IN_FLIGHT:
                in_flight[model] = in_flight.get(model, 0.0) + sample.value
            elif sample.name == REQUESTS:
                answered[model] = answered.get(model, 0.0) + sample.value
    return GatewayCounts(in_flight, answered)


class Rates:
    """Turns successive scrapes of each gateway pod into one panel: per model, the requests in
    flight (summed) and the requests per second since the pod's previous scrape (summed; a pod
    seen for the first time counts from its next scrape, a restarted one from zero)."""

    def __init__(self) -> None:
        self._previous: dict[str, tuple[float, Mapping[str, float]]] = {}

    def panel(self, scrapes: Mapping[str, GatewayCounts], now: float) -> Panel:
        panel: Panel = {}

        def entry(model: str) -> dict[str, float]:
            return panel.setdefault(model, {"inFlight": 0.0, "perSecond": 0.0})

        for pod, counts in scrapes.items():
            for model, value in counts.in_flight.items():
                entry(model)["inFlight"] += value
            for model in counts.answered:
                entry(model)
            if pod not in self._previous:
                continue
            then, before = self._previous[pod]
            elapsed = now - then
            for model, total in counts.answered.items():
                done = total - before.get(model, 0.0)
                if done < 0:  # the pod restarted: its counter started again from zero
                    done = total
                if elapsed > 0:
                    entry(model)["perSecond"] += done / elapsed
        self._previous = {pod: (now, counts.answered) for pod, counts in scrapes.items()}
        return {
            model: {"inFlight": round(e["inFlight"]), "perSecond": round(e["perSecond"], 2)}
            for model, e in sorted(panel.items())
        }


def metrics_urls(slices: list[dict[str, Any]]) -> list[str]:
    """The /metrics URLs of the ready endpoints of the gateway Service's EndpointSlices."""
    urls = []
    for body in slices:
        _, endpoints = ready_endpoints(body, METRICS_PORT_NAME)
        urls.extend(f"{e.url}/metrics" for e in endpoints)
    return sorted(set(urls))


class TrafficScraper:
    """Every `interval` seconds: lists the gateway's EndpointSlices, scrapes each ready pod, and
    hands the panel to `publish`. A pod that does not answer is left out of that round."""

    def __init__(
        self,
        list_slices: Callable[[], Awaitable[list[dict[str, Any]]]],
        publish: Callable[[Panel], None],
        interval: float = 5.0,
    ) -> None:
        self.list_slices = list_slices
        self.publish = publish
        self.interval = interval
        self.rates = Rates()

    async def scrape(self, session: aiohttp.ClientSession, url: str) -> GatewayCounts | None:
        try:
            async with session.get(url) as response:
                response.raise_for_status()
                return parse_metrics(await response.text())
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            logger.info("gateway metrics at %s: %s", url, error)
            return None

    async def once(self, session: aiohttp.ClientSession) -> Panel:
        urls = metrics_urls(await self.list_slices())
        found = await asyncio.gather(*(self.scrape(session, url) for url in urls))
        scrapes = {url: counts for url, counts in zip(urls, found, strict=True) if counts}
        return self.rates.panel(scrapes, time.monotonic())

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=min(self.interval, 5.0))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    self.publish(await self.once(session))
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    logger.warning("the dashboard's request figures: %s", error)
                await asyncio.sleep(self.interval)
