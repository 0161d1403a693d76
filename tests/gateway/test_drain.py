"""The gateway stops without failing a request: not ready first, serving while Services catch
up, then closing with its requests in flight finished; and a kept-alive upstream connection
found closed is tried again on a new one."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until

CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
JSON = {"Content-Type": "application/json"}


def chat_through(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any, *args: str
) -> tuple[Any, Any]:
    """A stand-in serving the model `chat`, and a gateway (started with `args`) that routes it."""
    upstream = stand_ins("a")
    kubectl.apply(
        model_deployment("chat", "vllm"), endpoint_slice("chat", upstream.address, upstream.port)
    )
    gateway = start_gateway(*args)
    gateway.wait_for_endpoints("chat", 1)
    return upstream, gateway


def test_a_kept_alive_connection_closed_as_it_is_reused_is_tried_again(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    upstream, gateway = chat_through(kubectl, start_gateway, stand_ins)
    assert http("POST", gateway.url + CHAT, BODY, JSON)[0] == 200  # opens a connection
    for _ in range(3):  # each finds the kept-alive connection closed, as a server may close it
        status, _, answer = http(
            "POST", gateway.url + CHAT, BODY, {**JSON, "X-Test-Close-Reused": "1"}
        )
        assert status == 200, answer
    stats = upstream.stats()
    assert stats["closed_reused"] == 3 and stats["served"] == 4


def test_a_stopping_gateway_answers_every_request_it_took(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    upstream, gateway = chat_through(
        kubectl, start_gateway, stand_ins, "--drain-seconds=2", "--shutdown-seconds=20"
    )
    slow: list[int] = []
    caller = threading.Thread(
        target=lambda: slow.append(
            http("POST", gateway.url + CHAT, BODY, {**JSON, "X-Test-Delay": "4"})[0]
        )
    )
    caller.start()
    wait_until(lambda: upstream.stats()["in_flight"] == 1, "the slow request upstream")
    gateway.process._signal_group(signal.SIGTERM)
    stopped = time.monotonic()
    # not ready at once, still serving while endpoints and load balancers catch up
    assert wait_until(lambda: http("GET", gateway.url + "/readyz")[0] == 503, "not ready")
    assert http("POST", gateway.url + CHAT, BODY, JSON)[0] == 200
    caller.join(timeout=30)
    assert slow == [200], "the request in flight finished after the listener closed"
    wait_until(lambda: not gateway.process.alive(), "the gateway gone", timeout=30)
    assert time.monotonic() - stopped >= 3.5
