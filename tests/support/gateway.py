"""Run the real `llmsec-aio serve` as a child process on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port, wait_for_port


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def wait_for_log(self, text: str, count: int = 1, within: float = 10.0) -> None:
        """Wait until `text` has been logged `count` times; fail if that takes `within` s."""
        start = time.monotonic()
        while self.log_text().count(text) < count:
            assert time.monotonic() - start < within, self.log_text()[-3000:]
            await asyncio.sleep(0.02)

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kb) * 1024


def start_gateway(config_path: Path, log_path: Path, port: int | None = None,
                  extra_env: dict[str, str] | None = None,
                  extra_args: list[str] | None = None) -> GatewayProcess:
    port = port or free_port()
    log = log_path.open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "llmsec_aio", "--config", str(config_path), "serve",
         "--host", "127.0.0.1", "--port", str(port), *(extra_args or [])],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    log.close()
    try:
        wait_for_port("127.0.0.1", port, timeout=20, alive=lambda: process.poll() is None)
    except Exception:
        process.kill()
        process.wait()
        raise RuntimeError(f"gateway did not start:\n{log_path.read_text(errors='replace')}") from None
    return GatewayProcess(process, port, log_path)


def stop_gateway(gw: GatewayProcess) -> None:
    if gw.process.poll() is None:
        gw.process.send_signal(signal.SIGTERM)
        try:
            gw.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gw.process.kill()
            gw.process.wait()


@contextmanager
def running_gateway(config_path: Path, log_path: Path, port: int | None = None) -> Iterator[GatewayProcess]:
    gw = start_gateway(config_path, log_path, port)
    try:
        yield gw
    finally:
        stop_gateway(gw)
