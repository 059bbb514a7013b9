"""Browser sessions in the app: login CSRF, /me, sliding renewal with an injected clock."""

from __future__ import annotations

import pytest

from tests.conftest import Client, form_login, login
from tests.support.deployment import FakeClock

FORM = {"username": "web1", "password": "web1-pw"}


@pytest.mark.parametrize("headers, expected", [
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Sec-Fetch-Site": "same-site"}, 403),
    ({"Origin": "https://evil.example"}, 403),
    ({"Origin": "null"}, 403),
    ({"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"}, 303),  # Fetch Metadata decides
    ({"Sec-Fetch-Site": "none"}, 303),  # typed into the address bar / bookmark
    ({}, 303),  # not a browser: curl, scripts
])
async def test_login_csrf(client: Client, headers: dict[str, str], expected: int) -> None:
    resp = await client.post("/login", data=FORM, headers=headers, allow_redirects=False)
    assert resp.status == expected
    if expected == 403:
        assert (await resp.json())["error"] == "forbidden" and "Set-Cookie" not in resp.headers


async def test_same_origin_form_post_passes(client: Client) -> None:
    origin = f"http://{client.host}:{client.port}"
    resp = await client.post("/login", data=FORM, headers={"Origin": origin}, allow_redirects=False)
    assert resp.status == 303
    forwarded = await client.post("/login", data=FORM, allow_redirects=False, headers={
        "Origin": origin.replace("http:", "https:"), "X-Forwarded-Proto": "https"})
    assert forwarded.status == 303


async def test_cross_site_logout_is_refused(client: Client) -> None:
    cookie = await form_login(client)
    headers = {"Cookie": f"auth_token={cookie}", "Sec-Fetch-Site": "cross-site"}
    resp = await client.post("/logout", headers=headers)
    assert resp.status == 403
    assert (await client.get("/validate", headers={"Cookie": f"auth_token={cookie}"})).status == 200


async def test_me_page(client: Client) -> None:
    resp = await client.get("/me", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login?rd=/me"
    cookie = await form_login(client)
    page = await client.get("/me", headers={"Cookie": f"auth_token={cookie}"})
    text = await page.text()
    assert page.status == 200 and '<dd id="user">web1</dd>' in text and '<dd id="role">user</dd>' in text
    assert '<form method="post" action="/logout">' in text
    assert "script" not in text and page.headers["X-Frame-Options"] == "DENY"
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none' covers it


async def test_sliding_renewal(client: Client, clock: FakeClock) -> None:
    cookie = await form_login(client)  # role user: 900 s

    async def validate(token: str) -> tuple[int, str | None]:
        resp = await client.get("/validate", headers={"Cookie": f"auth_token={token}"})
        return resp.status, resp.headers.get("X-Auth-Request-Set-Cookie")

    clock.advance(449)
    assert await validate(cookie) == (200, None)  # more than half left
    clock.advance(2)
    status, renewed = await validate(cookie)
    assert status == 200 and renewed is not None
    assert renewed.startswith("auth_token=")
    assert "Max-Age=900; Path=/; HttpOnly; SameSite=Lax; Secure" in renewed
    fresh = renewed.split(";")[0].removeprefix("auth_token=")
    assert await validate(fresh) == (200, None)
    # A Bearer token is never renewed (agents log in again).
    agent = await login(client)
    clock.advance(100)
    resp = await client.get("/validate", headers={"Authorization": f"Bearer {agent}"})
    assert resp.status == 200 and "X-Auth-Request-Set-Cookie" not in resp.headers
