"""C15: a cached positive verdict dies with the token's exp (plus leeway), and rejections are never cached."""

from __future__ import annotations

import pytest

from tests.conftest import Client, MakeClient, form_login, login
from tests.support.casekit import Via, roles_settings, runtime_of, validate_status
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import remint

L = 5  # the deployment's leeway
CACHE_TTL = 120  # well above every token lifetime used here
ROLE_TTL = 5


@pytest.fixture(autouse=True)
def whole_second(clock: FakeClock) -> None:
    clock.now = float(int(clock.now))


@pytest.fixture
async def client(make_client: MakeClient, deployment: Deployment) -> Client:
    deployment.settings["cache"] = {"ttl": CACHE_TTL}
    deployment.settings["roles"] = roles_settings(agent_reasoning=ROLE_TTL, user=ROLE_TTL)
    deployment.write()
    return await make_client()


async def test_config_applies(client: Client) -> None:
    config = runtime_of(client).current.config
    assert (config.cache.ttl, config.leeway) == (CACHE_TTL, L)
    assert config.roles["agent_reasoning"].ttl == ROLE_TTL


async def test_a_cached_verdict_ends_with_exp(client: Client, deployment: Deployment,
                                              clock: FakeClock) -> None:
    token = remint(await login(client), deployment.ed, claims={"exp": clock.now + 3})
    assert await validate_status(client, token) == 200
    hits = runtime_of(client).cache.hits
    assert await validate_status(client, token) == 200
    assert runtime_of(client).cache.hits == hits + 1  # the verdict is cached: the 401 below is the cache's
    clock.advance(L + 4)
    assert await validate_status(client, token) == 401


async def test_b_rejection_before_nbf_does_not_stick(client: Client, deployment: Deployment,
                                                     clock: FakeClock) -> None:
    token = remint(await login(client), deployment.ed, claims={"nbf": clock.now + L + 3})
    assert await validate_status(client, token) == 401
    clock.advance(4)
    assert await validate_status(client, token) == 200


# The case logs in an agent; the web cookie (same role TTL) is the same kind of cached verdict.
@pytest.mark.parametrize("who", ["agent-bearer", "web-cookie"])
async def test_c_short_role_ttl(client: Client, clock: FakeClock, who: str) -> None:
    via: Via = "bearer" if who == "agent-bearer" else "cookie"
    token = await login(client) if via == "bearer" else await form_login(client)
    assert await validate_status(client, token, via) == 200
    assert await validate_status(client, token, via) == 200  # now served from the cache
    clock.advance(ROLE_TTL + L + 1)
    assert await validate_status(client, token, via) == 401
