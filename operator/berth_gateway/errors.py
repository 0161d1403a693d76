"""Errors the gateway answers, in OpenAI's error JSON, and the one place they become responses."""

from __future__ import annotations

from aiohttp import web


class GatewayError(Exception):
    """An answer that is not the model's: its status, OpenAI's error type and a CamelCase code."""

    status = 500
    type = "server_error"
    code = "InternalError"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def response(self, request_id: str | None = None) -> web.Response:
        headers = dict(self.headers)
        if request_id:
            headers["X-Request-Id"] = request_id
        body = {
            "error": {"message": self.message, "type": self.type, "param": None, "code": self.code}
        }
        return web.json_response(body, status=self.status, headers=headers)


class BadRequest(GatewayError):
    status, type, code = 400, "invalid_request_error", "BadRequest"


class MissingModel(BadRequest):
    code = "MissingModel"


class Unauthorized(GatewayError):
    status, type, code = 401, "authentication_error", "InvalidApiKey"

    def __init__(
        self, message: str = "missing or wrong API key: send Authorization: Bearer <key>"
    ) -> None:
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="berth"'})


class ModelNotAllowed(GatewayError):
    status, type, code = 403, "permission_error", "ModelNotAllowed"


class ModelNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "ModelNotFound"


class RouteNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "RouteNotFound"


class RequestTimeout(GatewayError):
    status, type, code = 408, "invalid_request_error", "RequestTimeout"


class TooManyRequests(GatewayError):
    """429: this model has as many requests in flight as the gateway lets it have."""

    status, type, code = 429, "rate_limit_error", "TooManyRequests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})


class Overloaded(GatewayError):
    """503: the gateway itself is at one of its limits (requests, held requests, body bytes)."""

    status, type, code = 503, "server_error", "GatewayOverloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})


class PayloadTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "PayloadTooLarge"


class UpstreamUnavailable(GatewayError):
    status, type, code = 502, "server_error", "UpstreamUnavailable"


class ModelNotReady(GatewayError):
    """503 with the resource's own reason as the code (Downloading, Unschedulable, ...)."""

    status, type = 503, "server_error"

    def __init__(self, message: str, reason: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})
        self.code = reason or "ModelNotReady"


class UpstreamTimeout(GatewayError):
    status, type, code = 504, "server_error", "UpstreamTimeout"


@web.middleware
async def errors_to_json(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """Every failure of the gateway's own leaves as OpenAI's error JSON."""
    try:
        return await handler(request)
    except GatewayError as error:
        return error.response(request.get("request_id"))
    except web.HTTPNotFound:
        return RouteNotFound(
            f"no route {request.method} {request.path}: see GET /v1/models and doc/gateway.md"
        ).response(request.get("request_id"))
    except web.HTTPMethodNotAllowed as error:
        failure = BadRequest(f"{request.method} is not allowed on {request.path}")
        failure.status, failure.code = 405, "MethodNotAllowed"
        failure.headers = {"Allow": ",".join(sorted(error.allowed_methods))}
        return failure.response(request.get("request_id"))
