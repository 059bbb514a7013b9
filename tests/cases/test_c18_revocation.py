"""C18: logout and revocation take effect at once on every path, through the validation cache,
and on every instance (two processes sharing Redis)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import Client, form_login, login
from tests.e2e.test_redis_shared import logout, pair, redis, status, until  # noqa: F401 - fixtures
from tests.support.gateway import GatewayProcess


async def three_paths(client: Client, token: str) -> list[int]:
    return [
        (await client.get("/validate", headers={"Cookie": f"auth_token={token}"})).status,
        (await client.get("/validate", headers={"Authorization": f"Bearer {token}"})).status,
        (await client.post("/validate", json={"token": token})).status,
    ]


@pytest.mark.parametrize("kind", ["web cookie", "agent token"])
async def test_logout_kills_the_token_on_every_path(client: Client, kind: str) -> None:
    token = await form_login(client) if kind == "web cookie" else await login(client)
    sibling = await form_login(client) if kind == "web cookie" else await login(client)
    assert await three_paths(client, token) == [200, 200, 200]  # validated, now cached
    headers = ({"Cookie": f"auth_token={token}", "Accept": "text/html"} if kind == "web cookie"
               else {"Authorization": f"Bearer {token}"})
    resp = await client.post("/logout", headers=headers, allow_redirects=False)
    assert resp.status == (303 if kind == "web cookie" else 200)
    cleared = resp.headers["Set-Cookie"]
    assert cleared.startswith("auth_token=; Max-Age=0;") and "Path=/" in cleared
    assert await three_paths(client, token) == [401, 401, 401]
    assert await three_paths(client, sibling) == [200, 200, 200]  # other sessions unaffected


@pytest.mark.e2e
async def test_revoke_on_a_is_refused_on_b(pair: tuple[GatewayProcess, ...]) -> None:  # noqa: F811
    a, b = pair
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{a.base_url}/login", allow_redirects=False,
                             data={"username": "web1", "password": "web1-pw"}) as r:
            cookie = r.cookies["auth_token"].value
        await until(200, http, b, cookie, limit=5.0)  # B is up and follows Redis
        assert await logout(http, a, cookie) == 200
        await until(401, http, b, cookie, limit=1.0)
        assert await status(http, a, cookie) == 401
