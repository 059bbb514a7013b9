"""Smoke test: nginx.conf.example + stub LLM + fake gateway wired through the e2e harness."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support.appserver import RunningApp, running_app
from tests.support.nginx import NginxInstance, running_nginx
from tests.support.stub_llm import RecordedRequest, StubLLM

pytestmark = pytest.mark.e2e

# Mirrors the real gateway's header limits (64 KiB per field), so nginx's
# 32k large_client_header_buffers is what rejects oversized headers.
GATEWAY_HANDLER_ARGS = {"max_field_size": 65536, "max_line_size": 65536, "max_headers": 32768}


class FakeGateway:
    """Stand-in for llmsec-aio: /validate accepts only `Bearer good`, records everything."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        # Any method/path, so a request nginx should not forward is still
        # recorded (and the test can assert it never came).
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
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
        if request.path != "/validate":
            return web.json_response({"path": request.path})
        if request.headers.get("Authorization") == "Bearer good":
            return web.Response(
                status=200,
                headers={"X-Auth-Request-User": "alice", "X-Auth-Request-Role": "agent_fast"},
            )
        return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[FakeGateway, RunningApp]]:
    fake = FakeGateway()
    async with running_app(fake.make_app(), handler_args=GATEWAY_HANDLER_ARGS) as served:
        yield fake, served


@pytest.fixture
def nginx(tmp_path: Path, stub: StubLLM, gateway: tuple[FakeGateway, RunningApp]) -> Iterator[NginxInstance]:
    with running_nginx(tmp_path, gateway_port=gateway[1].port, llm_port=stub.port) as ngx:
        yield ngx


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


GOOD = {"Authorization": "Bearer good"}
CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]}


