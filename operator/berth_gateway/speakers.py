"""Speaker-attributed transcripts in one call: a transcription that asks for speakers
(`response_format=diarized_json`, or `diarize=true` with any format) goes first to the pyannote
model the ASR model is paired with (spec.asr.diarizationModel), then to the ASR model with the
speaker turns found; the ASR server assigns its timed words to them (doc/architecture.md says
why the composition lives here).

The client uploads once; the gateway sends the same buffered audio to both, never copied."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from berth_gateway.errors import BadRequest, GatewayError, ModelNotReady, UpstreamUnavailable
from berth_gateway.hold import Hold
from berth_gateway.metrics import GatewayMetrics, ModelMetrics
from berth_gateway.multipart import Form
from berth_gateway.proxy import Proxy
from berth_gateway.table import Model, RoutingTable
from berth_gateway.upstream_keys import UpstreamKeys

logger = logging.getLogger(__name__)

DIARIZATION_ROUTE = "/api/diarization/process"
#: what the form may say to the diarization model as well
SPEAKER_FIELDS = ("num_speakers", "min_speakers", "max_speakers")
#: OpenAI's known speakers: names and reference clips, which the diarization model matches
KNOWN_SPEAKER_FIELDS = ("known_speaker_names", "known_speaker_references")
TRUE = ("true", "1")
#: the client's consent to a transcript without speakers when the diarization model fails
OPTIONAL_FIELD = "speakers_optional"


class SpeakersUnavailable(BadRequest):
    code = "SpeakersUnavailable"


class DiarizationFailed(UpstreamUnavailable):
    code = "DiarizationFailed"


def wants_speakers(form: Form | None) -> bool:
    if form is None:
        return False
    diarize = (form.value("diarize") or "").lower()
    return form.value("response_format") == "diarized_json" or diarize in TRUE


class SpeakerTranscripts:
    """Finds an ASR model's diarization partner, asks it for speaker turns, and hands the
    transcription on with them."""

    def __init__(
        self,
        table: RoutingTable,
        proxy: Proxy,
        upstream_keys: UpstreamKeys,
        metrics: GatewayMetrics,
        retry_after: int,
        hold: Hold | None = None,
    ) -> None:
        self.table, self.proxy, self.upstream_keys = table, proxy, upstream_keys
        self.metrics, self.retry_after, self.hold = metrics, retry_after, hold

    def partner(self, model: Model) -> Model:
        """The pyannote model `model` is paired with; why not, when it cannot answer."""
        if not model.diarization_model:
            raise SpeakersUnavailable(
                f"model {model.served_name} is not paired with a diarization model: set "
                f"spec.asr.diarizationModel of {model.namespace}/{model.name} to a pyannote "
                "ModelDeployment in its namespace"
            )
        partner = self.table.by_key((model.namespace, model.diarization_model))
        where = f"{model.namespace}/{model.diarization_model}"
        if partner is None:
            raise ModelNotReady(
                f"model {model.served_name}'s diarization model {where} does not exist: create "
                "it, or change spec.asr.diarizationModel",
                "DiarizationModelMissing",
                self.retry_after,
            )
        if partner.engine != "pyannote":
            raise ModelNotReady(
                f"model {model.served_name}'s diarization model {where} runs {partner.engine}, "
                "not pyannote: name a pyannote ModelDeployment in spec.asr.diarizationModel",
                "DiarizationModelInvalid",
                self.retry_after,
            )
        return partner

    async def turns(self, partner: Model, form: Form, request_id: str) -> list[dict[str, Any]]:
        """The partner's exclusive speaker turns for the form's audio, known speakers named."""
        file = form.part("file")
        if file is None:
            raise BadRequest("the form has no 'file' field: send the audio as field 'file'")
        fields = {"model": partner.served_name, "exclusive": "true"}
        fields |= {name: value for name in SPEAKER_FIELDS if (value := form.value(name))}
        known = [part for name in KNOWN_SPEAKER_FIELDS for part in form.repeated(name)]
        metrics = self.metrics.model(partner.served_name)
        code = 500
        metrics.in_flight.inc()
        try:
            if self.hold and not self.hold.ready(partner):
                partner = await self.hold.until_up(partner)
            status, answer = await self.proxy.call(
                partner,
                DIARIZATION_ROUTE,
                form.subset([file, *known], fields),
                self.upstream_keys.key_for(partner),
                request_id,
                metrics,
            )
            code = status
        except GatewayError as error:
            code = error.status
            error.message = f"the diarization model {partner.served_name}: {error.message}"
            raise
        finally:
            metrics.in_flight.dec()
            metrics.answered(code)
        return self._segments(partner, status, answer)

    def _segments(self, partner: Model, status: int, answer: bytes) -> list[dict[str, Any]]:
        try:
            body = json.loads(answer)
        except ValueError:
            body = None
        if status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            message = (
                error.get("message")
                if isinstance(error, dict)
                else answer[:200].decode(errors="replace")
            )
            failure: GatewayError = DiarizationFailed(
                f"the diarization model {partner.served_name} answered {status}: {message}"
            )
            if 400 <= status < 500:  # the request itself (its audio, its speaker counts)
                failure = BadRequest(failure.message)
            raise failure
        return [
            {"speaker": s["speaker"], "start": s["start"], "end": s["end"]}
            for s in body.get("segments") or []
        ]

    async def forward(
        self,
        request: web.Request,
        model: Model,
        partner: Model,
        form: Form,
        key: str | None,
        metrics: ModelMetrics,
    ) -> web.StreamResponse:
        """The transcription, with the speaker turns of `partner` added to its form; or, when
        the diarization model failed (not the request) and the client sent
        `speakers_optional=true`, with why there are none (the ASR server flags the answer)."""
        try:
            turns = await self.turns(partner, form, request["request_id"])
            fields = {"speaker_turns": json.dumps(turns, separators=(",", ":"))}
        except GatewayError as error:
            if error.status < 500 or (form.value(OPTIONAL_FIELD) or "").lower() not in TRUE:
                raise
            logger.warning("transcript without speakers, as the client allows: %s", error.message)
            why = {"reason": error.code, "message": error.message}
            fields = {"speakers_unavailable": json.dumps(why)}
        body = form.with_fields(fields)
        return await self.proxy.forward(request, model, body, key, request["request_id"], metrics)
