"""Reload triggers on a real `llmsec-aio serve` process: file changes, SIGHUP, the `reload` and
`status` commands, and 20 rotations under load that no valid token notices, verified downstream
by PyJWT's PyJWKClient (JWKS cached) and by joserfc."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet

from llmsec_aio.cli import main
from llmsec_aio.rotation import rotate
from tests.conftest import basic
from tests.support.deployment import Deployment, hash_pw
from tests.support.gateway import GatewayProcess, running_gateway
from tests.support.keyring import adopt_manifest

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": basic("admin1", "admin1-pw")}


@pytest.fixture
def gateway(deployment: Deployment, tmp_path: Path) -> Iterator[GatewayProcess]:
    adopt_manifest(deployment, since=time.time() - 3600)
    deployment.settings["keys"]["jwks_max_age"] = 0  # next keys may sign at once
    deployment.write()
    with running_gateway(deployment.config_path, tmp_path / "gw.log") as gw:
        yield gw


async def login_status(http: aiohttp.ClientSession, base: str, user: str, pw: str) -> int:
    async with http.post(f"{base}/llm/login", headers={"Authorization": basic(user, pw)}) as r:
        return r.status


async def test_an_edited_credentials_file_is_noticed_within_two_seconds(
        gateway: GatewayProcess, deployment: Deployment) -> None:
    async with aiohttp.ClientSession() as http:
        assert await login_status(http, gateway.base_url, "late", "late-pw") == 401
        deployment.users["late"] = {"role": "agent_fast", "hash": hash_pw("late-pw")}
        deployment.write()
        # Watch the log, not the login: polling a login that fails would earn a ban.
        await gateway.wait_for_log("reload (file change) done", within=2.0)
        assert await login_status(http, gateway.base_url, "late", "late-pw") == 200


async def test_sighup_and_a_broken_file_keep_serving(gateway: GatewayProcess, deployment: Deployment) -> None:
    deployment.config_path.write_text("server: [broken\n")
    gateway.signal(signal.SIGHUP)
    async with aiohttp.ClientSession() as http:
        await gateway.wait_for_log("reload (SIGHUP) failed", within=5.0)
        assert await login_status(http, gateway.base_url, "agent1", "agent1-pw") == 200
    assert gateway.process.poll() is None


def test_reload_and_status_commands(gateway: GatewayProcess, deployment: Deployment,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = str(deployment.config_path)
    assert main(["--config", config, "reload"]) == 0
    assert capsys.readouterr().out.startswith("reload ok: 2 keys, 3 users")
    assert main(["--config", config, "status"]) == 0
    out = capsys.readouterr().out
    assert f"running: pid {gateway.process.pid}, http://127.0.0.1:{gateway.port}" in out
    assert f"key {deployment.ed_kid}  EdDSA  active" in out
    assert f"key {deployment.rsa_kid}  RS256  next" in out
    assert "(SIGHUP): ok" in out
    deployment.config_path.write_text("leeway: many\n")
    assert main(["--config", config, "reload"]) == 1
    assert "reload FAILED" in capsys.readouterr().out


class Downstream:
    """Two independent verifiers that know nothing but the JWKS URL."""

    def __init__(self, jwks_url: str) -> None:
        self.jwks_url = jwks_url
        # JWKS and keys cached; the default 30 s cooldown between refreshes for an unknown kid is
        # off because these rotations promote keys at once (keys.jwks_max_age: 0). In production
        # a next key is published jwks_max_age before it signs, so cached sets already hold it.
        self.pyjwt = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, cooldown_duration=0)
        self.jose_keys: KeySet | None = None

    def _jose_keyset(self, refresh: bool) -> KeySet:
        if self.jose_keys is None or refresh:
            with urllib.request.urlopen(self.jwks_url) as r:  # noqa: S310 - a loopback test URL
                self.jose_keys = KeySet.import_key_set(json.load(r))
        return self.jose_keys

    def verify(self, token: str) -> tuple[str, str]:
        key = self.pyjwt.get_signing_key_from_jwt(token)
        alg = jwt.get_unverified_header(token)["alg"]
        by_pyjwt = jwt.decode(token, key, algorithms=[alg], audience="llmsec-test",
                              issuer="https://llm.example.test")
        kid = jwt.get_unverified_header(token)["kid"]
        keys = self._jose_keyset(refresh=False)
        if not any(k.kid == kid for k in keys.keys):
            keys = self._jose_keyset(refresh=True)  # like any caching verifier: refetch on a new kid
        with warnings.catch_warnings():
            # joserfc flags the polymorphic "EdDSA" name (RFC 9864 prefers "Ed25519"); the
            # gateway keeps "EdDSA" because PyJWT and most verifiers know only that name.
            warnings.simplefilter("ignore", SecurityWarning)
            by_jose = jose_jwt.decode(token, keys, algorithms=[alg]).claims
        assert by_jose["sub"] == by_pyjwt["sub"]
        return by_pyjwt["sub"], alg


async def test_twenty_rotations_under_load_drop_no_valid_token(
        gateway: GatewayProcess, deployment: Deployment) -> None:
    base, config_path = gateway.base_url, str(deployment.config_path)
    downstream = Downstream(f"{base}/.well-known/jwks.json")
    statuses: Counter[int] = Counter()
    live: list[str] = []
    stop = asyncio.Event()

    async def validator(http: aiohttp.ClientSession, worker: int) -> None:
        i = worker
        while not stop.is_set():
            token = live[i % len(live)]
            i += 1
            async with http.get(f"{base}/validate", headers={"Authorization": f"Bearer {token}"}) as r:
                statuses[r.status] += 1

    async def new_token(http: aiohttp.ClientSession) -> str:
        async with http.post(f"{base}/llm/login", headers=ADMIN) as r:
            assert r.status == 200
            token: str = (await r.json())["token"]
        return token

    async def rotate_once(http: aiohttp.ClientSession, alg: str) -> None:
        outcome = await asyncio.to_thread(rotate, deployment.config(), alg, time.time())
        active_kid = next(line.split()[0] for line in outcome.lines if line.endswith("is now active"))
        assert await asyncio.to_thread(main, ["--config", config_path, "reload"]) == 0
        token = await new_token(http)
        header = jwt.get_unverified_header(token)
        assert (header["kid"], header["alg"]) == (active_kid, alg), outcome.lines
        async with http.get(f"{base}/validate", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200  # the very first request after the reload
        assert await asyncio.to_thread(downstream.verify, token) == ("admin1", alg)
        live.append(token)

    async with aiohttp.ClientSession() as http:
        live.append(await new_token(http))
        workers = [asyncio.create_task(validator(http, n)) for n in range(8)]
        try:
            for n in range(20):
                await rotate_once(http, "RS256" if n % 2 == 0 else "EdDSA")
        finally:
            stop.set()
            await asyncio.gather(*workers)
    print(f"\nrotation under load: {sum(statuses.values())} validations of {len(live)} live tokens "
          f"during 20 rotations: {dict(statuses)}")
    assert set(statuses) == {200}, statuses
    for token in live:  # every token /validate accepted also verifies downstream
        assert downstream.verify(token)[0] == "admin1"
