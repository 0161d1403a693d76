"""The tiny Canary and pyannote models on their engines' real model servers, Canary paired
with pyannote, and a gateway watching their namespace: shared by tests/gateway/test_speech.py
and benchmarks/diarized_transcript.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.engines.runner import EngineServer
from tests.gateway.parts import GatewayProcess, endpoint_slice, model_deployment

CANARY_REPO = "nvidia/canary-tiny"
DIARIZATION_REPO = "berth-test/tiny-diarization"


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SpeechStack:
    gateway: GatewayProcess
    servers: dict[str, EngineServer]  # engine -> its server
    namespace: str


@contextmanager
def speech_gateway(
    cluster: ControlPlane,
    namespace: str,
    address: str,
    caches: dict[str, Path],
    work: Path,
    more: tuple[dict[str, Any], ...] = (),
    canary_settings: dict[str, Any] | None = None,
) -> Iterator[SpeechStack]:
    """Both servers (from `caches`: engine -> cache directory) on `address`; the resources
    `canary` (paired with `diarization`) and `diarization`, their EndpointSlices and `more`
    in `namespace`; a gateway watching it, once it routes to both."""
    cluster.kubectl("create", "namespace", namespace)
    kubectl = Kubectl(cluster, namespace)
    servers = [
        EngineServer(
            "nemo-asr",
            caches["nemo-asr"],
            CANARY_REPO,
            {"servedModelName": "canary", **(canary_settings or {})},
            host=address,
        ),
        EngineServer(
            "pyannote",
            caches["pyannote"],
            DIARIZATION_REPO,
            {"servedModelName": "diarization"},
            host=address,
        ),
    ]
    gateway = None
    try:
        for server in servers:
            server.wait_ready(timeout=300)
        kubectl.apply(
            model_deployment(
                "canary", "nemo-asr", resources={"gpus": 0}, asr={"diarizationModel": "diarization"}
            ),
            model_deployment("diarization", "pyannote", resources={"gpus": 0}),
            endpoint_slice("canary", address, servers[0].port),
            endpoint_slice("diarization", address, servers[1].port),
            *more,
        )
        (work / "gateway").mkdir(parents=True, exist_ok=True)
        gateway = GatewayProcess(cluster, work / "gateway", f"--namespace={namespace}")
        gateway.wait_for_endpoints("canary", 1)
        gateway.wait_for_endpoints("diarization", 1)
        engines = dict(zip(("nemo-asr", "pyannote"), servers, strict=True))
        yield SpeechStack(gateway, engines, namespace)
    finally:
        if gateway:
            gateway.stop()
        for server in servers:
            server.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
