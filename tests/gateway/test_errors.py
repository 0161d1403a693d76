"""Every bad input gets its status code and OpenAI's error JSON; keys rotate without a restart;
the model's own key goes upstream."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until
from tests.operator_process import MODEL_KEYS_NAMESPACE, MODEL_KEYS_SECRET

CHAT = "/v1/chat/completions"


def error_of(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, Any]]:
    status, _, body = answer
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return status, error


def chat(model: str | None = "chat", **extra: Any) -> bytes:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **extra}
    if model:
        body["model"] = model
    return json.dumps(body).encode()


def keys_secret(*keys: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gateway-keys"},
        "data": {"keys": base64.b64encode("\n".join(keys).encode()).decode()},
    }


@pytest.mark.usefixtures("operator")
def test_bad_inputs_and_keys(kubectl: Kubectl, start_gateway: Any, stand_ins: Any) -> None:
    upstream = stand_ins("a", api_key="model-key")
    kubectl.apply(
        keys_secret("old-key"),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "model-key"},
            "stringData": {"key": "model-key"},
        },
        model_deployment(
            "chat",
            "vllm",
            auth={"apiKeySecretRef": {"name": "model-key", "key": "key"}},
        ),
        model_deployment("idle", "vllm"),
        endpoint_slice("chat", upstream.address, upstream.port),
        endpoint_slice("idle", upstream.address, 9, ready=False),
    )
    gateway = start_gateway(
        "--keys-secret=gateway-keys",
        f"--keys-namespace={kubectl.namespace}",
        f"--model-keys-secret={MODEL_KEYS_SECRET}",
        f"--model-keys-namespace={MODEL_KEYS_NAMESPACE}",
        "--max-json-body-bytes=4096",
        "--upstream-timeout=1",
    )
    gateway.wait_for_endpoints("chat", 1, key="old-key")
    url = gateway.url + CHAT
    old = {"Authorization": "Bearer old-key", "Content-Type": "application/json"}

    # no key, a wrong key: 401 with WWW-Authenticate
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = http("POST", url, chat(), headers)
        assert answer[1]["WWW-Authenticate"].startswith("Bearer")
        assert error_of(answer)[0] == 401

    # the model's own key reaches its runtime; the client's gateway key does not. The gateway
    # reads it from the one Secret the operator copies models' keys into, never the model's own
    copied = Kubectl(kubectl.plane, MODEL_KEYS_NAMESPACE)
    entry = f"{kubectl.namespace}.chat"
    copied.wait_for("secret", MODEL_KEYS_SECRET, lambda s: entry in (s.get("data") or {}))
    wait_until(lambda: http("POST", url, chat(), old)[0] == 200, "the copied key in the gateway")
    status, _, body = http("POST", url, chat(), {**old, "X-Request-Id": "req-1"})
    assert status == 200, body
    seen = upstream.stats()["last_headers"]
    assert seen["authorization"] == "Bearer model-key"
    assert seen["x-request-id"] == "req-1"

    # a cookie one client's answer sets reaches that client, never a later client's request
    _, headers, _ = http("POST", url, chat(), {**old, "X-Test-Set-Cookie": "client-a"})
    assert "client-a" in headers["Set-Cookie"]
    assert http("POST", url, chat(), old)[0] == 200
    assert "cookie" not in upstream.stats()["last_headers"]

    # unknown model: 404 naming the models
    status, error = error_of(http("POST", url, chat("nope"), old))
    assert (status, error["code"]) == (404, "ModelNotFound")
    assert "chat" in error["message"] and "idle" in error["message"]

    # malformed JSON, no model: 400
    status, error = error_of(http("POST", url, b"{not json", old))
    assert (status, error["code"]) == (400, "BadRequest")
    status, error = error_of(http("POST", url, chat(None), old))
    assert (status, error["code"]) == (400, "MissingModel")

    # over the body limit: 413
    status, error = error_of(http("POST", url, chat(padding="x" * 5000), old))
    assert (status, error["code"]) == (413, "PayloadTooLarge")

    # a model with no ready endpoint: 503 with Retry-After and the resource's own reason, as the
    # operator wrote it (no volume exists for this namespace's cache claim: it stays Pending)
    def idle_answer() -> Any:
        answer = http("POST", url, chat("idle"), old)
        return answer if error_of(answer)[1]["code"] == "CacheClaimPending" else None

    answer = wait_until(idle_answer, "the operator's reason in the gateway's 503")
    status, error = error_of(answer)
    assert status == 503 and answer[1]["Retry-After"]
    assert "cache claim" in error["message"], error

    # an upstream that does not answer in time: 504
    status, error = error_of(http("POST", url, chat(), {**old, "X-Test-Delay": "3"}))
    assert (status, error["code"]) == (504, "UpstreamTimeout")

    # an endpoint where nothing listens: 502
    kubectl.apply(endpoint_slice("idle", upstream.address, 9))
    gateway.wait_for_endpoints("idle", 1, key="old-key")
    status, error = error_of(http("POST", url, chat("idle"), old))
    assert (status, error["code"]) == (502, "UpstreamUnavailable")

    # unknown route: 404 in the same shape
    assert error_of(http("POST", gateway.url + "/v1/nothing", chat(), old))[0] == 404

    # rotation: both keys while the Secret holds both, then only the new one; no restart
    kubectl.apply(keys_secret("old-key", "new-key"))
    new = {**old, "Authorization": "Bearer new-key"}
    wait_until(lambda: http("POST", url, chat(), new)[0] == 200, "the new key accepted")
    assert http("POST", url, chat(), old)[0] == 200
    kubectl.apply(keys_secret("new-key"))
    wait_until(lambda: http("POST", url, chat(), old)[0] == 401, "the old key refused")
    assert http("POST", url, chat(), new)[0] == 200
    assert "old-key" not in gateway.metrics() and "new-key" not in gateway.metrics()

    # the copy follows the resource: gone with it
    kubectl("delete", "modeldeployment", "chat")
    copied.wait_for("secret", MODEL_KEYS_SECRET, lambda s: entry not in (s.get("data") or {}))
