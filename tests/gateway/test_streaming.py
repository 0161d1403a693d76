"""A streamed chat through the gateway to a vLLM-compatible stand-in (tests/gateway/upstream.py):
chunks arrive one by one, and a client that goes away cancels the upstream request."""

from __future__ import annotations

from typing import Any

from openai import OpenAI

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, model_deployment, wait_until


def test_chunks_pass_through_one_by_one_and_a_disconnect_cancels_upstream(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    upstream = stand_ins("a")
    kubectl.apply(
        model_deployment("chat", "vllm", vllm={"servedModelName": "qwen"}),
        endpoint_slice("chat", upstream.address, upstream.port),
    )
    gateway = start_gateway()
    gateway.wait_for_endpoints("qwen", 1)
    client = OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    # 1,000 tokens at 5 a second: the stream could only end by the cancel
    stream = client.chat.completions.create(
        model="qwen",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        max_tokens=1000,
    )
    chunks = iter(stream)
    for index in range(3):
        chunk = next(chunks)
        assert chunk.choices[0].delta.content == f"t{index}"
        assert chunk.system_fingerprint == "a"
        # each chunk reached the client while the upstream was still writing the stream
        assert upstream.stats()["streams_done"] == 0
    stream.close()
    wait_until(lambda: upstream.stats()["cancelled"] == 1, "the upstream request cancelled")
    stats = upstream.stats()
    assert stats["streams_done"] == 0 and stats["chunks_sent"] < 1000
