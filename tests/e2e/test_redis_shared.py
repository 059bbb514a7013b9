"""Two gateway processes sharing one real redis-server: tokens, revocations and bans hold on
both; a Redis outage gives no 5xx, loses no revocation, and the state catches up afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.conftest import basic
from tests.support.deployment import Deployment
from tests.support.gateway import GatewayProcess, start_gateway, stop_gateway
from tests.support.redis import RedisServer, running_redis

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def pair(deployment: Deployment, redis: RedisServer, tmp_path: Path) -> Iterator[tuple[GatewayProcess, ...]]:
    """Instances A and B: same keys, users and Redis; each its own state folder."""
    deployment.settings["cache"] = {"backend": "redis", "redis_url": redis.url}
    deployment.write()
    configs = []
    for name in ("a", "b"):
        settings = {**deployment.settings, "server": {"state_dir": f"state-{name}"}}
        path = deployment.root / f"config-{name}.yaml"
        path.write_text(yaml.safe_dump(settings))
        configs.append(path)
    gateways = [start_gateway(path, tmp_path / f"{path.stem}.log") for path in configs]
    try:
        yield tuple(gateways)
    finally:
        for gw in gateways:
            stop_gateway(gw)


async def login(http: aiohttp.ClientSession, gw: GatewayProcess, user: str = "agent1",
                pw: str = "agent1-pw", ip: str = "203.0.113.5") -> tuple[int, str]:
    async with http.post(f"{gw.base_url}/llm/login",
                         headers={"Authorization": basic(user, pw), "X-Real-IP": ip}) as r:
        return r.status, (await r.json()).get("token", "")


async def status(http: aiohttp.ClientSession, gw: GatewayProcess, token: str) -> int:
    async with http.get(f"{gw.base_url}/validate", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def logout(http: aiohttp.ClientSession, gw: GatewayProcess, token: str) -> int:
    async with http.post(f"{gw.base_url}/logout", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def until(predicate_status: int, http: aiohttp.ClientSession, gw: GatewayProcess, token: str,
                limit: float) -> float:
    start = time.monotonic()
    while await status(http, gw, token) != predicate_status:
        assert time.monotonic() - start < limit, gw.log_text()[-2000:]
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def wait_redis(http: aiohttp.ClientSession, gw: GatewayProcess, state: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        async with http.get(f"{gw.base_url}/healthz") as r:
            assert r.status == 200
            if (await r.json()).get("redis") == state:
                return
        assert time.monotonic() < deadline, gw.log_text()[-2000:]
        await asyncio.sleep(0.05)


async def test_two_instances_behave_as_one(pair: tuple[GatewayProcess, ...]) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as http:
        for gw in pair:
            await wait_redis(http, gw, "up")
        code, token = await login(http, a)
        assert code == 200 and await status(http, b, token) == 200
        # Revocation on A reaches B: measured from the moment A answered the logout.
        delays = []
        for _ in range(5):
            _, t = await login(http, a)
            assert await status(http, b, t) == 200  # cached on B
            assert await logout(http, a, t) == 200
            delays.append(await until(401, http, b, t, limit=1.0))
        print(f"\nrevocation delay A -> B: max {max(delays) * 1000:.1f} ms over {len(delays)} logouts")
        # A ban earned on A holds on B.
        for _ in range(5):
            assert (await login(http, a, pw="wrong", ip="198.51.100.77"))[0] == 401
        assert (await login(http, b, ip="198.51.100.77"))[0] == 429


async def test_a_redis_outage_gives_no_5xx_and_loses_no_revocation(
        pair: tuple[GatewayProcess, ...], redis: RedisServer) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as http:
        for gw in pair:
            await wait_redis(http, gw, "up")
        _, revoked_before = await login(http, a)
        _, live = await login(http, a)
        _, revoked_during = await login(http, a)
        assert await logout(http, a, revoked_before) == 200
        await until(401, http, b, revoked_before, limit=1.0)

        redis.stop()
        for gw in pair:
            await wait_redis(http, gw, "down")
            assert await status(http, gw, revoked_before) == 401  # what was known stays known
            assert await status(http, gw, live) == 200  # signatures still decide
            assert (await login(http, gw))[0] == 200  # logins keep working
            assert (await login(http, gw, pw="wrong"))[0] == 401
        assert await logout(http, a, revoked_during) == 200  # applied on A at once, queued for B
        assert await status(http, a, revoked_during) == 401

        redis.start()
        for gw in pair:
            await wait_redis(http, gw, "up")
        await until(401, http, b, revoked_during, limit=3.0)  # caught up
        assert await status(http, b, revoked_before) == 401
        assert await status(http, b, live) == 200
    for gw in pair:
        log = gw.log_text()
        assert "Traceback" not in log
        assert "redis is unreachable" in log and "redis is reachable" in log
