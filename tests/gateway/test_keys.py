"""Keys limited to some models: other models answer 403, `GET /v1/models` lists only what the
key may call, a change of the limit applies without a restart, and no key reaches the log."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until

TEAM_KEY, ADMIN_KEY = "team-key-1", "admin-key-1"


def keys_secret(team_models: str) -> dict[str, Any]:
    entries = {"team": TEAM_KEY, "team.models": team_models, "admin": ADMIN_KEY}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gateway-keys"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in entries.items()},
    }


def test_a_key_calls_only_its_models(kubectl: Kubectl, start_gateway: Any, stand_ins: Any) -> None:
    upstream = stand_ins("a")
    kubectl.apply(
        keys_secret("chat"),
        model_deployment("chat", "vllm"),
        model_deployment("other", "vllm"),
        endpoint_slice("chat", upstream.address, upstream.port),
        endpoint_slice("other", upstream.address, upstream.port),
    )
    gateway = start_gateway("--keys-secret=gateway-keys", f"--keys-namespace={kubectl.namespace}")
    gateway.wait_for_endpoints("other", 1, key=ADMIN_KEY)
    url = gateway.url + "/v1/chat/completions"

    def call(model: str, key: str) -> tuple[int, dict[str, Any]]:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        status, _, answer = http("POST", url, body.encode(), headers)
        return status, json.loads(answer)

    assert call("chat", TEAM_KEY)[0] == 200
    status, answer = call("other", TEAM_KEY)
    error = answer["error"]
    assert (status, error["code"], error["type"]) == (403, "ModelNotAllowed", "permission_error")
    assert "'other'" in error["message"] and TEAM_KEY not in error["message"]
    # the models a limited key does not hold stay out of its lists and messages
    assert set(gateway.models(TEAM_KEY)) == {"chat"}
    assert set(gateway.models(ADMIN_KEY)) == {"chat", "other"}
    status, answer = call("nope", TEAM_KEY)
    assert status == 404 and "other" not in answer["error"]["message"]
    assert call("other", ADMIN_KEY)[0] == 200

    # a new limit applies without a restart
    kubectl.apply(keys_secret("other"))
    wait_until(lambda: call("other", TEAM_KEY)[0] == 200, "the new limit applied")
    assert call("chat", TEAM_KEY)[0] == 403
    assert set(gateway.models(TEAM_KEY)) == {"other"}

    log = gateway.process.log.read_text()
    assert "-> 403" in log
    assert TEAM_KEY not in log and ADMIN_KEY not in log
    assert TEAM_KEY not in gateway.metrics() and ADMIN_KEY not in gateway.metrics()
