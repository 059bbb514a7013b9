"""OpenAI-compatible stub LLM server that records every request it receives."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support.appserver import running_app

STUB_MODEL = "stub-model"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stub saw it (i.e. after nginx rewrote it)."""

    method: str
    # Path without query string, e.g. "/v1/chat/completions".
    path: str
    # Raw path including query string, as sent on the request line.
    path_qs: str
    # Case-insensitive on purpose: `"Authorization" in r.headers` must be a
    # real check whatever case the proxy used; a plain dict with normalised
    # keys would make negative assertions pass vacuously.
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class StubLLM:
    """Handle a test uses to inspect and steer the running stub."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    # Streaming shape; per-request override with ?stream_events=N&stream_interval=S.
    stream_events: int = 10
    stream_interval: float = 0.05

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        self.requests.clear()

    # -- app -------------------------------------------------------------

    def make_app(self) -> web.Application:
        # aiohttp's default 1 MiB body limit would answer big prompts with its
        # own 413; lift it so nginx's client_max_body_size is the limit tested.
        app = web.Application(middlewares=[self._record], client_max_size=256 * 1024**2)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        # Recorded in a middleware so requests to unknown paths (404) are
        # visible too: "the stub was never hit" must mean never, not "no route".
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                path_qs=request.path_qs,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
            )
        )
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": STUB_MODEL, "object": "model", "created": 0, "owned_by": "stub"}],
            }
        )

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        payload = await _json_body(request)
        model = str(payload.get("model", STUB_MODEL))
        if payload.get("stream"):
            return await self._stream(request, model, chat=True)
        return web.json_response(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "stub reply"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        payload = await _json_body(request)
        model = str(payload.get("model", STUB_MODEL))
        if payload.get("stream"):
            return await self._stream(request, model, chat=False)
        return web.json_response(
            {
                "id": "cmpl-stub",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "text": "stub reply", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        )

    async def _embeddings(self, request: web.Request) -> web.Response:
        payload = await _json_body(request)
        raw_input = payload.get("input", "")
        inputs = raw_input if isinstance(raw_input, list) else [raw_input]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.0, 0.5, 1.0]}
                    for i in range(len(inputs))
                ],
                "model": str(payload.get("model", STUB_MODEL)),
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            }
        )

    async def _stream(self, request: web.Request, model: str, *, chat: bool) -> web.StreamResponse:
        events = int(request.query.get("stream_events", self.stream_events))
        interval = float(request.query.get("stream_interval", self.stream_interval))
        # Deliberately NO `X-Accel-Buffering: no`: that header would switch
        # nginx buffering off from the upstream side and hide a config that
        # forgot `proxy_buffering off`.
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        created = int(time.time())
        for i in range(events):
            if i:
                await asyncio.sleep(interval)
            chunk: dict[str, Any]
            if chat:
                delta: dict[str, str] = {"content": f"tok{i} "}
                if i == 0:
                    delta["role"] = "assistant"
                chunk = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "finish_reason": "stop" if i == events - 1 else None,
                        }
                    ],
                }
            else:
                chunk = {
                    "id": "cmpl-stub",
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "text": f"tok{i} ",
                            "finish_reason": "stop" if i == events - 1 else None,
                        }
                    ],
                }
            # write() hands each event to the transport immediately (one
            # chunk per event), so any batching observed downstream is the
            # proxy's doing, not ours.
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        payload = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise web.HTTPBadRequest(text="JSON body must be an object")
    return payload


@asynccontextmanager
async def running_stub(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[StubLLM]:
    """Start a StubLLM on `port` (0: a kernel-chosen free port) of `host`; stop it on exit."""
    stub = StubLLM(host=host)
    async with running_app(stub.make_app(), host=host, port=port) as served:
        stub.port = served.port
        yield stub
