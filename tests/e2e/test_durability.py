"""kill -9 of a gateway using the embedded store: every revocation it acknowledged, and every
token it issued, is still in force after a restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import basic
from tests.support.deployment import Deployment
from tests.support.gateway import start_gateway, stop_gateway

pytestmark = pytest.mark.e2e


async def test_kill_9_loses_no_acknowledged_revocation(deployment: Deployment, tmp_path: Path) -> None:
    gw = start_gateway(deployment.config_path, tmp_path / "first.log")
    try:
        async with aiohttp.ClientSession() as http:
            async def token() -> str:
                async with http.post(f"{gw.base_url}/llm/login",
                                     headers={"Authorization": basic("agent1", "agent1-pw")}) as r:
                    value: str = (await r.json())["token"]
                    return value

            async def logout(t: str) -> int:
                async with http.post(f"{gw.base_url}/logout", headers={"Authorization": f"Bearer {t}"}) as r:
                    return r.status

            tokens = [await token() for _ in range(21)]
            kept, revoked = tokens[0], tokens[1:]
            assert await asyncio.gather(*(logout(t) for t in revoked)) == [200] * 20
        gw.process.send_signal(signal.SIGKILL)  # right after the last acknowledgement
        gw.process.wait()
    finally:
        stop_gateway(gw)

    again = start_gateway(deployment.config_path, tmp_path / "second.log", port=gw.port)
    try:
        async with aiohttp.ClientSession() as http:
            async def status(t: str) -> int:
                auth = {"Authorization": f"Bearer {t}"}
                async with http.get(f"{again.base_url}/validate", headers=auth) as r:
                    return r.status

            assert [await status(t) for t in revoked] == [401] * 20
            assert await status(kept) == 200  # issued before the kill, still valid
    finally:
        stop_gateway(again)
