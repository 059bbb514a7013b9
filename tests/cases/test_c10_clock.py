"""C10: iat/nbf/exp boundaries with the configured leeway L, fractional NumericDates, no cached "now"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from llmsec_aio.app import create_app
from tests.conftest import Client, login
from tests.support.casekit import VIAS, Via, assert_no_error_logs, validate_status
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import remint

L = 5  # the deployment's leeway; checked against the config below

# Claim changes relative to `now`, and the expected /validate status (PUBLIC.md C10 a-g).
Changes = Callable[[float], dict[str, Any]]
VARIANTS: dict[str, tuple[Changes, int]] = {
    "a-iat-2s-ahead": (lambda now: {"iat": now + 2}, 200),
    "b-iat-far-future": (lambda now: {"iat": now + L + 600}, 401),
    "c-nbf-far-future": (lambda now: {"nbf": now + L + 600}, 401),
    "d-expired-past-leeway": (lambda now: {"exp": now - L - 5}, 401),
    "e-exp-in-3s": (lambda now: {"exp": now + 3}, 200),
    "g-fractional": (lambda now: {"iat": now + 0.5, "exp": now + 600.25}, 200),
}


@pytest.fixture(autouse=True)
def whole_second(clock: FakeClock) -> None:
    # Start on a whole second, so `now` in a claim is exactly the gateway's now.
    clock.now = float(int(clock.now))


def test_leeway_is_small_and_configured(deployment: Deployment) -> None:
    assert deployment.config().leeway == L
    assert 0 < L <= 60


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize(("changes", "expected"), VARIANTS.values(), ids=VARIANTS.keys())
async def test_time_claims(client: Client, deployment: Deployment, clock: FakeClock,
                           caplog: pytest.LogCaptureFixture, changes: Changes, expected: int,
                           via: Via) -> None:
    v = await login(client)
    token = remint(v, deployment.ed, claims=changes(clock.now))  # V's own key (Ed25519)
    assert await validate_status(client, token, via) == expected
    assert_no_error_logs(caplog)


async def test_f_fresh_token_after_five_minutes_uptime(client: Client, deployment: Deployment,
                                                       clock: FakeClock) -> None:
    # Serve a request first, so a validator that captured "now" once would have done so by now.
    v = await login(client)
    assert await validate_status(client, v) == 200
    clock.advance(300)
    now = clock.now
    token = remint(v, deployment.ed, claims={"iat": now - 1, "exp": now + 600})
    assert await validate_status(client, token) == 200
    # And a token freshly issued by the gateway itself.
    assert await validate_status(client, await login(client)) == 200


@pytest.mark.parametrize("skew", [-2, 2], ids=["B-behind-2s", "B-ahead-2s"])
async def test_cross_instance_login_then_validate(aiohttp_client: AiohttpClient, client: Client,
                                                  deployment: Deployment, clock: FakeClock,
                                                  skew: int) -> None:
    # Instance A is `client`; instance B shares the deployment but its clock is skewed by `skew`.
    other = FakeClock(clock.now + skew)
    instance_b = await aiohttp_client(create_app(deployment.config(), clock=other))
    token = await login(client)
    assert await validate_status(instance_b, token) == 200
