"""LoRA adapters through the gateway: a request that names an adapter reaches its base model's
pods with its name unchanged, `/v1/models` lists adapters with their base as `parent`, keys
grant adapters by name, and an adapter removed from the spec answers 404 at once."""

from __future__ import annotations

import json
from typing import Any

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until
from tests.gateway.test_keys import ADMIN_KEY, TEAM_KEY, keys_secret

SQL = {"name": "sql", "repo": "acme/qwen3-sql-lora"}
FR = {"name": "chat-fr", "repo": "acme/qwen3-fr-lora"}


def qwen(*adapters: dict[str, str]) -> dict[str, Any]:
    vllm = {"adapters": list(adapters)} if adapters else {}
    return model_deployment("qwen", "vllm", resources={"gpus": 1}, vllm=vllm)


def test_adapters_route_to_their_base_model(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    base, other = stand_ins("qwen-pod"), stand_ins("other-pod")
    kubectl.apply(
        keys_secret("sql"),
        qwen(SQL, FR),
        model_deployment("other", "vllm", resources={"gpus": 1}),
        endpoint_slice("qwen", base.address, base.port),
        endpoint_slice("other", other.address, other.port),
    )
    gateway = start_gateway("--keys-secret=gateway-keys", f"--keys-namespace={kubectl.namespace}")
    gateway.wait_for_endpoints("qwen", 1, key=ADMIN_KEY)

    def call(model: str, key: str = ADMIN_KEY) -> tuple[int, dict[str, Any]]:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        status, _, answer = http(
            "POST", gateway.url + "/v1/chat/completions", body.encode(), headers
        )
        return status, json.loads(answer)

    listed = gateway.models(ADMIN_KEY)
    assert set(listed) == {"qwen", "other", "sql", "chat-fr"}
    assert listed["sql"]["parent"] == listed["chat-fr"]["parent"] == "qwen"
    assert "parent" not in listed["qwen"]

    for name in ("sql", "chat-fr", "qwen"):
        status, answer = call(name)
        assert status == 200 and answer["model"] == name  # the name reaches vLLM unchanged
    assert base.stats()["served"] == 3 and other.stats()["served"] == 0

    # a key names the adapters it may call, as it names models
    assert call("sql", TEAM_KEY)[0] == 200
    assert call("qwen", TEAM_KEY)[0] == 403 and call("chat-fr", TEAM_KEY)[0] == 403
    assert set(gateway.models(TEAM_KEY)) == {"sql"}

    # an adapter taken out of the spec is gone from the gateway at once
    kubectl.apply(qwen(SQL))
    wait_until(lambda: "chat-fr" not in gateway.models(ADMIN_KEY), "chat-fr delisted")
    status, answer = call("chat-fr")
    assert status == 404 and answer["error"]["type"] == "invalid_request_error"
    assert "no model named 'chat-fr'" in answer["error"]["message"]
    assert "sql" in answer["error"]["message"]
