"""Fuzz profiles (50 examples, or 5,000 with HYPOTHESIS_PROFILE=fuzz), the fuzzed gateway and its tokens."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, Phase, settings

from tests.fuzz.rawhttp import basic_header, fresh_client_address, send
from tests.support.casekit import roles_settings
from tests.support.deployment import DEFAULT_USERS, Deployment, make_deployment
from tests.support.livestack import parse_set_cookie
from tests.support.threaded import ThreadedApp, gateway_in_thread

# Registered here but never loaded globally: `make test` collects the whole suite, and the
# property tests elsewhere keep Hypothesis's own defaults. Fuzz tests apply FUZZ_SETTINGS.
_BASE = settings(
    # One example is a real TCP round trip, sometimes a bcrypt check: no per-example deadline.
    deadline=None,
    # Fuzzing looks for new crashes each run; a failure prints its seed and example to replay.
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    # The gateway is module-scoped on purpose: one server shared by every example.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile("fuzz-quick", _BASE, max_examples=50)
settings.register_profile("fuzz", _BASE, max_examples=5000)

FUZZ_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "fuzz-quick")
if FUZZ_PROFILE not in ("fuzz-quick", "fuzz"):
    # Another profile name (e.g. Hypothesis's "ci") still gets our deadline and health checks.
    FUZZ_PROFILE = "fuzz-quick"
FUZZ_SETTINGS = settings.get_profile(FUZZ_PROFILE)


@pytest.fixture(scope="module")
def fuzz_deployment(tmp_path_factory: pytest.TempPathFactory, rsa_key: rsa.RSAPrivateKey,
                    ed_key: ed25519.Ed25519PrivateKey) -> Deployment:
    # One-hour agent tokens: the large profile runs for minutes on one token.
    return make_deployment(tmp_path_factory.mktemp("fuzz"), rsa_key, ed_key,
                           roles=roles_settings(agent_reasoning=3600, user=3600, admin=3600))


@pytest.fixture(scope="module")
def gateway(fuzz_deployment: Deployment) -> Iterator[ThreadedApp]:
    with gateway_in_thread(fuzz_deployment.config()) as gw:
        yield gw


@dataclass(frozen=True)
class Tokens:
    agent: str  # agent_reasoning, via Basic
    admin: str  # admin, via Basic
    web: str  # user, via the form (a cookie)


@pytest.fixture(scope="module")
def tokens(gateway: ThreadedApp) -> Tokens:
    def basic_login(user: str) -> str:
        resp = send(gateway, b"POST", b"/llm/login", [
            (b"Authorization", basic_header(f"{user}:{DEFAULT_USERS[user][0]}".encode())),
            (b"X-Real-IP", fresh_client_address())])
        assert resp.status == 200, resp.body
        token: str = json.loads(resp.body)["token"]
        return token

    form = urlencode({"username": "web1", "password": DEFAULT_USERS["web1"][0]}).encode()
    resp = send(gateway, b"POST", b"/login", [
        (b"Content-Type", b"application/x-www-form-urlencoded"),
        (b"X-Real-IP", fresh_client_address())], form)
    assert resp.status == 303, resp.body
    cookie = parse_set_cookie(resp.header("Set-Cookie")[0])
    return Tokens(agent=basic_login("agent1"), admin=basic_login("admin1"), web=cookie.value)
