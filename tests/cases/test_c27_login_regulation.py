"""C27: password guessing through NGINX is throttled per (user, client) and per client, forged
X-Forwarded-For changes nothing, the real user still gets in from elsewhere, and /validate
never answers 429."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llmsec_aio import handlers
from tests.conftest import basic
from tests.support.deployment import Deployment, FakeClock
from tests.support.livestack import Stack, nginx_stack

pytestmark = pytest.mark.e2e


def count_bcrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = handlers.check_password_async  # type: ignore[attr-defined]

    async def spy(*args: Any) -> bool:
        calls.append("bcrypt")
        return await real(*args)

    monkeypatch.setattr(handlers, "check_password_async", spy)
    return calls


async def guess(http: aiohttp.ClientSession, stack: Stack, user: str, pw: str,
                forged: str | None = None) -> aiohttp.ClientResponse:
    headers = {"Authorization": basic(user, pw)}
    if forged:
        headers["X-Forwarded-For"] = forged
        headers["X-Real-IP"] = forged
    async with http.post(f"{stack.base_url}/llm/login", headers=headers) as r:
        await r.read()
        return r


@pytest.mark.parametrize("forge", [False, True], ids=["plain", "forged-xff"])
async def test_guessing_one_password_is_banned(
        tmp_path: Path, deployment: Deployment, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        forge: bool) -> None:
    calls = count_bcrypt(monkeypatch)
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, aiohttp.ClientSession() as http:
        answers = [await guess(http, stack, "agent1", f"wrong{i}", forged=f"192.0.2.{i}" if forge else None)
                   for i in range(30)]
        assert [r.status for r in answers[:5]] == [401] * 5
        assert {r.status for r in answers[5:]} == {429}
        assert all(r.headers["Retry-After"] == "300" for r in answers[5:])
        assert len(calls) == 5  # throttled attempts never reach bcrypt
        # (d) the real agent1, from another address, is not locked out.
        elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=elsewhere) as other:
            ok = await guess(other, stack, "agent1", "agent1-pw")
            assert ok.status == 200


async def test_spreading_guesses_over_usernames_hits_the_client_limit(
        tmp_path: Path, deployment: Deployment, clock: FakeClock) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, aiohttp.ClientSession() as http:
        statuses = [(await guess(http, stack, f"user{i}", "pw")).status for i in range(30)]
    assert statuses == [401] * 20 + [429] * 10


async def test_validate_never_throttles(tmp_path: Path, deployment: Deployment, clock: FakeClock) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, aiohttp.ClientSession() as http:
        statuses: Counter[int] = Counter()
        for i in range(1000):
            async with http.get(f"{stack.base_url}/llm/models",
                                headers={"Authorization": f"Bearer junk.{i}.x"}) as r:
                statuses[r.status] += 1
        assert statuses == Counter({401: 1000})
        assert stack.stub.requests == []
