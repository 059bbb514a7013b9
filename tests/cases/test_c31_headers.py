"""C31: large request headers reach /validate intact; /validate's own response headers stay small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmsec_aio.app import server_limits
from llmsec_aio.config import load_config
from tests.conftest import basic
from tests.support.deployment import Deployment, FakeClock
from tests.support.gateway import running_gateway
from tests.support.livestack import http_session, live_gateway, nginx_stack, raw_request
from tests.support.nginx import EXAMPLE_CONF, REPO_ROOT

JUNK_SIZE = 300  # bytes per junk cookie, "name=value" included


def cookie_header(token: str, junk_cookies: int) -> str:
    junk = [f"junk{i:03d}=" for i in range(junk_cookies)]
    junk = [name + "x" * (JUNK_SIZE - len(name)) for name in junk]
    return "; ".join([*junk, f"auth_token={token}"])


async def form_cookie(base_url: str) -> str:
    async with http_session() as http, http.post(
        f"{base_url}/login", data={"username": "web1", "password": "web1-pw"}, allow_redirects=False,
    ) as resp:
        assert resp.status == 303
        return resp.cookies["auth_token"].value


def nginx_header_buffer() -> int:
    """The per-line size of `large_client_header_buffers` in the shipped nginx config."""
    match = re.search(r"^\s*large_client_header_buffers\s+\d+\s+(\d+)([kKmM]?)\s*;",
                      EXAMPLE_CONF.read_text(), re.M)
    assert match, "nginx.conf.example sets no large_client_header_buffers"
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]


def test_gateway_limit_is_not_below_nginx(deployment: Deployment) -> None:
    # A header nginx lets through must never be a 400 from the auth subrequest (-> 500).
    buffer = nginx_header_buffer()
    assert buffer == 32 * 1024
    shipped = load_config(REPO_ROOT / "config.yaml", env={})
    for config in (shipped, deployment.config()):
        limits = server_limits(config)
        assert limits["max_field_size"] >= buffer
        assert limits["max_line_size"] >= buffer


async def test_a_12kb_cookie_direct_in_process(deployment: Deployment, clock: FakeClock) -> None:
    async with live_gateway(deployment.config(), clock) as gw:
        cookie = cookie_header(await form_cookie(gw.base_url), 40)
        assert 12_000 <= len(cookie) <= 12_600
        async with http_session() as http, http.get(
            f"{gw.base_url}/validate", headers={"Cookie": cookie},
        ) as resp:
            assert resp.status == 200
            assert resp.headers["X-Auth-Request-User"] == "web1"


@pytest.mark.e2e
async def test_a_12kb_cookie_direct_to_the_real_serve_process(deployment: Deployment,
                                                             tmp_path: Path) -> None:
    # The real `llmsec-aio serve` (its own AppRunner limits, real clock), not just create_app.
    with running_gateway(deployment.config_path, tmp_path / "gw.log") as gw:
        cookie = cookie_header(await form_cookie(gw.base_url), 40)
        async with http_session() as http, http.get(
            f"{gw.base_url}/validate", headers={"Cookie": cookie},
        ) as resp:
            assert resp.status == 200


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "junk_cookies"), [("b-12kb", 40), ("c-30kb", 100), ("c-40kb", 136)])
async def test_large_cookie_through_ngx(name: str, junk_cookies: int, tmp_path: Path,
                                        deployment: Deployment, clock: FakeClock) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack:
        cookie = cookie_header(await form_cookie(stack.gateway.base_url), junk_cookies)
        async with http_session() as http, http.get(
            f"{stack.base_url}/llm/models", headers={"Cookie": cookie},
        ) as resp:
            body = await resp.read()
            status = resp.status
        fits = len(f"Cookie: {cookie}") <= nginx_header_buffer()
        if name == "b-12kb" or fits:
            # The shipped config accepts the line, so the gateway must too.
            assert (status, stack.recorder.statuses) == (200, [200]), body[:300]
            assert "Cookie" not in stack.stub.requests[0].headers
        else:
            # Too big for nginx: nginx itself refuses it with 400, /validate is never called.
            assert status == 400
            assert stack.recorder.calls == []
            assert stack.stub.requests == []
        assert status != 500


async def test_d_validate_response_headers_are_small(deployment: Deployment, clock: FakeClock) -> None:
    async with live_gateway(deployment.config(), clock) as gw:
        async with http_session() as http, http.post(
            f"{gw.base_url}/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")},
        ) as resp:
            v: str = (await resp.json())["token"]
        request = (f"GET /validate HTTP/1.1\r\nHost: gw.example.test\r\nAuthorization: Bearer {v}\r\n"
                   f"Connection: close\r\n\r\n").encode()
        answer = await raw_request(gw.served.host, gw.served.port, request)
    assert answer.status == 200
    print(f"C31 /validate response head for V: {len(answer.head)} bytes")
    assert len(answer.head) < 1024
    # No token (nor its signature) echoed back to nginx.
    assert v.encode() not in answer.head
    assert v.rsplit(".", 1)[1].encode() not in answer.head
