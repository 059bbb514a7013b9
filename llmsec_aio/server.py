"""`serve`: run the app with its reload triggers, pid file and status file until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from .app import create_app, server_limits
from .config import Config
from .handlers import RUNTIME
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


async def serve(config: Config, host: str, port: int) -> None:
    app = create_app(config)
    runtime = app[RUNTIME]
    runner = web.AppRunner(app, access_log=None, **server_limits(config))
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    state = config.server.state_dir
    pid_file, status_file = state / PID_FILE, state / STATUS_FILE
    state.mkdir(parents=True, exist_ok=True)
    owner = live_pid(pid_file)
    if owner is None or owner == os.getpid():
        pid_file.write_text(f"{os.getpid()}\n")
    else:
        log.warning("%s names a running server (pid %d); `llmsec-aio reload` and `status` keep "
                    "talking to that one", pid_file, owner)

    def publish_status() -> None:
        if live_pid(pid_file) != os.getpid():
            return  # another server owns this state folder and its status file
        try:
            write_json_atomically(status_file, status_document(runtime, host, port))
        except OSError as exc:
            log.warning("cannot write %s: %s", status_file, exc)

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
    loop.add_signal_handler(signal.SIGHUP, lambda: spawn(reload_quietly(runtime, "SIGHUP", publish_status)))
    if config.server.watch_interval:
        spawn(watch(runtime, config.server.watch_interval, publish_status))
    spawn(rotate_on_schedule(runtime, publish_status))
    try:
        await stop.wait()
    finally:
        for task in list(tasks):
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runner.cleanup()
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
