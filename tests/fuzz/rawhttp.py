"""Byte-exact HTTP/1.1 requests for the fuzz tests, and the status rules they assert."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import Sequence

from hypothesis import note
from hypothesis.errors import InvalidArgument

from tests.support.livestack import RawResponse, raw_request
from tests.support.threaded import ThreadedApp

# What /validate may ever answer: NGINX turns anything else into a 500 for the client.
VALIDATE_STATUSES = frozenset({200, 401, 403})
# Bytes NGINX refuses in a header value itself (NUL) or that end the line (CR, LF). NGINX
# forwards every other byte to the `auth_request` subrequest.
NGINX_REFUSED = frozenset(b"\x00\r\n")
# Bytes an RFC 9110 field value may not hold (controls other than HTAB): aiohttp's parser
# answers 400 before any handler runs, so these must never reach the gateway through NGINX.
FIELD_VALUE_FORBIDDEN = frozenset(set(range(0x20)) - {0x09}) | {0x7F}

_addresses = itertools.count(1)


def fresh_client_address() -> bytes:
    """A new X-Real-IP per call (believed from loopback, a trusted proxy), so login throttling
    bans none of the fuzzed logins and every one of them reaches the password check."""
    n = next(_addresses)
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}".encode()


def forwardable(value: bytes) -> bytes:
    """`value` without the bytes NGINX would never forward in a header value."""
    return bytes(b for b in value if b not in NGINX_REFUSED)


def field_value(value: bytes) -> bytes:
    """`value` as a valid HTTP field value: what the gateway's own parser accepts."""
    return bytes(b for b in value if b not in FIELD_VALUE_FORBIDDEN)


def build_request(method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]] = (),
                  body: bytes | None = None) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def send(gw: ThreadedApp, method: bytes, target: bytes,
         headers: Sequence[tuple[bytes, bytes]] = (), body: bytes | None = None) -> RawResponse:
    """One request on its own connection, exactly as given; the answer read to EOF."""
    return send_to(gw.host, gw.port, build_request(method, target, headers, body))


def send_to(host: str, port: int, request: bytes) -> RawResponse:
    # Hypothesis prints notes with a failing example: the exact bytes sent, ready to replay.
    with contextlib.suppress(InvalidArgument):  # outside a test (a fixture's login)
        note(f"request: {request[:2000]!r}")
    return asyncio.run(raw_request(host, port, request))


def basic_header(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


def assert_validate_status(response: RawResponse) -> None:
    assert response.status in VALIDATE_STATUSES, (response.status, response.head, response.body[:300])


def assert_not_server_error(response: RawResponse) -> None:
    assert 200 <= response.status < 500, (response.status, response.head, response.body[:300])
