"""`serve --workers 2`: two processes share the port, every reload reaches both, a dead worker
is started again, and the supervisor stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from llmsec_aio.cli import main
from tests.conftest import basic
from tests.support.deployment import Deployment
from tests.support.net import free_port, wait_for_port

pytestmark = pytest.mark.e2e


def workers_of(supervisor: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(supervisor)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


async def test_two_workers(deployment: Deployment, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "workers.log").open("wb")
    supervisor = subprocess.Popen(  # noqa: ASYNC220 - started once, before any awaiting
        [
            sys.executable,
            "-m",
            "llmsec_aio",
            "--config",
            str(deployment.config_path),
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=20)
        deadline = time.monotonic() + 10
        while (
            len(workers_of(supervisor.pid)) < 2
            or (tmp_path / "workers.log").read_text().count("listening on") < 2
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        first = workers_of(supervisor.pid)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"http://127.0.0.1:{port}/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")}
            ) as r:
                token = (await r.json())["token"]
            # Connections land on both workers; every one of them validates the token.
            for _ in range(20):
                async with (
                    aiohttp.ClientSession() as fresh,
                    fresh.get(
                        f"http://127.0.0.1:{port}/validate", headers={"Authorization": f"Bearer {token}"}
                    ) as r,
                ):
                    assert r.status == 200
        assert await asyncio.to_thread(main, ["--config", str(deployment.config_path), "reload"]) == 0
        deadline = time.monotonic() + 5
        while (tmp_path / "workers.log").read_text().count("reload (SIGHUP) done") < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while first[0] in workers_of(supervisor.pid) or len(workers_of(supervisor.pid)) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=20) == 0
        log.close()
    assert workers_of(supervisor.pid) == []
    assert not (deployment.root / "state" / "llmsec-aio.pid").exists()