async def test_authorised_chat_reaches_stub_with_identity_and_without_credentials(
    nginx: NginxInstance,
    stub: StubLLM,
    gateway: tuple[FakeGateway, RunningApp],
    http: aiohttp.ClientSession,
) -> None:
    fake, _ = gateway
    headers = {
        **GOOD,
        # Forgery attempts: must be overwritten / dropped by nginx.
        "X-Auth-User": "mallory",
        "X-Auth-Role": "admin",
        "X-Forwarded-For": "203.0.113.9",
        "Cookie": "sid=secret",
    }
    async with http.post(f"{nginx.base_url}/llm/chat/completions", json=CHAT, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        data = await resp.json()
    assert data["choices"][0]["message"]["content"] == "stub reply"

    [hit] = stub.requests_to("/v1/chat/completions")
    assert hit.method == "POST"
    assert hit.json() == CHAT
    assert hit.headers.getall("X-Auth-User") == ["alice"]
    assert hit.headers.getall("X-Auth-Role") == ["agent_fast"]
    assert "Authorization" not in hit.headers
    assert "Cookie" not in hit.headers
    assert hit.headers.getall("X-Forwarded-For") == ["127.0.0.1"]
    # Ollama's DNS-rebinding guard accepts only local Host names.
    assert hit.headers["Host"] == "localhost"

    [check] = fake.requests_to("/validate")
    assert check.headers["X-Forwarded-For"] == "127.0.0.1"
    assert check.headers["X-Real-IP"] == "127.0.0.1"

    async with http.get(f"{nginx.base_url}/llm/models", headers=GOOD) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"][0]["id"] == "stub-model"
    assert [r.path for r in stub.requests] == ["/v1/chat/completions", "/v1/models"]
    assert "/llm/chat/completions" in nginx.access_log_text()


@pytest.mark.parametrize("auth", [None, "Bearer bad"])
async def test_unauthorised_gets_401_and_stub_is_never_hit(
    nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    async with http.post(f"{nginx.base_url}/llm/chat/completions", json=CHAT, headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers.get("WWW-Authenticate") == 'Bearer error="invalid_token"'
    assert stub.requests == []


async def test_validate_subrequest_has_no_body_and_original_request_info(
    nginx: NginxInstance,
    gateway: tuple[FakeGateway, RunningApp],
    http: aiohttp.ClientSession,
) -> None:
    fake, _ = gateway
    async with http.post(f"{nginx.base_url}/llm/chat/completions?x=1", json=CHAT, headers=GOOD) as resp:
        assert resp.status == 200
    [check] = fake.requests_to("/validate")
    assert check.body == b""
    assert check.headers.get("Content-Length", "0") == "0"
    assert "Transfer-Encoding" not in check.headers
    assert check.method == "GET"
    assert check.headers["X-Original-URI"] == "/llm/chat/completions?x=1"
    assert check.headers["X-Original-Method"] == "POST"
    # The client's credentials must reach the gateway, that is its whole job.
    assert check.headers["Authorization"] == "Bearer good"


async def test_streaming_is_not_buffered(
    nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession
) -> None:
    await _assert_stream_unbuffered(nginx, stub, http)


async def test_streaming_is_not_buffered_even_with_gzip_enabled(
    tmp_path: Path,
    stub: StubLLM,
    gateway: tuple[FakeGateway, RunningApp],
    http: aiohttp.ClientSession,
) -> None:
    # nginx happens to forward small SSE chunks promptly even when buffered,
    # so the plain test cannot tell `proxy_buffering off` is there. With gzip
    # on (an easy global change for an operator), buffering WOULD hold the
    # whole stream back; this pins the directive.
    gzip = "server_tokens off; gzip on; gzip_types text/event-stream; gzip_min_length 0;"
    with running_nginx(
        tmp_path,
        gateway_port=gateway[1].port,
        llm_port=stub.port,
        extra_substitutions={"server_tokens off;": gzip},
    ) as ngx:
        await _assert_stream_unbuffered(ngx, stub, http)


async def _assert_stream_unbuffered(nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession) -> None:
    stub.stream_events = 5
    stub.stream_interval = 0.3
    arrivals: list[float] = []
    chunks: list[dict[str, object]] = []
    done = False
    start = time.monotonic()
    async with http.post(
        f"{nginx.base_url}/llm/chat/completions", json={**CHAT, "stream": True}, headers=GOOD
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            arrivals.append(time.monotonic() - start)
            chunks.append(json.loads(line.removeprefix("data: ")))
    total = time.monotonic() - start
    assert done
    assert len(chunks) == 5
    assert chunks[0]["object"] == "chat.completion.chunk"
    # Stub sends at t~0, 0.3, ..., 1.2 s. Buffered, everything would arrive
    # together at the end.
    assert arrivals[0] < total / 2, (arrivals, total)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.15 < g < 1.0 for g in gaps), gaps


async def test_gateway_internals_are_not_public(
    nginx: NginxInstance,
    stub: StubLLM,
    gateway: tuple[FakeGateway, RunningApp],
    http: aiohttp.ClientSession,
) -> None:
    fake, _ = gateway
    for path in ("/validate", "/_llmsec_validate", "/metrics", "/", "/v1/models"):
        async with http.get(f"{nginx.base_url}{path}", headers=GOOD) as resp:
            assert resp.status == 404, path
    assert fake.requests == []
    assert stub.requests == []


async def test_public_gateway_locations_are_proxied(
    nginx: NginxInstance,
    gateway: tuple[FakeGateway, RunningApp],
    http: aiohttp.ClientSession,
) -> None:
    fake, _ = gateway
    paths = ["/llm/login", "/login", "/logout", "/me", "/.well-known/jwks.json"]
    for path in paths:
        async with http.get(f"{nginx.base_url}{path}", headers={"X-Forwarded-For": "203.0.113.9"}) as resp:
            assert resp.status == 200, path
    assert [r.path for r in fake.requests] == paths
    for r in fake.requests:
        assert r.headers.getall("X-Forwarded-For") == ["127.0.0.1"]
        assert r.headers["X-Forwarded-Proto"] == "http"


async def test_header_size_limits(
    nginx: NginxInstance,
    stub: StubLLM,
    gateway: tuple[FakeGateway, RunningApp],
    http: aiohttp.ClientSession,
) -> None:
    fake, _ = gateway
    cookie_12k = "sid=" + "a" * (12 * 1024)
    async with http.get(f"{nginx.base_url}/llm/models", headers={**GOOD, "Cookie": cookie_12k}) as resp:
        assert resp.status == 200, await resp.text()
    [check] = fake.requests_to("/validate")
    assert check.headers["Cookie"] == cookie_12k
    assert "Cookie" not in stub.requests_to("/v1/models")[0].headers

    fake.requests.clear()
    stub.clear()
    cookie_40k = "sid=" + "a" * (40 * 1024)
    async with http.get(f"{nginx.base_url}/llm/models", headers={**GOOD, "Cookie": cookie_40k}) as resp:
        # nginx itself refuses it ("Request Header Or Cookie Too Large").
        assert resp.status == 400
    assert fake.requests == []
    assert stub.requests == []


async def test_body_size_limit(nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession) -> None:
    # 3 MiB is above client_body_buffer_size, so nginx spools it to a temp
    # file: this also proves the workers can write under the test prefix.
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (3 * 1024 * 1024)}]}
    # BytesIO: aiohttp warns on >1 MiB raw bodies (filterwarnings=error).
    async with http.post(
        f"{nginx.base_url}/llm/chat/completions",
        data=io.BytesIO(json.dumps(big).encode()),
        headers={**GOOD, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    assert stub.requests_to("/v1/chat/completions")[0].json() == big

    stub.clear()
    huge = io.BytesIO(b"x" * (17 * 1024 * 1024))
    async with http.post(
        f"{nginx.base_url}/llm/chat/completions",
        data=huge,
        headers={**GOOD, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
    assert stub.requests == []
