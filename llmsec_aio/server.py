"""`serve`: run the app with its reload triggers, pid file and status file until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from .app import create_app, server_limits
from .config import Config
from .handlers import METRICS, RUNTIME, metrics_response
from .reloader import (
    PID_FILE,
    STATUS_FILE,
    live_pid,
    reload_quietly,
    rotate_on_schedule,
    status_document,
    watch,
    write_json_atomically,
)

log = logging.getLogger(__name__)


async def _metrics_listener(app: web.Application, config: Config,
                            worker: int | None) -> web.AppRunner | None:
    """`metrics.port`: /metrics without a token, for a Prometheus on this host (loopback by
    default). Worker n of `--workers` listens on port + n: each has its own counters."""
    if not config.metrics.port:
        return None
    metrics = app[METRICS]

    async def scrape(request: web.Request) -> web.Response:
        return metrics_response(metrics)

    side = web.Application()
    side.router.add_get("/metrics", scrape)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    port = config.metrics.port + (worker or 0)
    await web.TCPSite(runner, config.metrics.host, port, reuse_address=True).start()
    log.info("metrics on http://%s:%d/metrics", config.metrics.host, port)
    return runner


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when it is installed (it answers /validate about 15% faster here), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _raise_file_limit() -> None:
    """Each NGINX subrequest may hold a connection: lift the soft open-files limit (often 1024)
    to the hard one, so a burst of a few thousand is not refused for want of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(config: Config, host: str, port: int, worker: int | None = None) -> None:
    """One server process. As worker `n` of a supervisor (`serve --workers N`), it shares the
    port (SO_REUSEPORT) and leaves the pid file to the supervisor; worker 0 writes the status
    file and runs scheduled rotations, so they happen once."""
    _raise_file_limit()
    app = create_app(config)
    runtime = app[RUNTIME]
    runner = web.AppRunner(app, access_log=None, **server_limits(config))
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=worker is not None)
    await site.start()
    state = config.server.state_dir
    pid_file, status_file = state / PID_FILE, state / STATUS_FILE
    state.mkdir(parents=True, exist_ok=True)
    owner = live_pid(pid_file)
    if worker is None and owner in (None, os.getpid()):
        pid_file.write_text(f"{os.getpid()}\n")
    elif worker is None:
        log.warning("%s names a running server (pid %d); `llmsec-aio reload` and `status` keep "
                    "talking to that one", pid_file, owner)
    leader = worker == 0 or (worker is None and live_pid(pid_file) == os.getpid())

    def publish_status() -> None:
        if not leader:
            return  # another process owns this state folder and its status file
        try:
            write_json_atomically(status_file, status_document(runtime, host, port))
        except OSError as exc:
            log.warning("cannot write %s: %s", status_file, exc)

    metrics_runner = await _metrics_listener(app, config, worker)
    publish_status()
    log.info("llmsec-aio listening on http://%s:%d (pid %d)", host, port, os.getpid())

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    tasks: set[asyncio.Task[object]] = set()

    def spawn(coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime.on_reload.append(lambda outcome: publish_status())
    loop.add_signal_handler(signal.SIGHUP, lambda: spawn(reload_quietly(runtime, "SIGHUP")))
    if config.server.watch_interval:
        spawn(watch(runtime, config.server.watch_interval))
    if leader:
        spawn(rotate_on_schedule(runtime))
    try:
        await stop.wait()
    finally:
        for task in list(tasks):
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runner.cleanup()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        with contextlib.suppress(OSError):
            if worker is None and pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
