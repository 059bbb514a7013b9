"""C24: malformed Basic headers on /llm/login get a JSON 401 with a Basic challenge, never a 5xx."""

from __future__ import annotations

import base64
import json
import logging
import secrets

import pytest

from tests.support.deployment import Deployment, FakeClock
from tests.support.livestack import LiveGateway, RawResponse, live_gateway, raw_request

PASSWORD = "agent1-pw"
VALID = base64.b64encode(f"agent1:{PASSWORD}".encode()).decode()
BIG = base64.b64encode(secrets.token_bytes(15 * 1024)).decode()  # 20 KB of base64

# name -> raw bytes of the Authorization field value (None: no header at all).
VARIANTS: dict[str, bytes | None] = {
    "scheme-only": b"Basic",
    "scheme-and-space": b"Basic ",
    "question-marks": b"Basic ???",
    "only-colon": b"Basic Og==",
    "no-colon": b"Basic YWdlbnQx",
    "valid-plus-padding": f"Basic {VALID}===".encode(),
    "utf8-invalid-password": b"Basic " + base64.b64encode(b"agent1:\xff\xfe"),
    # Sent on a raw socket: aiohttp's client would refuse to put 0xFF in a header.
    "raw-0xff-byte": f"Basic {VALID}".encode() + b"\xff",
    "20kb-base64": f"Basic {BIG}".encode(),
    "digest": b'Digest username="agent1"',
    "no-header": None,
}


def blob(value: bytes | None) -> str:
    """The credential part after the scheme, as it would appear if someone logged it."""
    if value is None or b" " not in value:
        return ""
    return value.split(b" ", 1)[1].decode("latin-1")


async def post(gw: LiveGateway, value: bytes | None) -> RawResponse:
    header = b"" if value is None else b"Authorization: " + value + b"\r\n"
    request = (b"POST /llm/login HTTP/1.1\r\nHost: gw.example.test\r\nContent-Length: 0\r\n"
               + header + b"Connection: close\r\n\r\n")
    return await raw_request(gw.served.host, gw.served.port, request)


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_malformed_basic(deployment: Deployment, clock: FakeClock, variant: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The real create_app with the header limits `llmsec-aio serve` uses, so the 20 KB header
    # reaches the handler, on a port a raw socket can reach (for the 0xFF byte).
    async with live_gateway(deployment.config(), clock) as gw:
        resp = await post(gw, VARIANTS[variant])
    assert resp.status == 401
    assert resp.header("Content-Type")[0].startswith("application/json")
    assert json.loads(resp.body) == {"error": "invalid_credentials",
                                     "message": "invalid username or password"}
    [challenge] = resp.header("WWW-Authenticate")
    assert challenge.startswith('Basic realm="')
    # Neither the password nor the credential blob may reach the logs, and no traceback either.
    text = caplog.text
    assert PASSWORD not in text
    secret = blob(VARIANTS[variant]).strip()
    if secret:
        assert secret not in text
        assert secret[:16] not in text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
