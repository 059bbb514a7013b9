"""Run an aiohttp Application on a free loopback port for the duration of a test."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class RunningApp:
    """Where a started app listens."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@asynccontextmanager
async def running_app(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    handler_args: Mapping[str, Any] | None = None,
    shutdown_timeout: float = 1.0,
) -> AsyncIterator[RunningApp]:
    """Serve `app` on host:port (0 = kernel-chosen free port) until the block exits.

    Port 0 avoids the free_port() race entirely: the kernel picks the port and
    we read it back from the bound socket. `handler_args` are aiohttp
    RequestHandler arguments, e.g. {"max_field_size": 65536} to mirror the
    gateway's header limits. A short shutdown_timeout keeps teardown fast when a test
    leaves a streaming response hanging.
    """
    kwargs = dict(handler_args or {})
    # AppRunner forwards extra kwargs to RequestHandler, and on a TypeError
    # aiohttp silently drops ALL of them (one warning log) -- the limits would
    # quietly fall back to 8190 bytes. Reject unknown names up front instead.
    # (AppRunner(handler_args=...) is itself such an unknown name.)
    accepted = inspect.signature(web.RequestHandler.__init__).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"unknown aiohttp RequestHandler arguments: {unknown}")
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None, **kwargs)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield RunningApp(host=host, port=bound_port)
    finally:
        await runner.cleanup()
