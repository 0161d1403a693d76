"""A vLLM-compatible stand-in for the gateway's tests: OpenAI chat completions, plain and
streamed (SSE, one chunk per token), requests held until /release (X-Test-Hold) or delayed
(X-Test-Delay), a kept-alive connection closed when reused (X-Test-Close-Reused), a refusal
as a busy Berth model server answers (X-Test-Busy: the stand-in's name), chunks paced by
X-Test-Chunk-Seconds, a cookie set on request
(X-Test-Set-Cookie), with what it saw at /stats; embeddings and transcriptions read any body and
answer its size. Run as its own process:
`python upstream.py HOST PORT NAME [API_KEY]`.

It replaces vLLM only where the gateway's behaviour is under test (streaming, cancellation,
balancing, a replica killed): vLLM's CPU build takes minutes to start, and these tests need
several replicas whose pace they control.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aiohttp import web
from berth_operator.api.metadata import UNPROCESSED_HEADER

CHUNK_SECONDS = 0.2


class StandIn:
    def __init__(self, name: str, api_key: str | None) -> None:
        self.name = name
        self.api_key = api_key
        self.held = asyncio.Event()
        self.stats: dict[str, Any] = {
            "served": 0,
            "in_flight": 0,
            "max_in_flight": 0,
            "cancelled": 0,
            "chunks_sent": 0,
            "streams_done": 0,
            "last_headers": {},
            "closed_reused": 0,
            "refused": 0,
        }
        self._requests_on: dict[int, int] = {}

    def close_if_reused(self, request: web.Request) -> None:
        """X-Test-Close-Reused: a request on a kept-alive connection finds it closed, as when a
        server closes an idle connection just as the client reuses it."""
        transport = request.transport
        assert transport is not None
        seen = self._requests_on.get(id(transport), 0)
        self._requests_on[id(transport)] = seen + 1
        if seen and request.headers.get("X-Test-Close-Reused"):
            self.stats["closed_reused"] += 1
            transport.close()
            raise asyncio.CancelledError

    def refuse_if_busy(self, request: web.Request) -> None:
        """X-Test-Busy naming this stand-in: 503 before the body is read, marked unprocessed, as
        a Berth model server holding all the requests it takes answers."""
        if request.headers.get("X-Test-Busy") == self.name:
            self.stats["refused"] += 1
            error = {"error": {"type": "ServerBusy", "message": f"{self.name} is busy"}}
            raise web.HTTPServiceUnavailable(
                text=json.dumps(error),
                content_type="application/json",
                headers={"Retry-After": "10", UNPROCESSED_HEADER: "ServerBusy"},
            )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.close_if_reused(request)
        self.refuse_if_busy(request)
        self.stats["last_headers"] = {k.lower(): v for k, v in request.headers.items()}
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        body = await request.json()
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            await asyncio.sleep(float(request.headers.get("X-Test-Delay", "0")))
            if request.headers.get("X-Test-Hold"):
                await self.held.wait()
            tokens = int(body.get("max_tokens") or 5)
            if body.get("stream"):
                pace = float(request.headers.get("X-Test-Chunk-Seconds", CHUNK_SECONDS))
                return await self.stream(request, body["model"], tokens, pace)
            self.stats["served"] += 1
            answer = web.json_response(self.completion(body["model"], tokens))
            if cookie := request.headers.get("X-Test-Set-Cookie"):
                answer.set_cookie("session", cookie)
            return answer
        except asyncio.CancelledError:
            self.stats["cancelled"] += 1
            raise
        finally:
            self.stats["in_flight"] -= 1

    def completion(self, model: str, tokens: int) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(["tok"] * tokens)},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
        }

    async def stream(
        self, request: web.Request, model: str, tokens: int, pace: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(tokens):
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": self.name,
                "choices": [{"index": 0, "delta": {"content": f"t{index}"}, "finish_reason": None}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.stats["chunks_sent"] += 1
            await asyncio.sleep(pace)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.stats["served"] += 1
        self.stats["streams_done"] += 1
        return response

    async def release(self, request: web.Request) -> web.Response:
        """Lets every held request finish; later ones are held again."""
        self.held.set()
        self.held = asyncio.Event()
        return web.json_response(self.stats)

    async def sink(self, request: web.Request) -> web.Response:
        """Reads a body of any size, counting its bytes, and answers how many (uploads and
        embeddings inputs, for the gateway's memory benchmark)."""
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        self.stats["served"] += 1
        return web.json_response({"object": "sink", "bytes": size})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.update(served=0, max_in_flight=0, cancelled=0, chunks_sent=0, streams_done=0)
        return web.json_response(self.stats)


async def main(host: str, port: int, name: str, api_key: str | None) -> None:
    stand_in = StandIn(name, api_key)
    app = web.Application()
    app.add_routes(
        [
            web.post("/v1/chat/completions", stand_in.chat),
            web.post("/v1/embeddings", stand_in.sink),
            web.post("/v1/audio/transcriptions", stand_in.sink),
            web.get("/stats", stand_in.get_stats),
            web.post("/reset", stand_in.reset),
            web.post("/release", stand_in.release),
        ]
    )
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], (sys.argv[4:] or [None])[0]))
