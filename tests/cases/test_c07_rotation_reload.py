"""C07: a rotation made by editing the key states and reloading takes effect at once, and
tokens signed by the previous keys keep working until their own exp (no restart)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from llmsec_aio.cli import main
from llmsec_aio.handlers import RUNTIME
from llmsec_aio.keys import thumbprint
from llmsec_aio.keystate import KeyEntry, KeyState, write_manifest
from tests.conftest import Client, basic, form_login, login
from tests.support.deployment import Deployment, FakeClock
from tests.support.gateway import GatewayProcess, running_gateway
from tests.support.keyring import adopt_manifest

AGENT = {"Authorization": basic("agent1", "agent1-pw")}


def install_k2(dep: Deployment, now: float) -> tuple[str, str]:
    """Add a new Ed25519 (signing) and RSA key; keep K1 published as retired."""
    ed2 = ed25519.Ed25519PrivateKey.generate()
    rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dep.write_key("c-rsa2.pem", rsa2)
    dep.write_key("d-ed2.pem", ed2)
    write_manifest(dep.keys_dir, [
        KeyEntry("a-rsa.pem", KeyState.RETIRED, now), KeyEntry("b-ed25519.pem", KeyState.RETIRED, now),
        KeyEntry("c-rsa2.pem", KeyState.NEXT, now), KeyEntry("d-ed2.pem", KeyState.ACTIVE, now),
    ])
    return thumbprint(ed2.public_key()), thumbprint(rsa2.public_key())


@pytest.fixture
def gateway(deployment: Deployment, tmp_path: Path) -> Iterator[GatewayProcess]:
    adopt_manifest(deployment, since=time.time() - 3600)
    with running_gateway(deployment.config_path, tmp_path / "gw.log") as gw:
        yield gw


async def check(http: aiohttp.ClientSession, base: str, **headers: str) -> int:
    async with http.get(f"{base}/validate", headers=headers) as r:
        return r.status


@pytest.mark.e2e
async def test_reload_rotates_at_once_without_a_restart(gateway: GatewayProcess,
                                                         deployment: Deployment) -> None:
    base = gateway.base_url
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/llm/login", headers=AGENT) as r:
            t1 = (await r.json())["token"]
        async with http.post(f"{base}/login", data={"username": "web1", "password": "web1-pw"},
                             allow_redirects=False) as r:
            c1 = r.cookies["auth_token"].value
        assert await check(http, base, Authorization=f"Bearer {t1}") == 200
        assert await check(http, base, Cookie=f"auth_token={c1}") == 200

        ed2_kid, rsa2_kid = install_k2(deployment, time.time())
        # The documented trigger: `llmsec-aio reload` signals the server and waits for the outcome.
        assert await asyncio.to_thread(main, ["--config", str(deployment.config_path), "reload"]) == 0

        async with http.get(f"{base}/.well-known/jwks.json") as r:
            kids = {k["kid"] for k in (await r.json())["keys"]}
        assert kids == {deployment.ed_kid, deployment.rsa_kid, ed2_kid, rsa2_kid}
        async with http.post(f"{base}/llm/login", headers=AGENT) as r:
            t2 = (await r.json())["token"]
        assert jwt.get_unverified_header(t2)["kid"] == ed2_kid
        assert await check(http, base, Authorization=f"Bearer {t2}") == 200
        assert await check(http, base, Authorization=f"Bearer {t1}") == 200
        assert await check(http, base, Cookie=f"auth_token={c1}") == 200
    assert gateway.process.poll() is None  # never restarted


async def test_old_tokens_live_until_their_own_exp(
        client: Client, deployment: Deployment, clock: FakeClock) -> None:
    t1, c1 = await login(client), await form_login(client)  # agent 120 s, web 900 s
    install_k2(deployment, clock.now)
    await client.app[RUNTIME].reload()

    async def status(**headers: str) -> int:
        return (await client.get("/validate", headers=headers)).status

    clock.advance(120 + 5 - 1)
    assert await status(Authorization=f"Bearer {t1}") == 200
    clock.advance(1)
    assert await status(Authorization=f"Bearer {t1}") == 401
    assert await status(Cookie=f"auth_token={c1}") == 200
    clock.advance(900 - 120)
    assert await status(Cookie=f"auth_token={c1}") == 401
