"""C21: Bearer scheme parsing on /validate (case-insensitive scheme, strict token68, no Basic)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from tests.conftest import Client, login
from tests.support.livestack import RawResponse, raw_request

Value = Callable[[str], str]  # V -> Authorization header value

ACCEPTED: dict[str, Value] = {
    "Bearer": lambda v: f"Bearer {v}",
    "bearer": lambda v: f"bearer {v}",
    "BEARER": lambda v: f"BEARER {v}",
    "bEaReR": lambda v: f"bEaReR {v}",
    "four-spaces": lambda v: f"Bearer    {v}",
    # The HTTP parser strips trailing whitespace (OWS) from field values.
    "trailing-space": lambda v: f"Bearer {v} ",
}

REFUSED: dict[str, Value] = {
    "scheme-only": lambda v: "Bearer",
    "scheme-and-space": lambda v: "Bearer ",
    "no-space": lambda v: f"Bearer{v}",
    "extra-word": lambda v: f"Bearer {v} extra",
    "two-credentials": lambda v: f"Bearer {v},Bearer {v}",
    "token-scheme": lambda v: f"Token {v}",
    # /validate never accepts a Basic credential, even a correct one.
    "basic-correct-password": lambda v: "Basic " + base64.b64encode(b"agent1:agent1-pw").decode(),
}


async def validate(client: Client, authorization: str) -> RawResponse:
    # A raw socket, so the header reaches the server byte for byte (spaces included).
    request = (f"GET /validate HTTP/1.1\r\nHost: gw.example.test\r\n"
               f"Authorization: {authorization}\r\nConnection: close\r\n\r\n").encode()
    assert client.server.host is not None and client.server.port is not None
    return await raw_request(client.server.host, client.server.port, request)


@pytest.mark.parametrize("variant", list(ACCEPTED))
async def test_accepted(client: Client, variant: str) -> None:
    v = await login(client)
    assert (await validate(client, ACCEPTED[variant](v))).status == 200


@pytest.mark.parametrize("variant", list(REFUSED))
async def test_refused(client: Client, variant: str) -> None:
    v = await login(client)
    resp = await validate(client, REFUSED[variant](v))
    assert resp.status == 401
    # A 401 from /validate must not invite the browser to a Basic password dialog.
    assert resp.header("WWW-Authenticate") == ['Bearer error="invalid_token"']
