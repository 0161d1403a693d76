"""The dashboard's request figures from the gateway's own metrics output."""

from __future__ import annotations

from berth_gateway.metrics import GatewayMetrics
from berth_operator.dashboard.traffic import Rates, metrics_urls, parse_metrics
from prometheus_client import generate_latest

from tests.gateway.parts import endpoint_slice


def exposition(in_flight: dict[str, int], answered: dict[str, dict[int, int]]) -> str:
    """What a gateway's /metrics says after these requests."""
    metrics = GatewayMetrics()
    for model, count in in_flight.items():
        metrics.model(model).in_flight.inc(count)
    for model, codes in answered.items():
        for code, count in codes.items():
            for _ in range(count):
                metrics.model(model).answered(code)
    return generate_latest(metrics.registry).decode()


def test_one_scrape_gives_in_flight_and_answered_per_model_whatever_the_code() -> None:
    counts = parse_metrics(exposition({"qwen": 3}, {"qwen": {200: 5, 503: 2}, "": {404: 9}}))
    assert counts.in_flight == {"qwen": 3.0}
    assert counts.answered == {"qwen": 7.0}


def test_rates_sum_the_gateway_pods_from_their_second_scrape() -> None:
    rates = Rates()
    first = {
        "a": parse_metrics(exposition({"qwen": 1}, {"qwen": {200: 10}})),
        "b": parse_metrics(exposition({"qwen": 2}, {"qwen": {200: 4}})),
    }
    assert rates.panel(first, now=100.0) == {"qwen": {"inFlight": 3, "perSecond": 0.0}}
    second = {
        "a": parse_metrics(exposition({}, {"qwen": {200: 30}, "canary": {200: 1}})),
        "b": parse_metrics(exposition({"qwen": 1}, {"qwen": {200: 14}})),
        # a new pod counts from its next scrape; a restarted one from zero
        "c": parse_metrics(exposition({"qwen": 4}, {"qwen": {200: 50}})),
    }
    assert rates.panel(second, now=110.0) == {
        "canary": {"inFlight": 0, "perSecond": 0.1},
        "qwen": {"inFlight": 5, "perSecond": 3.0},
    }
    restarted = {"a": parse_metrics(exposition({}, {"qwen": {200: 5}}))}
    assert rates.panel(restarted, now=120.0)["qwen"] == {"inFlight": 0, "perSecond": 0.5}


def test_the_metrics_urls_are_the_ready_pods_on_the_port_named_metrics() -> None:
    ready = endpoint_slice("berth-gateway", "10.0.0.1", 9091)
    ready["ports"] = [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9091}]
    gone = endpoint_slice("berth-gateway", "10.0.0.2", 9091, ready=False)
    assert metrics_urls([ready, gone]) == ["http://10.0.0.1:9091/metrics"]
