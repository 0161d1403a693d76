"""Which model a request names: a header or query parameter (the body then streams through),
else the `model` field of a JSON body or of a multipart form (buffered up to the limit)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from berth_gateway.config import MODEL_HEADER, MODEL_QUERY
from berth_gateway.errors import BadRequest, PayloadTooLarge

_MODEL_PART = re.compile(rb'content-disposition:[^\r\n]*;\s*name="?model"?\s*(;|\r|$)', re.I)


@dataclass
class RequestBody:
    """The model a request names (None: it named none) and its body, to send on; a JSON body's
    object too, as parsed."""

    model: str | None
    data: bytes | AsyncIterator[bytes]
    document: dict[str, Any] | None = None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is over the gateway's limit of {limit} bytes; send a smaller one "
        "or raise gateway.maxBodyBytes"
    )


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def stream_limited(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives, cut off past `limit` bytes."""
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        yield chunk


def json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object with a 'model' field")
    return document


def model_from_json(document: dict[str, Any]) -> str | None:
    model = document.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    return model


def model_from_multipart(body: bytes, boundary: str) -> str | None:
    """The value of the form's `model` field, wherever it is in the form."""
    for part in body.split(b"--" + boundary.encode()):
        head, sep, content = part.partition(b"\r\n\r\n")
        if sep and _MODEL_PART.search(head):
            return content.removesuffix(b"\r\n").decode(errors="replace").strip()
    return None


async def read_body(request: web.Request, limit: int) -> RequestBody:
    """The model and the body; the body is buffered only when the model is inside it."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    named = request.headers.get(MODEL_HEADER) or request.query.get(MODEL_QUERY)
    if named:
        return RequestBody(named, stream_limited(request, limit))
    body = await read_limited(request, limit)
    if request.content_type == "application/json":
        document = json_object(body)
        return RequestBody(model_from_json(document), body, document)
    if request.content_type == "multipart/form-data":
        return RequestBody(model_from_multipart(body, _boundary(request)), body)
    return RequestBody(None, body)


def _boundary(request: web.Request) -> str:
    params = dict(
        p.strip().split("=", 1)
        for p in request.headers.get("Content-Type", "").split(";")[1:]
        if "=" in p
    )
    boundary = params.get("boundary")
    if not boundary:
        raise BadRequest("a multipart body needs a boundary in its Content-Type")
    return boundary.strip('"')
