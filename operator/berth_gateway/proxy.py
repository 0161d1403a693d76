"""Forwards one request to a model's endpoints: least loaded first (or by prompt prefix), another
endpoint when a connection fails before anything was sent or a model server refused the request
unhandled (busy, not ready), the answer streamed back as it arrives, and the upstream request
closed when the client goes away."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import aiohttp
from aiohttp import web
from berth_operator.api.metadata import UNPROCESSED_HEADER
from multidict import CIMultiDict

from berth_gateway.affinity import affinity_key
from berth_gateway.balancer import Balancer
from berth_gateway.bodies import RequestBody
from berth_gateway.config import MODEL_HEADER, GatewayConfig
from berth_gateway.errors import (
    ModelNotReady,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from berth_gateway.metrics import ModelMetrics
from berth_gateway.multipart import Pieces
from berth_gateway.table import Endpoint, Model, RoutingTable

logger = logging.getLogger(__name__)

#: hop-by-hop headers (RFC 9110) and those the gateway sets itself
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)


class Payload(Protocol):
    """A body that can be sent afresh for each attempt."""

    def payload(self) -> AsyncIterator[bytes | memoryview]: ...


def upstream_headers(request: web.Request, key: str | None, request_id: str) -> CIMultiDict[str]:
    """The client's headers without hop-by-hop ones and without its gateway key; the model's own
    key when it has one."""
    headers = CIMultiDict(
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in HOP_BY_HOP and k.lower() not in ("authorization", MODEL_HEADER.lower())
    )
    if key:
        headers["Authorization"] = f"Bearer {key}"
    headers["X-Request-Id"] = request_id
    if request.body_exists and request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    return headers


def not_ready(model: Model, retry_after: int) -> ModelNotReady:
    """503 with the resource's own reason and message."""
    if model.ready and model.replicas:  # Ready, but its EndpointSlices have not caught up
        reason, message = "NoReadyEndpoints", "no ready endpoint yet"
    else:
        reason, message = model.reason, model.message
    return ModelNotReady(
        f"model {model.served_name} ({model.namespace}/{model.name}) cannot answer now: "
        f"{reason}: {message}",
        reason,
        retry_after,
    )


#: seconds an idle upstream connection is kept for reuse
IDLE_SECONDS = 2.0
#: stale kept-alive connections one request may meet before it fails
MAX_STALE = 3


class Attempt:
    """One try of a request upstream: whether it went out on a kept-alive connection."""

    reused = False


