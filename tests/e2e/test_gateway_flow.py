"""The issue's end-to-end story with every part real: nginx from nginx.conf.example, the
`llmsec-aio serve` process, and the stub LLM. Also: downstream services verify our tokens
with nothing but the JWKS (PyJWT's PyJWKClient), for EdDSA and RS256."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.conftest import basic
from tests.support.deployment import Deployment, make_deployment
from tests.support.gateway import GatewayProcess, running_gateway
from tests.support.jwtcraft import remint
from tests.support.nginx import NginxInstance, running_nginx
from tests.support.stub_llm import StubLLM

pytestmark = pytest.mark.e2e

CHAT = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(deployment: Deployment, tmp_path: Path) -> Iterator[GatewayProcess]:
    with running_gateway(deployment.config_path, tmp_path / "gateway.log") as gw:
        yield gw


@pytest.fixture
def nginx(tmp_path: Path, gateway: GatewayProcess, stub: StubLLM) -> Iterator[NginxInstance]:
    with running_nginx(tmp_path, gateway_port=gateway.port, llm_port=stub.port) as ngx:
        yield ngx


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def agent_token(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["expires_in"] == 120 and body["token_type"] == "Bearer"
    token: str = body["token"]
    return token


async def test_agent_chat_reaches_the_llm_only_after_validate(
        nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession) -> None:
    token = await agent_token(http, nginx.base_url)
    async with http.post(f"{nginx.base_url}/llm/chat/completions", json=CHAT,
                         headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
        assert (await r.json())["object"] == "chat.completion"
    [seen] = stub.requests_to("/v1/chat/completions")
    assert seen.headers["X-Auth-User"] == "agent1"
    assert seen.headers["X-Auth-Role"] == "agent_reasoning"
    assert "Authorization" not in seen.headers and "Cookie" not in seen.headers


@pytest.mark.parametrize("auth", ["none", "junk", "expired", "foreign-key"])
async def test_refused_requests_never_reach_the_llm(
        nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession,
        deployment: Deployment, auth: str) -> None:
    token = await agent_token(http, nginx.base_url)
    headers = {
        "none": {},
        "junk": {"Authorization": "Bearer not.a.token"},
        "expired": {"Authorization": "Bearer " + remint(
            token, deployment.ed, claims={"iat": time.time() - 600, "exp": time.time() - 60})},
        "foreign-key": {"Authorization": "Bearer " + remint(
            token, ed25519.Ed25519PrivateKey.generate())},
    }[auth]
    async with http.post(f"{nginx.base_url}/llm/chat/completions", json=CHAT, headers=headers) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert stub.requests == []


async def test_web_user_cookie_works_the_same_way(
        nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{nginx.base_url}/login", allow_redirects=False,
                         data={"username": "web1", "password": "web1-pw", "rd": "/llm/models"}) as r:
        assert r.status == 303 and r.headers["Location"] == "/llm/models"
        cookie = r.cookies["auth_token"].value
    async with http.get(f"{nginx.base_url}/llm/models", headers={"Cookie": f"auth_token={cookie}"}) as r:
        assert r.status == 200
    [seen] = stub.requests_to("/v1/models")
    assert (seen.headers["X-Auth-User"], seen.headers["X-Auth-Role"]) == ("web1", "user")


async def test_streamed_events_arrive_as_they_are_sent(
        nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession) -> None:
    token = await agent_token(http, nginx.base_url)
    stub.stream_events, stub.stream_interval = 5, 0.4
    arrivals: list[float] = []
    start = time.monotonic()
    async with http.post(f"{nginx.base_url}/llm/chat/completions", json={**CHAT, "stream": True},
                         headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        async for line in r.content:
            if line.startswith(b"data: {"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 5
    # Unbuffered: the first event comes long before the last was even generated.
    assert arrivals[0] < 1.0
    assert arrivals[-1] - arrivals[0] > 1.2


async def test_validate_is_not_reachable_from_outside(
        nginx: NginxInstance, http: aiohttp.ClientSession, gateway: GatewayProcess) -> None:
    token = await agent_token(http, nginx.base_url)
    async with http.get(f"{nginx.base_url}/validate", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 404


# ---- downstream verification ------------------------------------------------------------

@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
async def test_downstream_service_verifies_with_the_jwks_alone(
        tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey, alg: str) -> None:
    dep = make_deployment(tmp_path, rsa_key, ed_key, keys={"dir": "keys", "algorithm": alg})
    with running_gateway(dep.config_path, tmp_path / "gw.log") as gw:
        async with aiohttp.ClientSession() as http:
            token = await agent_token(http, gw.base_url)
            async with http.get(f"{gw.base_url}/.well-known/openid-configuration") as r:
                discovery = await r.json()
        assert discovery["jwks_uri"] == "https://llm.example.test/.well-known/jwks.json"
        # The issuer is the public NGINX name; here the downstream reaches the gateway directly.
        client = jwt.PyJWKClient(f"{gw.base_url}/.well-known/jwks.json", cache_keys=True)
        signing_key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
        claims = jwt.decode(token, signing_key, algorithms=[alg], audience="llmsec-test",
                            issuer="https://llm.example.test")
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert (claims["sub"], claims["role"]) == ("agent1", "agent_reasoning")
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize("user, password, method, path", [
    ("agent1", "agent1-pw", "GET", "/llm/admin/stats"),  # an agent on an admin route
    ("mon1", "mon1-pw", "POST", "/llm/chat/completions"),  # monitoring may not chat
])
async def test_policy_denies_with_403_and_the_llm_is_never_hit(
        nginx: NginxInstance, stub: StubLLM, http: aiohttp.ClientSession, deployment: Deployment,
        gateway: GatewayProcess, user: str, password: str, method: str, path: str) -> None:
    deployment.add_user("mon1", "mon1-pw", "monitoring")
    # The gateway picks up the edited credentials file by itself; polling the login instead
    # would earn this client a ban.
    await gateway.wait_for_log("reload (file change) done")
    if user == "mon1":
        async with http.post(f"{nginx.base_url}/login", allow_redirects=False,
                             data={"username": user, "password": password}) as r:
            headers = {"Cookie": f"auth_token={r.cookies['auth_token'].value}"}
    else:
        headers = {"Authorization": f"Bearer {await agent_token(http, nginx.base_url)}"}
    async with http.request(method, f"{nginx.base_url}{path}", json=CHAT, headers=headers) as r:
        assert r.status == 403
    async with http.get(f"{nginx.base_url}/llm/models", headers=headers) as r:
        assert r.status == 200  # the same identity is fine where the policy allows it
    assert [req.path for req in stub.requests] == ["/v1/models"]

