"""The opt-in decision micro-cache of nginx.conf.example: decisions are reused for at most 1 s,
per credential and route, 401s never, and a logout applies through NGINX within that second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import basic
from tests.support.deployment import Deployment, FakeClock
from tests.support.livestack import http_session, nginx_stack
from tests.support.nginx import microcache_substitutions

pytestmark = pytest.mark.e2e


async def test_micro_cache_reuses_decisions_and_bounds_revocation_to_one_second(
    tmp_path: Path, deployment: Deployment, clock: FakeClock
) -> None:
    async with (
        nginx_stack(
            tmp_path, deployment.config(), clock, extra_substitutions=microcache_substitutions()
        ) as stack,
        http_session() as http,
    ):
        base = stack.base_url
        async with http.post(
            f"{base}/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")}
        ) as r:
            token = (await r.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(20):
            async with http.get(f"{base}/llm/models", headers=auth) as r:
                assert r.status == 200
        assert stack.recorder.statuses.count(200) < 20  # NGINX answered most from its cache
        # Another route is decided on its own: never a decision reused across routes.
        async with http.get(f"{base}/llm/admin/stats", headers=auth) as r:
            assert r.status == 403
        # 401s are not cached: every bad token reaches the gateway.
        before = len(stack.recorder.calls)
        for _ in range(3):
            async with http.get(f"{base}/llm/models", headers={"Authorization": "Bearer junk"}) as r:
                assert r.status == 401
        assert len(stack.recorder.calls) == before + 3
        async with http.post(f"{base}/logout", headers=auth) as r:
            assert r.status == 200
        revoked_at = time.monotonic()
        while True:
            async with http.get(f"{base}/llm/models", headers=auth) as r:
                if r.status == 401:
                    break
                assert r.status == 200
            assert time.monotonic() - revoked_at < 1.2  # at most the 1 s cache lifetime (+ slack)
            await asyncio.sleep(0.02)
