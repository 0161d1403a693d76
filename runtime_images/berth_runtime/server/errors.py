"""Errors a request can meet, and the one place where they become HTTP answers."""

from __future__ import annotations

from aiohttp import web
from berth_operator.api.metadata import UNPROCESSED_HEADER


class ApiError(Exception):
    """An error with its HTTP status; `type` is a stable CamelCase name clients can test."""

    status = 500
    type = "InternalError"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status, type = 400, "BadRequest"


class Unauthorized(ApiError):
    status, type = 401, "Unauthorized"

    def __init__(
        self, message: str = "missing or wrong API key: send Authorization: Bearer <key>"
    ) -> None:
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="berth"'})


class NotFound(ApiError):
    status, type = 404, "NotFound"


class ModelNotFound(NotFound):
    type = "ModelNotFound"


class PayloadTooLarge(ApiError):
    status, type = 413, "PayloadTooLarge"


class UnsupportedMediaType(ApiError):
    status, type = 415, "UnsupportedMediaType"


class Refused(ApiError):
    """503 before any of the request was handled: marked so that the gateway may send it to
    another replica, with Retry-After for clients that reach this one directly."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after), UNPROCESSED_HEADER: self.type})


class ModelNotReady(Refused):
    type = "ModelNotReady"

    def __init__(self, message: str, retry_after: int = 10) -> None:
        super().__init__(message, retry_after)


class ServerBusy(Refused):
    """This replica holds as many requests as it may; another replica, or later, will do."""

    type = "ServerBusy"


def error_response(error: ApiError) -> web.Response:
    return web.json_response(
        {"error": {"type": error.type, "message": error.message}},
        status=error.status,
        headers=error.headers,
    )


@web.middleware
async def errors_to_json(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """Every failure leaves as JSON: ours with their status, aiohttp's mapped, others as 500."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPRequestEntityTooLarge as error:
        return error_response(
            PayloadTooLarge(f"request body over the limit of {error.max_size} bytes")
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        api = ApiError(error.reason)
        api.status, api.type = error.status, error.reason.replace(" ", "")
        return error_response(api)
    except Exception as error:  # an engine bug must not leak a traceback to clients
        request.app.logger.exception("request to %s failed", request.path)
        return error_response(ApiError(f"{type(error).__name__}: {error}"))
