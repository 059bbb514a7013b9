"""C30: the auth cookie's attributes and size, through NGX over HTTPS and directly to GW."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiohttp import ClientResponse

from llmsec_aio.config import DEFAULT_ROLES
from tests.support.deployment import Deployment, FakeClock
from tests.support.livestack import (
    http_session,
    live_gateway,
    nginx_stack,
    parse_set_cookie,
    self_signed_cert,
)

NEXT = "/chat?x=1"
LONGEST = 64  # the longest username the credentials loader accepts: the largest claim set

# Every role that may use the web form, with its ordinary user and a maximal-name user.
FORM_USERS: dict[str, tuple[str, str, str]] = {
    "user-web1": ("web1", "web1-pw", "user"),
    "user-longest": ("u" * LONGEST, "long-pw", "user"),
    "monitoring-mon1": ("mon1", "mon1-pw", "monitoring"),
    "monitoring-longest": ("m" * LONGEST, "long-pw", "monitoring"),
    "admin-admin1": ("admin1", "admin1-pw", "admin"),
    "admin-longest": ("a" * LONGEST, "long-pw", "admin"),
}


def test_every_form_role_is_covered() -> None:
    form_roles = {name for name, role in DEFAULT_ROLES.items() if "form" in role.login}
    assert {role for _, _, role in FORM_USERS.values()} == form_roles


def prepare(deployment: Deployment, alg: str) -> None:
    """The form users, and the signing algorithm (RS256 makes the largest tokens)."""
    deployment.settings["keys"] = {**deployment.settings["keys"], "algorithm": alg}
    for name, password, role in FORM_USERS.values():
        if name not in deployment.users:
            deployment.add_user(name, password, role)
    deployment.write()


ALGS = ["EdDSA", "RS256"]


async def assert_cookie(resp: ClientResponse, role: str) -> None:
    body = await resp.text()
    assert resp.status == 303, body
    assert resp.headers["Location"] == NEXT
    [line] = resp.headers.getall("Set-Cookie")  # exactly one, never split into parts
    cookie = parse_set_cookie(line)
    assert cookie.name == "auth_token"
    assert not cookie.value.startswith('"'), "a JWT needs no quoting"
    assert cookie.value.count(".") == 2
    assert "httponly" in cookie.attrs and cookie.attrs["httponly"] is None
    assert "secure" in cookie.attrs and cookie.attrs["secure"] is None
    assert (cookie.attrs.get("samesite") or "").lower() in ("lax", "strict")
    assert cookie.attrs.get("path") == "/"
    assert abs(int(cookie.attrs.get("max-age") or "0") - DEFAULT_ROLES[role].ttl) <= 2
    assert len(f"Set-Cookie: {line}".encode()) < 4096
    assert len(cookie.value.encode()) < 3072


@pytest.mark.e2e
@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("who", list(FORM_USERS))
async def test_through_ngx_over_https(who: str, alg: str, tmp_path: Path, deployment: Deployment,
                                      clock: FakeClock) -> None:
    prepare(deployment, alg)
    user, password, role = FORM_USERS[who]
    tls = self_signed_cert(tmp_path)
    trust = ssl.create_default_context(cafile=str(tls.cert))
    async with (nginx_stack(tmp_path, deployment.config(), clock, tls=tls) as stack,
                http_session() as http):
        assert stack.base_url.startswith("https://")
        form = {"username": user, "password": password, "next": NEXT}
        async with http.post(f"{stack.base_url}/login", data=form, ssl=trust,
                             allow_redirects=False) as resp:
            await assert_cookie(resp, role)
            token = parse_set_cookie(resp.headers["Set-Cookie"]).value
        # The cookie just set opens the protected API through the same front end.
        async with http.get(f"{stack.base_url}/llm/models", ssl=trust,
                            headers={"Cookie": f"auth_token={token}"}) as resp:
            assert resp.status == 200
        assert stack.recorder.statuses == [200]


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("who", list(FORM_USERS))
async def test_direct_to_gw_over_http(who: str, alg: str, deployment: Deployment,
                                      clock: FakeClock) -> None:
    prepare(deployment, alg)
    user, password, role = FORM_USERS[who]
    async with live_gateway(deployment.config(), clock) as gw, http_session() as http:
        form = {"username": user, "password": password, "next": NEXT}
        async with http.post(f"{gw.base_url}/login", data=form, allow_redirects=False) as resp:
            # `cookie.secure: true` in the config: Secure even on the loopback hop.
            await assert_cookie(resp, role)