class Refusal:
    """A model server's answer that it handled none of the request, read whole (a few bytes of
    JSON) so its connection goes back to the pool; relayed when no other endpoint takes it."""

    def __init__(self, upstream: aiohttp.ClientResponse, body: bytes) -> None:
        self.status, self.reason, self.body = upstream.status, upstream.reason, body
        self.headers = CIMultiDict(
            (k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
        )

    def response(self, request_id: str) -> web.Response:
        response = web.Response(
            status=self.status, reason=self.reason, body=self.body, headers=self.headers
        )
        response.headers["X-Request-Id"] = request_id
        return response


def reuse_trace() -> aiohttp.TraceConfig:
    """Marks an attempt whose request was sent on a pooled connection."""

    async def reused(_: object, context: object, __: object) -> None:
        attempt = getattr(context, "trace_request_ctx", None)
        if isinstance(attempt, Attempt):
            attempt.reused = True

    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(reused)
    return trace


class Proxy:
    """Sends requests to models' endpoints through one pooled HTTP client."""

    def __init__(
        self,
        config: GatewayConfig,
        table: RoutingTable,
        balancer: Balancer,
    ) -> None:
        self.config = config
        self.table = table
        self.balancer = balancer
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout, sock_read=config.upstream_timeout
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """One pool of keep-alive connections per endpoint, shared by every request. No cookie
        jar: the gateway keeps nothing of one client's answer for another client's request
        (aiohttp's default jar ignores IP hosts anyway, but filters every request through it)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # idle upstream connections close before a server's keep-alive ends (uvicorn,
                # which vLLM runs, closes them after 5 s): a reused one is rarely stale
                connector=aiohttp.TCPConnector(
                    limit=0, ttl_dns_cache=None, keepalive_timeout=IDLE_SECONDS
                ),
                trace_configs=[reuse_trace()],
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(
        self,
        request: web.Request,
        model: Model,
        body: Payload,
        key: str | None,
        request_id: str,
        metrics: ModelMetrics,
    ) -> web.StreamResponse:
        """The upstream's answer, streamed; raises GatewayError when none could be had."""
        started = time.perf_counter()
        headers = upstream_headers(request, key, request_id)
        if isinstance(body, Pieces):  # a form the gateway made: its own type and length
            headers["Content-Type"], headers["Content-Length"] = body.content_type, str(len(body))
        prefix = affinity_key(model, body) if isinstance(body, RequestBody) else None
        async with self._exchange(
            model, request.method, request.path_qs, headers, body, prefix, metrics
        ) as answer:
            if isinstance(answer, Refusal):
                return answer.response(request_id)
            metrics.first_byte.observe(time.perf_counter() - started)
            return await self._relay(request, answer, request_id, metrics)

    async def call(
        self,
        model: Model,
        path: str,
        body: Pieces,
        key: str | None,
        request_id: str,
        metrics: ModelMetrics,
    ) -> tuple[int, bytes]:
        """A request the gateway itself makes to a model (a step of a composed answer): the
        status and the whole answer; raises GatewayError when none could be had."""
        headers = CIMultiDict(
            {
                "Content-Type": body.content_type,
                "Content-Length": str(len(body)),
                "X-Request-Id": request_id,
            }
        )
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with self._exchange(model, "POST", path, headers, body, None, metrics) as answer:
            if isinstance(answer, Refusal):
                return answer.status, answer.body
            try:
                return answer.status, await answer.read()
            except (TimeoutError, aiohttp.ClientError) as error:
                metrics.upstream_error("broken")
                raise UpstreamUnavailable(
                    f"model {model.served_name}: its answer broke off: {error!r}"
                ) from None

    @asynccontextmanager
    async def _exchange(
        self,
        model: Model,
        method: str,
        path: str,
        headers: CIMultiDict[str],
        body: Payload,
        prefix: int | None,
        metrics: ModelMetrics,
    ) -> AsyncIterator[aiohttp.ClientResponse | Refusal]:
        """The first endpoint's answer that is not a refusal, held (with its endpoint's lease)
        while the block reads it; the last refusal when every endpoint refused."""
        name = model.served_name
        request_id = headers.get("X-Request-Id", "")
        tried: set[Endpoint] = set()
        stale = 0
        refusal: Refusal | None = None
        while True:
            endpoint = self.balancer.pick(self.table.endpoints(model), tried, prefix)
            if endpoint is None:
                if refusal is not None:  # every endpoint refused it or could not be reached
                    yield refusal
                    return
                if tried:
                    raise UpstreamUnavailable(
                        f"model {name}: no connection to any of its {len(tried)} endpoints; "
                        "its pods may be restarting, retry shortly"
                    )
                raise not_ready(model, self.config.retry_after_seconds)
            tried.add(endpoint)
            attempt = Attempt()
            url = endpoint.url + path
            with self.balancer.lease(endpoint):
                try:
                    upstream = await self.session.request(
                        method,
                        url,
                        headers=headers,
                        data=body.payload(),
                        timeout=self._timeout,
                        allow_redirects=False,
                        trace_request_ctx=attempt,
                    )
                except aiohttp.ServerDisconnectedError as error:
                    if not attempt.reused or stale >= MAX_STALE:
                        metrics.upstream_error("broken")
                        raise UpstreamUnavailable(
                            f"model {name}: the upstream {endpoint.address} closed the "
                            f"connection without answering: {error}"
                        ) from None
                    # a kept-alive connection closed as it was reused, before any answer: the
                    # server closed it idle (or died handling it, and it is sent once more,
                    # which inference tolerates); again, on a new connection
                    stale += 1
                    tried.discard(endpoint)
                    continue
                except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                    # nothing was sent: another endpoint may take it
                    logger.warning("%s: %s refused the connection: %s", request_id, url, error)
                    metrics.upstream_error("connect")
                    self.balancer.eject(endpoint)
                    continue
                except TimeoutError:
                    metrics.upstream_error("timeout")
                    raise UpstreamTimeout(
                        f"model {name} did not start answering within "
                        f"{self.config.upstream_timeout:g} s (gateway.upstreamTimeoutSeconds)"
                    ) from None
                except aiohttp.ClientError as error:
                    metrics.upstream_error("broken")
                    raise UpstreamUnavailable(
                        f"model {name}: the upstream {endpoint.address} failed: {error}"
                    ) from None
                if UNPROCESSED_HEADER in upstream.headers:
                    # refused before any of it was handled (busy, not ready): another endpoint
                    # may take it; this answer is kept for when none does
                    try:
                        refusal = Refusal(upstream, await upstream.read())
                    except (TimeoutError, aiohttp.ClientError):
                        pass
                    finally:
                        upstream.release()
                    metrics.upstream_error("refused")
                    continue
                try:
                    yield upstream
                    return
                finally:
                    upstream.close()

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        request_id: str,
        metrics: ModelMetrics,
    ) -> web.StreamResponse:
        """Writes the upstream's answer to the client chunk by chunk, as it arrives."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for header, value in upstream.headers.items():
            if header.lower() not in HOP_BY_HOP:
                response.headers.add(header, value)
        response.headers["X-Request-Id"] = request_id
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            async for chunk in _chunks(upstream):
                await response.write(chunk)
        except (TimeoutError, aiohttp.ClientError) as error:
            # the answer has started: the status cannot change; cut the client's answer short
            metrics.upstream_error("broken")
            logger.warning("%s: the upstream broke off its answer: %r", request_id, error)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response


async def _chunks(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in upstream.content.iter_any():
        yield chunk
