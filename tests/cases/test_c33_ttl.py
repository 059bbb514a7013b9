"""C33: `expires_in`, `exp - iat` and the cookie's Max-Age all equal the role TTL; reloads keep old exp."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmsec_aio.config import DEFAULT_ROLES
from llmsec_aio.handlers import RUNTIME
from tests.conftest import Client, MakeClient, basic
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import parts
from tests.support.livestack import parse_set_cookie

# One user per role (agent1, web1 and admin1 come with the deployment).
ROLE_USERS: dict[str, tuple[str, str]] = {
    "agent_reasoning": ("agent1", "agent1-pw"),
    "agent_fast": ("fast1", "fast1-pw"),
    "agi": ("agi1", "agi1-pw"),
    "user": ("web1", "web1-pw"),
    "monitoring": ("mon1", "mon1-pw"),
    "admin": ("admin1", "admin1-pw"),
}
# Every (role, login method) pair the default roles allow.
LOGINS = [(role, method) for role, cfg in DEFAULT_ROLES.items() for method in sorted(cfg.login)]
HUGE = 999_999


@pytest.fixture
async def client(deployment: Deployment, make_client: MakeClient) -> Client:
    for role, (name, password) in ROLE_USERS.items():
        if name not in deployment.users:
            deployment.add_user(name, password, role)
    return await make_client()


async def basic_login(client: Client, role: str, *, params: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None, body: bytes | None = None) -> dict[str, Any]:
    name, password = ROLE_USERS[role]
    resp = await client.post("/llm/login", params=params, data=body,
                             headers={"Authorization": basic(name, password), **(headers or {})})
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def web_login(client: Client, role: str, *, params: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None,
                    extra: dict[str, str] | None = None) -> tuple[str, int]:
    """(token, Max-Age) from the form login's single Set-Cookie."""
    client.session.cookie_jar.clear()
    name, password = ROLE_USERS[role]
    resp = await client.post("/login", params=params, headers=headers, allow_redirects=False,
                             data={"username": name, "password": password, **(extra or {})})
    assert resp.status == 303, await resp.text()
    [line] = resp.headers.getall("Set-Cookie")
    cookie = parse_set_cookie(line)
    return cookie.value, int(cookie.attrs["max-age"] or "")


def lifetime(token: str) -> tuple[int, int]:
    _, claims = parts(token)
    return claims["iat"], claims["exp"]


async def assert_lifetime(client: Client, clock: FakeClock, role: str, method: str, ttl: int) -> str:
    if method == "basic":
        body = await basic_login(client, role)
        token: str = body["token"]
        assert body["expires_in"] == ttl
    else:
        token, max_age = await web_login(client, role)
        assert max_age == ttl
    iat, exp = lifetime(token)
    assert (iat, exp - iat) == (int(clock.now), ttl)
    if method == "basic":
        assert body["expires_at"] == exp
    return token


@pytest.mark.parametrize(("role", "method"), LOGINS)
async def test_lifetimes_agree_with_role_ttl(client: Client, clock: FakeClock, role: str,
                                             method: str) -> None:
    await assert_lifetime(client, clock, role, method, DEFAULT_ROLES[role].ttl)


TTL_HINTS: dict[str, dict[str, Any]] = {
    "query-expires_in": {"params": {"expires_in": str(HUGE)}},
    "json-body": {"body": json.dumps({"expires_in": HUGE, "ttl": HUGE}).encode(),
                  "headers": {"Content-Type": "application/json"}},
    "header-x-token-ttl": {"headers": {"X-Token-TTL": str(HUGE)}},
}


@pytest.mark.parametrize("hint", list(TTL_HINTS))
async def test_llm_login_ignores_client_ttl_hints(client: Client, hint: str) -> None:
    body = await basic_login(client, "agent_reasoning", **TTL_HINTS[hint])
    iat, exp = lifetime(body["token"])
    assert body["expires_in"] == exp - iat == DEFAULT_ROLES["agent_reasoning"].ttl


FORM_HINTS: dict[str, dict[str, Any]] = {
    "query-expires_in": {"params": {"expires_in": str(HUGE), "max_age": str(HUGE)}},
    "form-fields": {"extra": {"expires_in": str(HUGE), "ttl": str(HUGE), "max_age": str(HUGE)}},
    "header-x-token-ttl": {"headers": {"X-Token-TTL": str(HUGE)}},
}


@pytest.mark.parametrize("hint", list(FORM_HINTS))
async def test_form_login_ignores_client_ttl_hints(client: Client, hint: str) -> None:
    token, max_age = await web_login(client, "user", **FORM_HINTS[hint])
    iat, exp = lifetime(token)
    assert max_age == exp - iat == DEFAULT_ROLES["user"].ttl


def roles_with(**ttls: int) -> dict[str, dict[str, Any]]:
    """The full `roles:` mapping (each needs prefix, ttl, login) with some TTLs changed."""
    return {name: {"prefix": r.prefix, "ttl": ttls.get(name, r.ttl), "login": sorted(r.login)}
            for name, r in DEFAULT_ROLES.items()}


async def status_of(client: Client, token: str) -> int:
    resp = await client.get("/validate", headers={"Authorization": f"Bearer {token}"})
    await resp.read()
    return resp.status


async def test_reload_changes_new_tokens_only(client: Client, deployment: Deployment,
                                              clock: FakeClock) -> None:
    leeway = int(deployment.settings["leeway"])
    agent_ttl, web_ttl = DEFAULT_ROLES["agent_reasoning"].ttl, DEFAULT_ROLES["user"].ttl
    old_agent = await assert_lifetime(client, clock, "agent_reasoning", "basic", agent_ttl)
    old_web = await assert_lifetime(client, clock, "user", "form", web_ttl)
    _, old_agent_exp = lifetime(old_agent)
    _, old_web_exp = lifetime(old_web)

    # Lengthen one TTL and shorten the other, then reload without a restart.
    new_agent_ttl, new_web_ttl = 300, 450
    deployment.settings["roles"] = roles_with(agent_reasoning=new_agent_ttl, user=new_web_ttl)
    deployment.write()
    assert client.app is not None
    await client.app[RUNTIME].reload()

    await assert_lifetime(client, clock, "agent_reasoning", "basic", new_agent_ttl)
    await assert_lifetime(client, clock, "user", "form", new_web_ttl)

    # The old agent token still ends at its own exp, not at iat + the longer new TTL.
    clock.now = old_agent_exp + leeway - 1
    assert await status_of(client, old_agent) == 200
    clock.now = old_agent_exp + leeway
    assert await status_of(client, old_agent) == 401
    # The old web cookie outlives the shorter new TTL, up to its own exp.
    clock.now = old_web_exp + leeway - 1
    assert await status_of(client, old_web) == 200
    clock.now = old_web_exp + leeway
    assert await status_of(client, old_web) == 401
