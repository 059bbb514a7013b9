"""Key lifecycle through the running app: rotate, compromise, refused removals, JWKS ETags."""

from __future__ import annotations

import jwt
import pytest

from llmsec_aio.errors import ConfigError
from llmsec_aio.handlers import RUNTIME
from llmsec_aio.keystate import load_manifest, write_manifest
from llmsec_aio.reloader import rotate_if_due
from llmsec_aio.rotation import add_next_key, compromise, key_overlap, rotate
from tests.conftest import Client, MakeClient, login
from tests.support.deployment import Deployment, FakeClock
from tests.support.keyring import adopt_manifest


async def jwks(client: Client) -> tuple[set[str], str]:
    resp = await client.get("/.well-known/jwks.json")
    return {k["kid"] for k in (await resp.json())["keys"]}, resp.headers["ETag"]


async def status(client: Client, token: str) -> int:
    return (await client.get("/validate", headers={"Authorization": f"Bearer {token}"})).status


@pytest.fixture
async def rotating(make_client: MakeClient, deployment: Deployment, clock: FakeClock) -> Client:
    adopt_manifest(deployment, since=clock.now - 3600)
    return await make_client()


async def test_rotation_switches_the_signer_and_keeps_old_tokens(
        rotating: Client, deployment: Deployment, clock: FakeClock) -> None:
    runtime = rotating.app[RUNTIME]
    old = await login(rotating)
    kids_before, etag_before = await jwks(rotating)
    rotate(deployment.config(), "RS256", clock.now)
    await runtime.reload()
    new = await login(rotating)
    assert jwt.get_unverified_header(new) == {"alg": "RS256", "kid": deployment.rsa_kid, "typ": "at+jwt"}
    assert await status(rotating, old) == 200 and await status(rotating, new) == 200
    kids_after, etag_after = await jwks(rotating)
    # The old signer stays published (retired) and a fresh RS256 key is published as next.
    assert kids_before < kids_after and len(kids_after) == 3 and etag_after != etag_before
    states = {k.kid: k.state.value for k in runtime.current.keyring.keys.values()}
    assert states[deployment.ed_kid] == "retired" and states[deployment.rsa_kid] == "active"


async def test_etag_changes_only_with_the_published_set(rotating: Client) -> None:
    runtime = rotating.app[RUNTIME]
    _, etag = await jwks(rotating)
    await runtime.reload()
    assert (await jwks(rotating))[1] == etag
    resp = await rotating.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag


async def test_a_next_key_is_published_but_does_not_sign(
        rotating: Client, deployment: Deployment, clock: FakeClock) -> None:
    key = add_next_key(deployment.config(), "EdDSA", clock.now)
    await rotating.app[RUNTIME].reload()
    assert key.kid in (await jwks(rotating))[0]
    assert jwt.get_unverified_header(await login(rotating))["kid"] == deployment.ed_kid


async def test_a_fresh_next_key_waits_for_the_jwks_max_age(
        rotating: Client, deployment: Deployment, clock: FakeClock) -> None:
    clock.now = float(int(clock.now))  # the manifest keeps whole seconds
    add_next_key(deployment.config(), "EdDSA", clock.now)
    clock.advance(100)
    outcome = rotate(deployment.config(), "EdDSA", clock.now)
    assert "rotate again in 200 s" in outcome.lines[0]
    await rotating.app[RUNTIME].reload()
    assert jwt.get_unverified_header(await login(rotating))["kid"] == deployment.ed_kid


async def test_compromised_key_is_refused_at_once_even_when_cached(
        rotating: Client, deployment: Deployment, clock: FakeClock) -> None:
    runtime = rotating.app[RUNTIME]
    token = await login(rotating)
    assert await status(rotating, token) == 200  # now cached
    compromise(deployment.config(), deployment.ed_kid, clock.now)
    await runtime.reload()
    assert await status(rotating, token) == 401
    assert deployment.ed_kid not in (await jwks(rotating))[0]
    # No next EdDSA key was published, so a new one took over at once.
    replacement = await login(rotating)
    header = jwt.get_unverified_header(replacement)
    assert header["alg"] == "EdDSA" and header["kid"] not in (deployment.ed_kid, deployment.rsa_kid)
    assert await status(rotating, replacement) == 200


async def test_removing_a_key_that_can_verify_live_tokens_is_refused(
        rotating: Client, deployment: Deployment, clock: FakeClock) -> None:
    runtime = rotating.app[RUNTIME]
    token = await login(rotating)
    rotate(deployment.config(), "RS256", clock.now)
    await runtime.reload()
    (deployment.keys_dir / "b-ed25519.pem").unlink()
    entries = load_manifest(deployment.keys_dir, {p.name for p in deployment.keys_dir.glob("*.pem")} | {
        "b-ed25519.pem"}) or []
    write_manifest(deployment.keys_dir, [e for e in entries if e.file != "b-ed25519.pem"])
    with pytest.raises(ConfigError, match="can still verify live tokens"):
        await runtime.reload()
    assert await status(rotating, token) == 200


async def test_rotation_drops_retired_keys_after_the_overlap(
        rotating: Client, deployment: Deployment, clock: FakeClock) -> None:
    runtime = rotating.app[RUNTIME]
    token = await login(rotating)
    rotate(deployment.config(), "RS256", clock.now)
    await runtime.reload()
    clock.advance(key_overlap(deployment.config()))
    outcome = rotate(deployment.config(), "RS256", clock.now)
    assert any(f"removed retired key {deployment.ed_kid}" in line for line in outcome.lines)
    assert not (deployment.keys_dir / "b-ed25519.pem").exists()
    await runtime.reload()
    assert deployment.ed_kid not in (await jwks(rotating))[0]
    assert await status(rotating, token) == 401


async def test_scheduled_rotation_runs_when_the_active_key_is_old_enough(
        make_client: MakeClient, deployment: Deployment, clock: FakeClock) -> None:
    adopt_manifest(deployment, since=clock.now)
    deployment.settings["keys"] = {"dir": "keys", "algorithm": "EdDSA", "rotate_every": 3600,
                                   "jwks_max_age": 0}
    deployment.write()
    client = await make_client()
    runtime = client.app[RUNTIME]
    done: list[str] = []
    runtime.on_reload.append(lambda outcome: done.append(outcome.trigger))
    assert not await rotate_if_due(runtime)
    clock.advance(3600)
    assert await rotate_if_due(runtime)
    assert done == ["scheduled rotation"] and runtime.reloads[-1].ok
    signing = runtime.current.keyring.signing
    assert signing.kid not in (deployment.ed_kid, deployment.rsa_kid) and signing.alg == "EdDSA"
    assert jwt.get_unverified_header(await login(client))["kid"] == signing.kid
