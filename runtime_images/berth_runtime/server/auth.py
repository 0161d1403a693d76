"""API keys: several at once (for rotation), compared in constant time, never logged."""

from __future__ import annotations

import hmac

from aiohttp import web

from berth_runtime.server.errors import Unauthorized

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def key_matches(presented: bytes, keys: tuple[bytes, ...]) -> bool:
    """Compares against every key, always, so the time says nothing about which matched."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


def api_key_middleware(keys: tuple[bytes, ...], protected: frozenset[str]) -> web.middleware:
    @web.middleware
    async def check(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if keys and request.path in protected:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not key_matches(token.strip().encode(), keys):
                raise Unauthorized()
        return await handler(request)

    return check
