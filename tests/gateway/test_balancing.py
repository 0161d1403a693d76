"""Two replicas: requests go to the one with fewer requests in flight; one replica killed, and no
request that had not been sent to it fails."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until

BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()


def two_replicas(kubectl: Kubectl, start_gateway: Any, stand_ins: Any, **spec: Any) -> tuple:
    """Two stand-in replicas of the vLLM model "chat", and a gateway that sees both."""
    a, b = stand_ins("a"), stand_ins("b")
    kubectl.apply(
        model_deployment("chat", "vllm", **spec),
        endpoint_slice("chat", a.address, a.port),
        endpoint_slice("chat", b.address, b.port),
    )
    gateway = start_gateway()
    gateway.wait_for_endpoints("chat", 2)
    return a, b, gateway


def test_least_outstanding_requests_and_a_replica_killed(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    a, b, gateway = two_replicas(kubectl, start_gateway, stand_ins)
    url = gateway.url + "/v1/chat/completions"
    json_headers = {"Content-Type": "application/json"}
    held = {**json_headers, "X-Test-Hold": "1"}

    def in_flight() -> tuple[int, int]:
        return a.stats()["in_flight"], b.stats()["in_flight"]

    with ThreadPoolExecutor(16) as pool:
        # four held requests spread two and two
        first = [pool.submit(http, "POST", url, BODY, held) for _ in range(4)]
        wait_until(lambda: sum(in_flight()) == 4, "four requests in flight")
        assert in_flight() == (2, 2)
        # a's finish: the next two go to a, which has none left, not one to each
        a.release()
        wait_until(lambda: sum(f.done() for f in first) == 2, "a's requests answered")
        on_b = [f for f in first if not f.done()]
        assert [f.result()[0] for f in first if f not in on_b] == [200, 200]
        second = [pool.submit(http, "POST", url, BODY, held) for _ in range(2)]
        wait_until(lambda: sum(in_flight()) == 4, "two more requests in flight")
        assert in_flight() == (2, 2)

        # b dies with two requests on it: they were sent, they fail with 502; every later
        # request is answered, though b stays in the EndpointSlice with the fewest in flight
        b.kill()
        assert [f.result()[0] for f in on_b] == [502, 502]
        later = list(pool.map(lambda _: http("POST", url, BODY, json_headers), range(10)))
        assert [status for status, _, _ in later] == [200] * 10
        assert all(json.loads(body)["system_fingerprint"] == "a" for _, _, body in later)
        a.release()
        assert [f.result()[0] for f in second] == [200, 200]
    assert 'kind="connect"' in gateway.metrics()


def chat_with(system: str, user: str) -> bytes:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return json.dumps({"model": "chat", "messages": messages}).encode()


def test_prefix_affinity_sticks_to_one_replica_under_a_load_bound(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    a, b, gateway = two_replicas(
        kubectl,
        start_gateway,
        stand_ins,
        gateway={"balancing": "PrefixAffinity", "prefixChars": 64},
    )
    url = gateway.url + "/v1/chat/completions"
    json_headers = {"Content-Type": "application/json"}
    system = "You are the support assistant of a shop that sells bicycles. " * 3

    def served_by(body: bytes) -> str:
        status, _, answer = http("POST", url, body, json_headers)
        assert status == 200, answer
        return json.loads(answer)["system_fingerprint"]

    # the same first 64 characters, different questions: one replica serves them all
    home = {served_by(chat_with(system, f"question {i}")) for i in range(10)}
    assert len(home) == 1
    (home_name,) = home
    stand_in = {"a": a, "b": b}
    other = stand_in["b" if home_name == "a" else "a"]
    # other prompts spread over both (40 prefixes on one replica: 2 in 10^12)
    assert {served_by(chat_with(f"{i} {system}", "hi")) for i in range(40)} == {"a", "b"}

    idle = 'berth_gateway_in_flight_requests{model="chat"} 0.0'
    wait_until(lambda: idle in gateway.metrics(), "no request in flight in the gateway")
    # six requests held at once: the bound ceil(1.25 * (in flight + 1) / 2) lets the home
    # replica take the 1st, 2nd, 4th and 5th; the 3rd and 6th go to the other one
    held = {**json_headers, "X-Test-Hold": "1"}
    with ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(http, "POST", url, chat_with(system, f"held {i}"), held) for i in range(6)
        ]
        wait_until(
            lambda: a.stats()["in_flight"] + b.stats()["in_flight"] == 6, "six requests in flight"
        )
        assert (stand_in[home_name].stats()["in_flight"], other.stats()["in_flight"]) == (4, 2)
        a.release()
        b.release()
        assert [f.result()[0] for f in futures] == [200] * 6
    # the load gone, the prefix is back on its replica
    wait_until(lambda: idle in gateway.metrics(), "no request in flight in the gateway")
    assert served_by(chat_with(system, "after")) == home_name


def test_a_request_a_busy_replica_refused_unhandled_goes_to_the_other(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any
) -> None:
    """A model server's refusal marked unprocessed (busy, not ready) is sent to another
    endpoint; when every endpoint refuses, the client gets the server's own answer."""
    a, b, gateway = two_replicas(kubectl, start_gateway, stand_ins)
    url = gateway.url + "/v1/chat/completions"
    a_busy = {"Content-Type": "application/json", "X-Test-Busy": "a"}
    # ties go at random: among 30 requests, a is picked first for some (none: 1 in 10^9)
    answers = [http("POST", url, BODY, a_busy) for _ in range(30)]
    assert [status for status, _, _ in answers] == [200] * 30
    assert all(json.loads(body)["system_fingerprint"] == "b" for _, _, body in answers)
    refused = a.stats()["refused"]
    assert refused > 0 and a.stats()["served"] == 0 and b.stats()["served"] == 30
    assert f'berth_gateway_upstream_errors_total{{kind="refused",model="chat"}} {refused}.0' in (
        gateway.metrics()
    )

    b.kill()  # a alone, busy: its refusal reaches the client as it is, with its Retry-After
    status, headers, body = http("POST", url, BODY, a_busy)
    assert status == 503 and headers["Retry-After"] == "10", body
    assert json.loads(body)["error"]["type"] == "ServerBusy"
