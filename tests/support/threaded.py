"""The real gateway (and the stub LLM) served from background threads, for synchronous test code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llmsec_aio.app import create_app, server_limits
from llmsec_aio.config import Config
from llmsec_aio.tokens import Clock
from tests.support.appserver import RunningApp, running_app
from tests.support.stub_llm import StubLLM


@dataclass(frozen=True)
class ThreadedApp:
    app: web.Application
    served: RunningApp

    @property
    def host(self) -> str:
        return self.served.host

    @property
    def port(self) -> int:
        return self.served.port

    @property
    def base_url(self) -> str:
        return self.served.base_url


@contextmanager
def app_in_thread(make_app: Callable[[], web.Application],
                  handler_args: Mapping[str, Any] | None = None,
                  startup_timeout: float = 20.0) -> Iterator[ThreadedApp]:
    """Serve the app `make_app` builds on a free loopback port from a daemon thread.

    Sync test code (requests-based schemathesis, hypothesis's @given) cannot share pytest's event
    loop, so the app gets a loop of its own, and is built inside it, until the block exits.
    """
    ready: list[ThreadedApp] = []
    failure: list[BaseException] = []
    started = threading.Event()
    stop_handle: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        stop_handle.append((asyncio.get_running_loop(), stop))
        app = make_app()
        async with running_app(app, handler_args=handler_args) as served:
            ready.append(ThreadedApp(app, served))
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the test thread below
            failure.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=run, name="app-in-thread", daemon=True)
    thread.start()
    started.wait(startup_timeout)
    if not ready:
        raise RuntimeError(f"app thread did not start: {failure!r}")
    try:
        yield ready[0]
    finally:
        loop, stop = stop_handle[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        if failure:
            raise failure[0]


@contextmanager
def gateway_in_thread(config: Config, clock: Clock | None = None) -> Iterator[ThreadedApp]:
    """The real create_app with the gateway's own parser limits (as `serve` runs it)."""

    def make() -> web.Application:
        return create_app(config) if clock is None else create_app(config, clock=clock)

    with app_in_thread(make, server_limits(config)) as gateway:
        yield gateway


@contextmanager
def stub_in_thread() -> Iterator[ThreadedApp]:
    """The OpenAI-compatible stub LLM the other end-to-end tests use."""
    with app_in_thread(lambda: StubLLM().make_app()) as stub:
        yield stub
