"""Access control through the real app: route policy at /validate, logout and admin revocation
(with restarts and the CLI), and brute-force regulation of the logins."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from llmsec_aio import handlers
from llmsec_aio.cli import main
from tests.conftest import Client, MakeClient, basic, form_login, login
from tests.support.deployment import Deployment, FakeClock


async def check(client: Client, token: str, uri: str | None = None, method: str = "POST") -> int:
    headers = {"Authorization": f"Bearer {token}"}
    if uri is not None:
        headers |= {"X-Original-URI": uri, "X-Original-Method": method}
    return (await client.get("/validate", headers=headers)).status


# ---- policy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, method, expected", [
    ("/llm/chat/completions", "POST", 200),
    ("/llm/embeddings?x=1", "POST", 200),
    ("/llm/models", "GET", 200),
    ("/llm/admin/users", "GET", 403),
    ("/llm/chat/completions/../../admin", "POST", 403),
    ("/llm/%2e%2e/admin", "GET", 403),
    ("/llm/%252e%252e/admin", "GET", 403),
    ("/llm//chat/completions", "POST", 200),
    ("/llm/chat/completions", "DELETE", 403),
    (None, "POST", 200),  # no X-Original-URI: the token alone is checked
])
async def test_agent_routes(client: Client, uri: str | None, method: str, expected: int) -> None:
    assert await check(client, await login(client), uri, method) == expected


async def test_forbidden_is_403_with_the_json_shape(client: Client) -> None:
    token = await login(client)
    resp = await client.get("/validate", headers={"Authorization": f"Bearer {token}",
                                                  "X-Original-URI": "/llm/admin", "X-Original-Method": "GET"})
    assert resp.status == 403 and "WWW-Authenticate" not in resp.headers
    assert await resp.json() == {"error": "forbidden", "message": "this identity may not use this route"}


async def test_an_invalid_token_is_401_before_any_policy(client: Client) -> None:
    assert await check(client, "junk", "/llm/admin", "GET") == 401


# ---- logout and revocation ------------------------------------------------------------------

async def replays(client: Client, token: str) -> list[int]:
    return [
        (await client.get("/validate", headers={"Cookie": f"auth_token={token}"})).status,
        (await client.get("/validate", headers={"Authorization": f"Bearer {token}"})).status,
        (await client.post("/validate", json={"token": token})).status,
    ]


async def test_browser_logout_revokes_the_cookie_everywhere(client: Client) -> None:
    cookie, other = await form_login(client), await form_login(client)
    for _ in range(3):  # now cached
        assert (await client.get("/validate", headers={"Cookie": f"auth_token={cookie}"})).status == 200
    resp = await client.post("/logout", headers={"Cookie": f"auth_token={cookie}", "Accept": "text/html"},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert resp.headers["Set-Cookie"] == "auth_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
    assert await replays(client, cookie) == [401, 401, 401]
    assert await replays(client, other) == [200, 200, 200]  # the user's other session lives on


async def test_agent_logout_with_bearer(client: Client) -> None:
    token = await login(client)
    resp = await client.post("/logout", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200 and await resp.json() == {"revoked": True}
    assert await replays(client, token) == [401, 401, 401]
    again = await client.post("/logout", headers={"Authorization": f"Bearer {token}"})
    assert again.status == 200 and await again.json() == {"revoked": False}


async def test_admin_revokes_by_jti_and_by_subject(client: Client, clock: FakeClock) -> None:
    admin = await login(client, "admin1", "admin1-pw")
    a1, a2 = await login(client), await login(client)
    jti = (await client.get("/validate", headers={"Authorization": f"Bearer {a1}"})).status
    assert jti == 200
    from tests.support.jwtcraft import parts

    resp = await client.post("/admin/revoke", json={"jti": parts(a1)[1]["jti"]},
                             headers={"Authorization": f"Bearer {admin}"})
    assert resp.status == 200 and (await resp.json())["revoked"]["kind"] == "jti"
    assert await check(client, a1) == 401 and await check(client, a2) == 200
    resp = await client.post("/admin/revoke", json={"sub": "agent1"},
                             headers={"Authorization": f"Bearer {admin}"})
    assert resp.status == 200
    assert await check(client, a2) == 401
    clock.advance(1)  # tokens issued after the revocation are not affected
    assert await check(client, await login(client)) == 200


@pytest.mark.parametrize("who, body, expected", [
    ("agent", {"sub": "web1"}, 403),
    ("none", {"sub": "web1"}, 401),
    ("admin", {"sub": ""}, 400),
    ("admin", {"jti": "a", "sub": "b"}, 400),
    ("admin", ["sub"], 400),
])
async def test_admin_revoke_refusals(client: Client, who: str, body: Any, expected: int) -> None:
    headers = {}
    if who != "none":
        user, pw = ("admin1", "admin1-pw") if who == "admin" else ("agent1", "agent1-pw")
        headers = {"Authorization": f"Bearer {await login(client, user, pw)}"}
    resp = await client.post("/admin/revoke", json=body, headers=headers)
    assert resp.status == expected and set(await resp.json()) == {"error", "message"}


async def test_revocations_survive_a_restart(make_client: MakeClient) -> None:
    first = await make_client()
    token = await login(first)
    assert (await first.post("/logout", headers={"Authorization": f"Bearer {token}"})).status == 200
    await first.close()
    second = await make_client()
    assert await check(second, token) == 401


async def test_the_cli_revokes_in_the_running_server(client: Client, deployment: Deployment) -> None:
    token = await login(client)
    args = ["--config", str(deployment.config_path), "revoke", "--token", token]
    assert await asyncio.to_thread(main, args) == 0
    deadline = time.monotonic() + 1.0
    while await check(client, token) != 401:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_a_full_disk_gives_a_clear_error_and_loses_nothing(
        client: Client, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = await login(client), await login(client)
    assert (await client.post("/logout", headers={"Authorization": f"Bearer {first}"})).status == 200
    path = deployment.root / "state" / "revocations.jsonl"
    before = path.read_bytes()

    def no_space(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("llmsec_aio.revocation_store.os.write", no_space)
    resp = await client.post("/logout", headers={"Authorization": f"Bearer {second}"})
    assert resp.status == 503 and (await resp.json())["error"] == "revocation_not_stored"
    assert await check(client, second) == 401  # still refused here
    assert path.read_bytes() == before
    assert await check(client, first) == 401


# ---- brute-force regulation -----------------------------------------------------------------

def counting_bcrypt(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = handlers.check_password_async  # type: ignore[attr-defined]

    async def spy(*args: Any) -> bool:
        calls.append(1)
        return await real(*args)

    monkeypatch.setattr(handlers, "check_password_async", spy)
    return calls


async def attempt(client: Client, user: str, pw: str, ip: str = "203.0.113.7") -> Any:
    return await client.post("/llm/login", headers={"Authorization": basic(user, pw), "X-Real-IP": ip})


async def test_a_ban_after_five_failures_runs_no_bcrypt(
        client: Client, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_bcrypt(monkeypatch)
    statuses = [(await attempt(client, "agent1", "wrong")).status for _ in range(5)]
    assert statuses == [401] * 5 and len(calls) == 5
    banned = await attempt(client, "agent1", "agent1-pw")
    assert banned.status == 429 and banned.headers["Retry-After"] == "300"
    assert (await banned.json())["error"] == "too_many_attempts" and len(calls) == 5
    assert (await attempt(client, "agent1", "agent1-pw", ip="198.51.100.9")).status == 200
    clock.advance(300)
    assert (await attempt(client, "agent1", "agent1-pw")).status == 200


async def test_success_resets_the_count(client: Client) -> None:
    for _ in range(4):
        assert (await attempt(client, "agent1", "wrong")).status == 401
    assert (await attempt(client, "agent1", "agent1-pw")).status == 200
    for _ in range(4):
        assert (await attempt(client, "agent1", "wrong")).status == 401


async def test_many_usernames_from_one_client_are_limited(client: Client) -> None:
    statuses = [(await attempt(client, f"user{i}", "x")).status for i in range(21)]
    assert statuses == [401] * 20 + [429]


async def test_the_form_login_is_regulated_too(client: Client) -> None:
    for _ in range(5):
        await client.post("/login", data={"username": "web1", "password": "x"},
                          headers={"X-Real-IP": "203.0.113.8"})
    resp = await client.post("/login", data={"username": "web1", "password": "web1-pw"},
                             headers={"X-Real-IP": "203.0.113.8"})
    assert resp.status == 429 and resp.headers["Retry-After"] == "300"
    assert "Too many failed attempts" in await resp.text()


async def test_headers_from_an_untrusted_peer_are_ignored(make_client: MakeClient,
                                                          deployment: Deployment) -> None:
    deployment.settings["server"] = {"trusted_proxies": ["10.0.0.0/8"]}
    deployment.write()
    client = await make_client()
    for i in range(5):  # a different forged address each time: still one client, 127.0.0.1
        await attempt(client, "agent1", "wrong", ip=f"192.0.2.{i}")
    assert (await attempt(client, "agent1", "agent1-pw", ip="192.0.2.200")).status == 429


async def test_validate_never_answers_429(client: Client) -> None:
    statuses = {(await client.get("/validate", headers={"Authorization": f"Bearer junk{i}"})).status
                for i in range(300)}
    assert statuses == {401}


def test_client_address_rules() -> None:
    from ipaddress import ip_network

    from llmsec_aio.httpauth import client_address

    trusted = (ip_network("127.0.0.0/8"),)
    pick: Callable[..., str] = client_address
    assert pick("127.0.0.1", "203.0.113.1", None, trusted) == "203.0.113.1"
    assert pick("127.0.0.1", None, "1.1.1.1, 203.0.113.2", trusted) == "203.0.113.2"
    assert pick("127.0.0.1", "not-an-ip", None, trusted) == "127.0.0.1"
    assert pick("198.51.100.1", "203.0.113.1", "203.0.113.1", trusted) == "198.51.100.1"
    assert pick(None, "203.0.113.1", None, trusted) == "unknown"


async def test_repeat_logins_skip_bcrypt_until_the_password_changes(
        client: Client, deployment: Deployment, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    calls = counting_bcrypt(monkeypatch)
    for _ in range(3):
        assert (await attempt(client, "agent1", "agent1-pw")).status == 200
    assert len(calls) == 1
    assert (await attempt(client, "agent1", "wrong")).status == 401 and len(calls) == 2
    clock.advance(300)  # credentials.verified_cache_ttl
    assert (await attempt(client, "agent1", "agent1-pw")).status == 200 and len(calls) == 3
    deployment.add_user("agent1", "new-password", "agent_reasoning")
    await client.app[handlers.RUNTIME].reload()
    assert (await attempt(client, "agent1", "agent1-pw")).status == 401
    assert (await attempt(client, "agent1", "new-password")).status == 200 and len(calls) == 5


async def test_the_verified_cache_can_be_turned_off(
        make_client: MakeClient, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment.settings["credentials"] = {**deployment.settings["credentials"], "verified_cache_ttl": 0}
    deployment.write()
    client = await make_client()
    calls = counting_bcrypt(monkeypatch)
    for _ in range(3):
        assert (await attempt(client, "agent1", "agent1-pw")).status == 200
    assert len(calls) == 3
