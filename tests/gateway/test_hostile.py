"""Hostile and careless clients: every odd body or header gets its 4xx, and no client can make
the gateway hold more than its limits (requests, requests per model, bytes of bodies)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until

CHAT = "/v1/chat/completions"
JSON = {"Content-Type": "application/json"}


def error_of(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    return answer[0], json.loads(answer[2])["error"]["code"]


def raw_exchange(port: int, head: bytes, body_parts: list[tuple[bytes, float]]) -> bytes:
    """Sends a request's head, then each body part after its pause; returns the raw answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head)
        try:
            for part, pause in body_parts:
                time.sleep(pause)
                conn.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed before the body was done
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b'"error"' in answer and answer.rstrip().endswith(b"}"):
                break
        return answer


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def chat_body(model: str = "chat", **extra: Any) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    ).encode()


@pytest.mark.usefixtures("operator")
def test_odd_bodies_and_headers_get_their_4xx(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    upstream = stand_ins("a")
    kubectl.apply(
        model_deployment("chat", "vllm"),
        endpoint_slice("chat", upstream.address, upstream.port),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
            "stringData": {"team": "good-key"},
        },
    )
    gateway = start_gateway(
        "--keys-secret=keys",
        f"--keys-namespace={kubectl.namespace}",
        "--max-json-body-bytes=65536",
        "--max-body-bytes=262144",
        "--body-idle-seconds=1",
    )
    gateway.wait_for_endpoints("chat", 1, key="good-key")
    url = gateway.url + CHAT
    auth = {**JSON, "Authorization": "Bearer good-key"}
    assert http("POST", url, chat_body(), auth)[0] == 200

    # nested deeper than the gateway reads: 400, never a crash
    deep = b'{"model": "chat", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    status, code = error_of(http("POST", url, deep, auth))
    assert (status, code) == (400, "BadRequest")

    # `model` that is not a string, a body that is not an object: 400
    assert error_of(http("POST", url, b'{"model": {"a": 1}}', auth)) == (400, "BadRequest")
    assert error_of(http("POST", url, b'["chat"]', auth)) == (400, "BadRequest")

    # JSON has its own, lower limit: 413 above it, though an upload of that size is accepted
    numbers = b'{"model": "chat", "input": [' + b"0.5," * 20_000 + b"0.5]}"
    assert error_of(http("POST", url, numbers, auth)) == (413, "PayloadTooLarge")

    # an Authorization header that is not UTF-8: 401
    head = (
        b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer \xff\xfe\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    ) % len(chat_body())
    assert status_of(raw_exchange(gateway.port, head, [(chat_body(), 0)])) == 401

    # a body that stops arriving: 408 after the idle time, not a request held forever
    body = chat_body()
    head = (
        b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer good-key\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    ) % len(body)
    raw = raw_exchange(gateway.port, head, [(body[:10], 0)])  # and the rest never comes
    assert status_of(raw) == 408, raw[:300]
    assert http("POST", url, chat_body(), auth)[0] == 200, "the gateway still serves"


@pytest.mark.usefixtures("operator")
def test_no_client_makes_the_gateway_hold_more_than_its_limits(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    upstream = stand_ins("a")
    kubectl.apply(
        model_deployment("chat", "vllm"),
        model_deployment("other", "vllm"),
        endpoint_slice("chat", upstream.address, upstream.port),
        endpoint_slice("other", upstream.address, upstream.port),
    )
    gateway = start_gateway(
        "--max-in-flight-per-model=2", "--max-in-flight=3", "--body-buffer-bytes=8192"
    )
    gateway.wait_for_endpoints("chat", 1)
    gateway.wait_for_endpoints("other", 1)
    url = gateway.url + CHAT
    held = {**JSON, "X-Test-Hold": "1"}
    answers: list[int] = []

    def send(model: str) -> None:
        answers.append(http("POST", url, chat_body(model), held)[0])

    threads = [threading.Thread(target=send, args=("chat",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: upstream.stats()["in_flight"] == 2, "two requests held upstream")

    # a third request to the same model: 429 with Retry-After, at once
    answer = http("POST", url, chat_body("chat"), JSON)
    assert error_of(answer) == (429, "TooManyRequests") and answer[1]["Retry-After"]
    # another model still has room; then the gateway as a whole is full: 503
    threads.append(threading.Thread(target=send, args=("other",)))
    threads[-1].start()
    wait_until(lambda: upstream.stats()["in_flight"] == 3, "three requests held upstream")
    answer = http("POST", url, chat_body("other"), JSON)
    assert error_of(answer) == (503, "GatewayOverloaded") and answer[1]["Retry-After"]
    upstream.release()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [200, 200, 200]

    # bodies held in memory: one that does not fit the budget left is refused before it is read
    big = chat_body(padding="x" * 6000)
    head = (
        b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n"
    ) % len(big)
    slow = threading.Thread(
        target=lambda: answers.append(
            status_of(raw_exchange(gateway.port, head, [(big[:100], 0), (big[100:], 2)]))
        )
    )
    slow.start()
    wait_until(
        lambda: f"berth_gateway_buffered_body_bytes {float(len(big))}" in gateway.metrics(),
        "the slow body's bytes reserved as soon as its head is read",
    )
    answer = http("POST", url, big, JSON)
    assert error_of(answer) == (503, "GatewayOverloaded") and answer[1]["Retry-After"]
    slow.join(timeout=30)
    assert answers[-1] == 200
    assert http("POST", url, big, JSON)[0] == 200, "the budget is given back"
