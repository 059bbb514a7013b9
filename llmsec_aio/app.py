"""`create_app(config, *, clock)`: the aiohttp application, its middleware, routes and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from . import audit, handlers, sessions
from .config import Config
from .errors import BadRequest, GatewayError, MethodNotAllowed, NotFound, PayloadTooLarge
from .handlers import BCRYPT_EXECUTOR, METRICS, RUNTIME, SHARED
from .metrics import Metrics
from .runtime import Runtime
from .shared import open_shared_state
from .tokens import Clock

log = logging.getLogger(__name__)

# Form logins carry a username and a password; nothing legitimate is larger.
MAX_LOGIN_BODY = 16 * 1024
# One header per few bytes of NGINX's header buffers: never fewer than NGINX lets through.
MAX_HEADERS = 32768

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HTTP_ERRORS: dict[int, type[GatewayError]] = {
    404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge,
}


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every answer by route name (outermost, so it sees the final status)."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.name or "other"
        request.app[METRICS].observe(route, status, time.perf_counter() - start)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One JSON error shape for every failure; no traceback ever reaches a client."""
    try:
        return await handler(request)
    except GatewayError as exc:
        error: GatewayError = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _HTTP_ERRORS.get(exc.status, BadRequest)()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = GatewayError()
    return web.json_response(error.to_json(), status=error.status,
                             headers={"Cache-Control": "no-store", **error.headers})


class _RedactParserErrors(logging.Filter):
    """aiohttp logs a request its parser refuses with the offending header line, which may hold
    a token or a Basic credential: keep the kind of error, drop the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused a malformed request: %s %s", (type(exc).__name__, exc.code)
            record.exc_info = record.exc_text = None
        return True


_REDACTION = _RedactParserErrors()


def server_limits(config: Config) -> dict[str, Any]:
    """aiohttp parser limits, raised to at least what the shipped NGINX config lets through (C31)."""
    size = config.server.max_header_size
    return {"max_line_size": size, "max_field_size": size, "max_headers": MAX_HEADERS}


def _bcrypt_workers() -> int:
    # Leave a core for the event loop so validation stays fast while logins saturate the rest.
    return max(1, (os.cpu_count() or 2) - 1)


async def _shared_state(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    async with open_shared_state(runtime.current.config, runtime.clock) as state:
        app[SHARED] = state
        yield


def _lower_thread_priority() -> None:
    """bcrypt threads run at the lowest priority (Linux sets it per thread), so a burst of logins
    never delays the event loop's /validate answers; elsewhere this is a no-op."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


async def _bcrypt_executor(app: web.Application) -> AsyncIterator[None]:
    executor = ThreadPoolExecutor(max_workers=_bcrypt_workers(), thread_name_prefix="bcrypt",
                                  initializer=_lower_thread_priority)
    app[BCRYPT_EXECUTOR] = executor
    yield
    executor.shutdown(wait=False, cancel_futures=True)


def create_app(config: Config, *, clock: Clock = time.time,
               runtime: Runtime | None = None) -> web.Application:
    """Build the gateway. Raises ConfigError (at startup) when keys or users cannot be loaded."""
    server_log = logging.getLogger("aiohttp.server")
    if _REDACTION not in server_log.filters:
        server_log.addFilter(_REDACTION)
    app = web.Application(middlewares=[metrics_middleware, error_middleware],
                          client_max_size=MAX_LOGIN_BODY)
    app[RUNTIME] = runtime = runtime or Runtime.from_config(config, clock)
    app[METRICS] = metrics = Metrics(runtime, lambda: app.get(SHARED))
    runtime.on_reload.append(lambda o: metrics.reloads.labels("success" if o.ok else "failure").inc())
    runtime.on_reload.append(lambda o: audit.event("reload", ok=o.ok, trigger=o.trigger, message=o.message))
    app.cleanup_ctx.append(_bcrypt_executor)
    app.cleanup_ctx.append(_shared_state)
    routes = app.router
    routes.add_post("/llm/login", handlers.llm_login, name="llm_login")
    routes.add_get("/login", sessions.login_page, name="login_page")
    routes.add_post("/login", sessions.login_form, name="login")
    routes.add_get("/me", sessions.me, name="me")
    routes.add_route("*", "/validate", handlers.validate, name="validate")
    routes.add_post("/logout", sessions.logout, name="logout")
    routes.add_post("/admin/revoke", handlers.admin_revoke, name="admin_revoke")
    routes.add_get("/.well-known/jwks.json", handlers.jwks, name="jwks")
    routes.add_get("/.well-known/openid-configuration", handlers.openid_configuration,
                   name="openid_configuration")
    routes.add_get("/metrics", handlers.metrics_endpoint, name="metrics")
    routes.add_get("/healthz", handlers.healthz, name="healthz")
    routes.add_get("/readyz", handlers.readyz, name="readyz")
    return app
