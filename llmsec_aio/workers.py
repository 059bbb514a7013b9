"""`serve --workers N`: a small supervisor that runs N server processes sharing one port
(SO_REUSEPORT), forwards SIGHUP and SIGTERM to them, and restarts one that dies."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from .config import Config
from .reloader import PID_FILE, live_pid

log = logging.getLogger(__name__)

WORKER_ENV = "LLMSEC_WORKER"


def _start(config_path: Path, host: str, port: int, index: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmsec_aio", "--config", str(config_path), "serve",
         "--host", host, "--port", str(port)],
        env={**os.environ, WORKER_ENV: str(index)},
    )


def supervise(config: Config, host: str, port: int, workers: int) -> int:
    pid_file = config.server.state_dir / PID_FILE
    config.server.state_dir.mkdir(parents=True, exist_ok=True)
    owner = live_pid(pid_file)
    if owner is not None and owner != os.getpid():
        log.error("%s names a running server (pid %d); not starting a second one", pid_file, owner)
        return 2
    pid_file.write_text(f"{os.getpid()}\n")
    children = [_start(config.path, host, port, i) for i in range(workers)]
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGTERM, signal.SIGINT)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    log.info("supervising %d workers on http://%s:%d (pid %d)", workers, host, port, os.getpid())
    try:
        while not stopping:
            time.sleep(0.2)
            for i, child in enumerate(children):
                if child.poll() is not None and not stopping:
                    log.error("worker %d exited with %s; starting it again", i, child.returncode)
                    time.sleep(0.5)  # do not spin on a worker that cannot start
                    children[i] = _start(config.path, host, port, i)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        return 0
    finally:
        if pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()
