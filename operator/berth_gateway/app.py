"""The gateway's HTTP surface: OpenAI's routes and the earlier system's, keys, models, health."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from aiohttp import web

from berth_gateway.auth import Grant, KeyRing
from berth_gateway.bodies import RequestBody, read_body
from berth_gateway.config import GatewayConfig
from berth_gateway.errors import (
    GatewayError,
    MissingModel,
    ModelNotAllowed,
    ModelNotFound,
    Unauthorized,
    errors_to_json,
)
from berth_gateway.hold import Hold
from berth_gateway.limits import Admission, Reservation
from berth_gateway.load import Load
from berth_gateway.metrics import GatewayMetrics
from berth_gateway.proxy import Proxy
from berth_gateway.speakers import SpeakerTranscripts, wants_speakers
from berth_gateway.table import Model, RoutingTable
from berth_gateway.upstream_keys import UpstreamKeys

logger = logging.getLogger(__name__)

#: OpenAI's routes: the body names the model
OPENAI_ROUTES = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
)
#: the earlier system's routes, and the engine that answers each when the body names no model
SEED_ROUTES = {
    "/api/audio/transcribe": "nemo-asr",
    "/api/diarization/process": "pyannote",
}


@web.middleware
async def request_ids(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """Every request gets an X-Request-Id (the client's, or a new one), logged with its outcome."""
    request["request_id"] = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    started = time.perf_counter()
    response = await handler(request)
    response.headers.setdefault("X-Request-Id", request["request_id"])
    logger.info(
        "%s %s %s -> %s in %.3f s",
        request["request_id"],
        request.method,
        request.path,
        response.status,
        time.perf_counter() - started,
    )
    return response


class Gateway:
    """Resolves the model of each request, checks its key and hands it to the proxy."""

    def __init__(
        self,
        config: GatewayConfig,
        table: RoutingTable,
        keys: KeyRing,
        upstream_keys: UpstreamKeys,
        proxy: Proxy,
        metrics: GatewayMetrics,
        synced: Any = None,
        load: Load | None = None,
        hold: Hold | None = None,
    ) -> None:
        self.config = config
        self.table = table
        self.keys = keys
        self.upstream_keys = upstream_keys
        self.proxy = proxy
        self.metrics = metrics
        self.synced = synced or (lambda: True)
        #: stopping: not ready any more, still answering until the listener closes
        self.draining = False
        self.load = load or Load()
        self.hold = hold
        self.admission = Admission(config.caps(), metrics.refused)
        metrics.buffered_body_bytes.set_function(lambda: self.admission.buffered)
        self.body_limits = config.body_limits()
        self.speakers = SpeakerTranscripts(
            table, proxy, upstream_keys, metrics, config.retry_after_seconds, hold
        )

    def resolve(self, name: str | None, engine: str | None, grant: Grant) -> Model:
        """The model a request names; on the earlier system's routes, the only model of the
        route's engine (that the key may call) when it names none. Messages list only the
        models the key may call."""
        if name:
            model = self.table.model(name)
            if model is None:
                raise ModelNotFound(f"no model named '{name}'; the models are: {self.names(grant)}")
            if not grant.permits(name):  # an adapter is granted by its own name
                raise ModelNotAllowed(
                    f"this key may not call model '{name}'; the models it may call are: "
                    f"{self.names(grant)}"
                )
            return model
        if engine:
            candidates = [m for m in self.table.of_engine(engine) if grant.permits(m.served_name)]
            if len(candidates) == 1:
                return candidates[0]
            raise MissingModel(
                f"this route needs a 'model' field: the {engine} models are "
                f"{', '.join(m.served_name for m in candidates) or 'none'}"
            )
        raise MissingModel(
            "the request names no model: add a 'model' field (or the X-Berth-Model header); "
            f"the models are: {self.names(grant)}"
        )

    def names(self, grant: Grant) -> str:
        """The models `grant` may call, for messages."""
        return ", ".join(grant.visible(self.table.names())) or "none"

    def check_key(self, request: web.Request) -> Grant:
        """What the request's key may call; 401 when it is no valid key."""
        grant = self.keys.grant(request.headers.get("Authorization"))
        if grant is None:
            raise Unauthorized()
        return grant

    async def inference(self, request: web.Request) -> web.StreamResponse:
        grant = self.check_key(request)
        started = time.perf_counter()
        metrics = self.metrics.model("")
        code = 500
        reservation = Reservation(self.admission)
        try:
            with self.admission.request():
                body = await read_body(request, self.body_limits, reservation)
                model = self.resolve(body.model, SEED_ROUTES.get(request.path), grant)
                metrics = self.metrics.model(model.served_name)
                key = self.upstream_keys.key_for(model)
                with self.admission.model(model.key, model.served_name):
                    response = await self._forward(request, model, body, key, metrics)
            code = response.status
            return response
        except GatewayError as error:
            code = error.status
            raise
        finally:
            reservation.release()
            metrics.answered(code)
            if metrics.name:
                metrics.latency.observe(time.perf_counter() - started)

    async def _forward(
        self, request: web.Request, model: Model, body: RequestBody, key: str | None, metrics: Any
    ) -> web.StreamResponse:
        """Waits for the model when it is coming up, then hands the request to the proxy (by way
        of the diarization model when a transcription asks for speakers)."""
        # a request for speakers that cannot have them fails before any wait
        partner = (
            self.speakers.partner(model)
            if model.engine == "nemo-asr" and wants_speakers(body.form)
            else None
        )
        metrics.in_flight.inc()
        try:
            with self.load.track(model.key):
                if self.hold and not self.hold.ready(model):
                    with self.admission.hold(model.served_name):
                        model = await self.hold.until_up(model)
                if partner is not None and body.form is not None:
                    return await self.speakers.forward(
                        request, model, partner, body.form, key, metrics
                    )
                return await self.proxy.forward(
                    request, model, body, key, request["request_id"], metrics
                )
        finally:
            metrics.in_flight.dec()

    def available(self, model: Model) -> str:
        """`now`: a ready endpoint answers; `onRequest`: a request brings it up from zero (or
        waits while it comes up); `no`: it cannot answer now (its `reason` says why)."""
        if self.table.endpoints(model) and (model.autoscaling is None or model.loaded):
            return "now"
        if model.autoscaling is not None and model.blocked is None:
            return "onRequest"
        return "no"

    async def list_models(self, request: web.Request) -> web.Response:
        """The models the client's key may call, with their engine and phase (OpenAI's list
        shape)."""
        grant = self.check_key(request)
        data = [
            {
                "id": m.served_name,
                "object": "model",
                "created": 0,
                "owned_by": m.namespace,
                "engine": m.engine,
                "phase": m.phase,
                "ready": m.ready,
                "reason": m.reason,
                "endpoints": len(self.table.endpoints(m)),
                "replicas": m.replicas,
                "scalesFromZero": m.scales_from_zero,
                "available": self.available(m),
            }
            | ({"diarizationModel": m.diarization_model} if m.diarization_model else {})
            for m in self.table.models()
            if grant.permits(m.served_name)
        ]
        # adapters as vLLM lists them: their base model as `parent`
        data += [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": m.namespace,
                "parent": m.served_name,
                "root": name,
                "engine": m.engine,
                "phase": m.phase,
                "available": self.available(m),
            }
            for name, m in self.table.adapters()
            if grant.permits(name)
        ]
        return web.json_response({"object": "list", "data": data})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        if not self.synced():
            return web.json_response({"status": "listing"}, status=503)
        return web.json_response({"status": "ready", "models": len(self.table.models())})

    def app(self) -> web.Application:
        # the body is read by the gateway itself, under its own limits
        app = web.Application(
            client_max_size=max(self.config.max_body_bytes, self.config.max_json_body_bytes),
            middlewares=[request_ids, errors_to_json],
        )
        app.add_routes(
            [
                *(web.post(path, self.inference) for path in (*OPENAI_ROUTES, *SEED_ROUTES)),
                web.get("/v1/models", self.list_models),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
            ]
        )
        return app
