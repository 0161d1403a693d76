"""Which model a request names: a header or query parameter (the body then streams through),
else the `model` field of a JSON body or of a multipart form (buffered up to the limit).

A buffered body is held once, as it arrived: a JSON body is scanned, never parsed into objects
(`jsonscan.py`), and a form's `model` part is found in place, without splitting the form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from berth_gateway.config import MODEL_HEADER, MODEL_QUERY
from berth_gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout
from berth_gateway.jsonscan import JsonShapeError, TopLevel, scan
from berth_gateway.limits import BodyLimits, Reservation
from berth_gateway.multipart import Form, boundary_of
from berth_gateway.payload import slices

#: the top-level fields of a JSON body the gateway reads
JSON_FIELDS = frozenset({"model", "messages", "prompt"})
#: bodies larger than this are scanned off the event loop
SCAN_IN_THREAD_BYTES = 1 << 20


@dataclass
class RequestBody:
    """The model a request names (None: it named none) and its body, to send on; for a JSON
    body, where its prompt lies; for a form, where its parts lie."""

    model: str | None
    data: bytes | bytearray | AsyncIterator[bytes]
    fields: TopLevel = field(default_factory=TopLevel)
    form: Form | None = None

    def payload(self) -> AsyncIterator[bytes | memoryview]:
        """The body to send upstream, afresh for each attempt: a buffered body goes out in
        slices of itself, so the socket's buffers never hold a second copy of it."""
        if isinstance(self.data, bytes | bytearray):
            return slices([self.data])
        return self.data

    def prompt_start(self, limit: int) -> bytes | None:
        """The first `limit` bytes of the chat messages or the prompt, as sent."""
        if not isinstance(self.data, bytes | bytearray):
            return None
        for name in ("messages", "prompt"):
            if (start := self.fields.raw(self.data, name, limit)) is not None:
                return start
        return None


def too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is over the gateway's limit of {limit} bytes for {what}; send a "
        f"smaller one or raise gateway.{'maxJsonBodyBytes' if what == 'JSON' else 'maxBodyBytes'}"
    )


def _kind(content_type: str) -> str:
    return "JSON" if content_type == "application/json" else "uploads"


async def _chunk(request: web.Request, idle: float) -> bytes:
    """The next piece of the body (b"" at its end); 408 when none comes for `idle` seconds."""
    try:
        async with asyncio.timeout(idle):
            chunk = await request.content.readany()
    except TimeoutError:
        raise RequestTimeout(
            f"no byte of the request body arrived for {idle:g} s; send the body without pauses"
        ) from None
    return chunk


async def read_limited(
    request: web.Request, limits: BodyLimits, reservation: Reservation
) -> bytearray:
    """The whole body in one buffer, refusing more than the limit of its type; its bytes are
    taken from the gateway's budget before they are read. A body of known length is read into
    a buffer of that length: it is never copied as it grows."""
    limit = limits.for_type(request.content_type)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, _kind(request.content_type))
    reservation.grow(request.content_length or 0)
    body = bytearray(request.content_length or 0)
    filled = 0
    while chunk := await _chunk(request, limits.idle_seconds):
        end = filled + len(chunk)
        if end > limit:
            raise too_large(limit, _kind(request.content_type))
        reservation.grow(end)
        if end <= len(body):
            body[filled:end] = chunk
        else:
            body[filled:] = chunk
        filled = end
    del body[filled:]
    return body


async def stream_limited(request: web.Request, limits: BodyLimits) -> AsyncIterator[bytes]:
    """The body as it arrives, cut off past the limit of its type."""
    limit, size = limits.for_type(request.content_type), 0
    while chunk := await _chunk(request, limits.idle_seconds):
        size += len(chunk)
        if size > limit:
            raise too_large(limit, _kind(request.content_type))
        yield chunk


async def json_fields(body: bytearray, max_depth: int) -> TopLevel:
    """Where the gateway's fields lie in a JSON body; 400 when it is not a routable object."""
    try:
        if len(body) > SCAN_IN_THREAD_BYTES:
            return await asyncio.to_thread(scan, body, JSON_FIELDS, max_depth)
        return scan(body, JSON_FIELDS, max_depth)
    except JsonShapeError as error:
        raise BadRequest(f"the body is not a JSON object the gateway can route: {error}") from None


async def read_body(
    request: web.Request, limits: BodyLimits, reservation: Reservation
) -> RequestBody:
    """The model and the body; the body is buffered only when the model is inside it."""
    limit = limits.for_type(request.content_type)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, _kind(request.content_type))
    named = request.headers.get(MODEL_HEADER) or request.query.get(MODEL_QUERY)
    if named:
        return RequestBody(named, stream_limited(request, limits))
    body = await read_limited(request, limits, reservation)
    if request.content_type == "application/json":
        fields = await json_fields(body, limits.max_depth)
        try:
            model = fields.string(body, "model")
        except (JsonShapeError, ValueError) as error:
            raise BadRequest(f"the body's 'model': {error}") from None
        return RequestBody(model, body, fields)
    if request.content_type == "multipart/form-data":
        form = Form(body, _boundary(request))
        return RequestBody(form.value("model"), body, form=form)
    return RequestBody(None, body)


def _boundary(request: web.Request) -> str:
    boundary = boundary_of(request.headers.get("Content-Type", ""))
    if not boundary:
        raise BadRequest("a multipart body needs a boundary in its Content-Type")
    return boundary
