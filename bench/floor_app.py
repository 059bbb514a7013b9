"""Floor A: the cheapest possible aiohttp auth_request target (200, or 401 with X-Bench-Deny)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util

from aiohttp import web


async def validate(request: web.Request) -> web.Response:
    """Allow everything, except requests the bench marks to prove NGINX really asks us."""
    if request.headers.get("X-Bench-Deny"):
        return web.Response(status=401)
    return web.Response(status=200)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/validate", validate)
    return app


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def new_loop() -> asyncio.AbstractEventLoop:
    """The loop the gateway runs on (`llmsec_aio.server.run_event_loop`): uvloop when installed."""
    if uvloop_available():
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None,
                loop=new_loop())


if __name__ == "__main__":
    main()
