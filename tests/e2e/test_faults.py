"""Faults: unreadable keys at reload, a burst of 2,000 requests through NGINX, big Cookie headers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llmsec_aio.errors import ConfigError
from tests.conftest import Client, MakeClient, basic, login
from tests.support.casekit import roles_settings, runtime_of
from tests.support.deployment import Deployment, FakeClock
from tests.support.gateway import GatewayProcess, running_gateway
from tests.support.jwtcraft import b64u, b64u_json
from tests.support.livestack import http_session, nginx_stack
from tests.support.nginx import NginxInstance, running_nginx
from tests.support.stub_llm import StubLLM

MB = 1024 * 1024
BURST = 2000
RSS_GROWTH_LIMIT = 100 * MB


# ---- (a) the keys folder becomes unreadable during a reload --------------------------------

@contextmanager
def unreadable_key_files(keys_dir: Path) -> Iterator[None]:
    # Root ignores chmod, so the refusal the kernel would give anyone else is simulated where
    # the loader reads: every file in the keys folder raises EACCES.
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.parent.resolve() == keys_dir.resolve():
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "read_bytes", read_bytes)
        yield


@contextmanager
def unlistable_folder(keys_dir: Path) -> Iterator[None]:
    # A folder without read permission: listing it raises EACCES (and glob then sees no key).
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(os.fsdecode(path)).resolve() == keys_dir.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        yield


@contextmanager
def folder_replaced_by_a_file(keys_dir: Path) -> Iterator[None]:
    # No simulation needed: a regular file where the folder was.
    aside = keys_dir.with_name("keys.aside")
    keys_dir.rename(aside)
    keys_dir.write_text("not a folder\n")
    try:
        yield
    finally:
        keys_dir.unlink()
        aside.rename(keys_dir)


FAULTS: dict[str, Callable[[Path], AbstractContextManager[None]]] = {
    "key-files-unreadable": unreadable_key_files,
    "folder-unlistable": unlistable_folder,
    "folder-replaced-by-a-file": folder_replaced_by_a_file,
}


async def jwks_state(client: Client) -> tuple[int, str, bytes]:
    async with client.get("/.well-known/jwks.json") as resp:
        return resp.status, resp.headers["ETag"], await resp.read()


async def bearer_status(client: Client, token: str) -> int:
    async with client.get("/validate", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_reload_with_an_unreadable_keys_folder_keeps_the_old_keys(
        make_client: MakeClient, deployment: Deployment, fault: str) -> None:
    client = await make_client()
    runtime = runtime_of(client)
    token = await login(client)
    before = await jwks_state(client)
    snapshot = runtime.current

    with FAULTS[fault](deployment.keys_dir):
        with pytest.raises(ConfigError) as refused:
            await runtime.reload("test")
        # While the folder is still unreadable: the old state serves, whole.
        assert runtime.current is snapshot
        assert await bearer_status(client, token) == 200
        assert await jwks_state(client) == before
        fresh = await login(client)  # the old signing key still signs
        assert await bearer_status(client, fresh) == 200
    assert str(deployment.keys_dir) in str(refused.value)  # the message says where
    assert runtime.reloads[-1].ok is False

    # The folder is readable again: the next reload works and changes nothing for clients.
    await runtime.reload("test")
    assert runtime.reloads[-1].ok is True
    assert runtime.current is not snapshot
    assert await bearer_status(client, token) == 200
    assert await jwks_state(client) == before


@pytest.mark.e2e
async def test_a_live_gateway_survives_its_keys_folder_turning_into_a_file(
        deployment: Deployment, tmp_path: Path) -> None:
    # The real watcher notices the change by itself; nothing is simulated here.
    deployment.settings["server"] = {"watch_interval": 0.2, "state_dir": str(tmp_path / "state")}
    deployment.write()
    aside = deployment.keys_dir.with_name("keys.aside")
    with running_gateway(deployment.config_path, tmp_path / "gateway.log") as gw:
        async with http_session() as http:
            token = await gateway_login(http, gw.base_url)
            jwks = await fetch(http, f"{gw.base_url}/.well-known/jwks.json")
            deployment.keys_dir.rename(aside)
            deployment.keys_dir.write_text("not a folder\n")
            await gw.wait_for_log("reload (file change) failed", count=1)
            assert await validate(http, gw.base_url, token) == 200
            assert await fetch(http, f"{gw.base_url}/.well-known/jwks.json") == jwks
            assert await validate(http, gw.base_url, await gateway_login(http, gw.base_url)) == 200

            deployment.keys_dir.unlink()
            aside.rename(deployment.keys_dir)
            await gw.wait_for_log("reload (file change) done", count=1)
            assert await validate(http, gw.base_url, token) == 200
            assert await fetch(http, f"{gw.base_url}/.well-known/jwks.json") == jwks


async def gateway_login(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")}) as r:
        assert r.status == 200, await r.text()
        token: str = (await r.json())["token"]
        return token


async def validate(http: aiohttp.ClientSession, base: str, token: str) -> int:
    async with http.get(f"{base}/validate", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as r:
        return r.status, r.headers.get("ETag", ""), await r.read()


# ---- (b) a burst of 2,000 concurrent requests through NGINX ---------------------------------

@pytest.fixture
def burst_gateway(deployment: Deployment, tmp_path: Path) -> Iterator[GatewayProcess]:
    # Tokens must outlive the burst, however slow the machine.
    deployment.settings["roles"] = roles_settings(agent_reasoning=3600)
    deployment.write()
    with running_gateway(deployment.config_path, tmp_path / "gateway.log") as gw:
        yield gw


@pytest.fixture
def burst_nginx(tmp_path: Path, burst_gateway: GatewayProcess, stub: StubLLM) -> Iterator[NginxInstance]:
    with running_nginx(tmp_path, gateway_port=burst_gateway.port, llm_port=stub.port) as ngx:
        yield ngx


def junk_token() -> str:
    # Well-formed but invalid: an unknown kid, so it costs the gateway a lookup, not a parse error.
    header = b64u_json({"alg": "EdDSA", "typ": "at+jwt", "kid": secrets.token_urlsafe(16)})
    return f"{header}.{b64u_json({'sub': 'x'})}.{b64u(secrets.token_bytes(64))}"


@pytest.mark.e2e
async def test_a_burst_of_2000_concurrent_requests_gets_only_200_or_401(
        burst_nginx: NginxInstance, burst_gateway: GatewayProcess) -> None:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # one connection per request
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        valid = [await gateway_login(http, burst_nginx.base_url) for _ in range(20)]
        rss_before = burst_gateway.rss_bytes()
        peak = rss_before
        go = asyncio.Event()

        async def one(i: int) -> tuple[str, int | str]:
            # Half valid (20 tokens, so the cache is both hit and missed), half junk.
            kind, token = ("valid", valid[i % len(valid)]) if i % 2 else ("junk", junk_token())
            await go.wait()  # all 2,000 start together
            try:
                async with http.get(f"{burst_nginx.base_url}/llm/models",
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    return kind, r.status
            except aiohttp.ClientError as exc:
                return kind, type(exc).__name__

        async def sample_rss() -> None:
            nonlocal peak
            while True:
                peak = max(peak, burst_gateway.rss_bytes())
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(one(i)) for i in range(BURST)]
        sampler = asyncio.create_task(sample_rss())
        await asyncio.sleep(0.1)
        started = time.monotonic()
        go.set()
        results = await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        rss_after = burst_gateway.rss_bytes()

    statuses = Counter(results)
    expected = Counter({("valid", 200): BURST // 2, ("junk", 401): BURST // 2})
    errors = [line for line in burst_nginx.error_log_text().splitlines()
              if "[error]" in line or "[alert]" in line or "[crit]" in line]
    assert statuses == expected, (statuses, f"{elapsed:.1f} s", errors[:10], burst_gateway.log_text()[-2000:])
    assert burst_gateway.process.poll() is None
    assert peak - rss_before < RSS_GROWTH_LIMIT, (rss_before / MB, peak / MB, rss_after / MB)


# ---- (c) 8 KB and 16 KB Cookie headers through NGINX ---------------------------------------

def cookie_header(session: str, size: int, position: str) -> str:
    """Exactly `size` characters: junk cookies of about 64 characters each (random values, as
    analytics cookies look) plus the session cookie, first or last."""
    session_part = f"auth_token={session}"
    junk_size = size - len(session_part) - 2  # "; " between the session and the junk
    count = max(1, (junk_size + 2) // 66)
    base, extra = divmod(junk_size + 2, count)  # each part plus its "; "
    parts = []
    for i in range(count):
        width = base + (1 if i < extra else 0) - 2
        prefix = f"c{i}="
        parts.append(prefix + secrets.token_urlsafe(width)[:width - len(prefix)])
    junk = "; ".join(parts)
    return f"{session_part}; {junk}" if position == "first" else f"{junk}; {session_part}"


@pytest.mark.e2e
@pytest.mark.parametrize("size", [8 * 1024, 16 * 1024], ids=["8KB", "16KB"])
@pytest.mark.parametrize("position", ["first", "last"])
async def test_a_big_cookie_header_with_a_valid_session_gets_200(
        tmp_path: Path, deployment: Deployment, clock: FakeClock, size: int, position: str) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, http_session() as http:
        async with http.post(f"{stack.base_url}/login", allow_redirects=False,
                             data={"username": "web1", "password": "web1-pw"}) as r:
            assert r.status == 303
            session = r.cookies["auth_token"].value
        cookie = cookie_header(session, size, position)
        assert len(cookie) == size
        junk = cookie.replace(f"auth_token={session}", "")
        async with http.get(f"{stack.base_url}/llm/models", headers={"Cookie": cookie}) as r:
            assert r.status == 200, (r.status, stack.nginx.error_log_text()[-2000:])
        # Junk alone (no session) is a plain 401, not a parse failure turned into a 500.
        async with http.get(f"{stack.base_url}/llm/models", headers={"Cookie": junk}) as r:
            assert r.status == 401
        assert stack.recorder.statuses == [200, 401]
        assert len(stack.recorder.calls[0].request_headers["Cookie"]) == len(cookie)
