"""C34: SSE completions stream through NGX unbuffered, with one /validate per request."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import basic
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import remint
from tests.support.livestack import Stack, http_session, nginx_stack

pytestmark = pytest.mark.e2e

EVENTS = 10
INTERVAL = 1.0
CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@dataclass(frozen=True)
class Streamed:
    status: int
    arrivals: list[float]  # seconds after the request was sent, one per data event
    done: bool  # the final `data: [DONE]` arrived


async def stream(http: aiohttp.ClientSession, stack: Stack, token: str,
                 on_event: Callable[[int], None] | None = None) -> Streamed:
    arrivals: list[float] = []
    done = False
    start = time.monotonic()
    async with http.post(f"{stack.base_url}/llm/chat/completions", json=CHAT,
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        if resp.status != 200:
            await resp.read()
            return Streamed(resp.status, arrivals, done)
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                arrivals.append(time.monotonic() - start)
                assert json.loads(line.removeprefix("data: "))["object"] == "chat.completion.chunk"
                if on_event is not None:
                    on_event(len(arrivals) - 1)
        return Streamed(resp.status, arrivals, done)


def assert_unbuffered(result: Streamed) -> None:
    assert result.status == 200
    assert result.done
    assert len(result.arrivals) == EVENTS
    gaps = [b - a for a, b in itertools.pairwise(result.arrivals)]
    print("C34 first event after", f"{result.arrivals[0]:.3f}s; gaps", [f"{g:.3f}" for g in gaps])
    assert result.arrivals[0] < 1.5, result.arrivals
    assert all(0.5 <= g <= 1.6 for g in gaps), gaps


async def agent_token(http: aiohttp.ClientSession, stack: Stack) -> str:
    async with http.post(f"{stack.gateway.base_url}/llm/login",
                         headers={"Authorization": basic("agent1", "agent1-pw")}) as resp:
        assert resp.status == 200
        token: str = (await resp.json())["token"]
    return token


# nginx forwards small SSE chunks promptly even when buffering, so the plain run alone cannot
# tell `proxy_buffering off` is there; with gzip on globally, buffering WOULD hold the stream.
GZIP = {"server_tokens off;": "server_tokens off; gzip on; gzip_types text/event-stream; gzip_min_length 0;"}


@pytest.mark.parametrize("conf", ["shipped", "shipped-plus-gzip"])
async def test_stream_is_not_buffered_and_validated_once(conf: str, tmp_path: Path, deployment: Deployment,
                                                         clock: FakeClock) -> None:
    extra = GZIP if conf == "shipped-plus-gzip" else None
    async with (nginx_stack(tmp_path, deployment.config(), clock, extra_substitutions=extra) as stack,
                http_session() as http):
        stack.stub.stream_events, stack.stub.stream_interval = EVENTS, INTERVAL
        v = await agent_token(http, stack)
        assert_unbuffered(await stream(http, stack, v))
        # Exactly one auth subrequest for the whole streaming request.
        assert stack.recorder.statuses == [200]
        assert len(stack.stub.requests_to("/v1/chat/completions")) == 1


async def test_stream_outlives_its_token_but_a_new_request_does_not(
    tmp_path: Path, deployment: Deployment, clock: FakeClock,
) -> None:
    leeway = int(deployment.settings["leeway"])
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, http_session() as http:
        stack.stub.stream_events, stack.stub.stream_interval = EVENTS, INTERVAL
        v = await agent_token(http, stack)
        # A token that expires 3 s into the stream (same key, claims of V, exp moved).
        token = remint(v, deployment.ed, claims={"exp": int(clock.now) + 3})

        def expire(index: int) -> None:
            if index == 3:  # ~3 s in: move the gateway's clock past exp + leeway
                clock.advance(3 + leeway + 1)

        # Auth is checked at request start only: the running stream is not cut off.
        assert_unbuffered(await stream(http, stack, token, on_event=expire))
        assert stack.recorder.statuses == [200]
        # A new request with the now expired token is refused and never reaches the LLM.
        again = await stream(http, stack, token)
        assert again.status == 401
        assert stack.recorder.statuses == [200, 401]
        assert len(stack.stub.requests_to("/v1/chat/completions")) == 1
