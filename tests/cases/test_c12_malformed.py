"""C12: structurally malformed tokens and /validate JSON bodies get a prompt 401, never a 5xx or traceback."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable

import pytest

from tests.conftest import Client, login
from tests.support.casekit import assert_no_error_logs, validate_status
from tests.support.deployment import Deployment
from tests.support.jwtcraft import b64u, b64u_json, parts

# A 401 for junk must come from a quick check, not from a timeout or a slow path.
NORMAL_LATENCY = 1.0

Make = Callable[[str, Deployment], str]


def segments(v: str) -> tuple[str, str, str]:
    h, p, s = v.split(".")
    return h, p, s


def signed_with_payload(raw_payload: str) -> Make:
    """V's header and a payload that is valid JSON but not an object, correctly signed."""

    def make(v: str, dep: Deployment) -> str:
        signing_input = f"{segments(v)[0]}.{b64u(raw_payload)}"
        return f"{signing_input}.{b64u(dep.ed.sign(signing_input.encode()))}"

    return make


def header_without_alg(v: str, dep: Deployment) -> str:
    # Extra: V's real kid and typ but no alg, so key lookup succeeds and only `alg` is missing.
    _, p, s = segments(v)
    return f"{b64u_json({'typ': 'at+jwt', 'kid': dep.ed_kid})}.{p}.{s}"


BEARER: dict[str, Make] = {
    "x": lambda v, d: "x",
    "a.b": lambda v, d: "a.b",
    "a.b.c.d": lambda v, d: "a.b.c.d",
    "dots": lambda v, d: "...",
    "empty-objects": lambda v, d: "e30.e30.",
    "array-header": lambda v, d: f"W10.e30.{segments(v)[2]}",
    "header-typ-only": lambda v, d: f"{b64u_json({'typ': 'JWT'})}.{segments(v)[1]}.{segments(v)[2]}",
    "header-no-alg-real-kid": header_without_alg,
    "payload-string": signed_with_payload('"just a string"'),
    "payload-array": signed_with_payload("[]"),
    "payload-number": signed_with_payload("123"),
    "payload-null": signed_with_payload("null"),
    "header-bytes-FFFEFD": lambda v, d: ".".join((b64u(bytes([0xFF, 0xFE, 0xFD])), *segments(v)[1:])),
    "random-6KB": lambda v, d: secrets.token_urlsafe(4608),
    "random-6KB-3-segments": lambda v, d: ".".join(secrets.token_urlsafe(1536) for _ in range(3)),
}

JSON = "application/json"
# (raw body, Content-Type) for POST /validate with no Authorization header and no cookie.
BODIES: dict[str, tuple[bytes, str]] = {
    "token-int": (b'{"token":123}', JSON),
    "token-null": (b'{"token":null}', JSON),
    "token-list": (b'{"token":["x"]}', JSON),
    "token-object": (b'{"token":{"a":1}}', JSON),
    "empty-object": (b"{}", JSON),
    "array": (b"[]", JSON),
    "string": (b'"str"', JSON),
    "not-json": (b"not json", JSON),
    "empty-body": (b"", JSON),
    "200KB-token": (json.dumps({"token": "j" * 200 * 1024}).encode(), JSON),
    "token-empty-string": (b'{"token":""}', JSON),
    "invalid-utf8": (b'{"token":"\xff\xfe"}', JSON),
    "not-json-text-plain": (b"not json", "text/plain"),
}


async def test_control_v_passes(client: Client, deployment: Deployment) -> None:
    v = await login(client)
    assert await validate_status(client, v, "bearer") == 200
    assert await validate_status(client, v, "body") == 200
    # The re-signing helper is sound: with V's own claims object it yields a token that passes.
    resigned = signed_with_payload(json.dumps(parts(v)[1]))(v, deployment)
    assert await validate_status(client, resigned, "bearer") == 200


@pytest.mark.parametrize("make", BEARER.values(), ids=BEARER.keys())
async def test_malformed_bearer(client: Client, deployment: Deployment, caplog: pytest.LogCaptureFixture,
                                make: Make) -> None:
    token = make(await login(client), deployment)
    start = time.perf_counter()
    assert await validate_status(client, token, "bearer") == 401
    assert time.perf_counter() - start < NORMAL_LATENCY
    assert_no_error_logs(caplog)


@pytest.mark.parametrize(("body", "content_type"), BODIES.values(), ids=BODIES.keys())
async def test_malformed_validate_body(client: Client, caplog: pytest.LogCaptureFixture,
                                       body: bytes, content_type: str) -> None:
    client.session.cookie_jar.clear()  # no header and no cookie: only the body speaks
    start = time.perf_counter()
    resp = await client.post("/validate", data=body, headers={"Content-Type": content_type})
    await resp.read()
    assert resp.status == 401
    assert time.perf_counter() - start < NORMAL_LATENCY
    assert_no_error_logs(caplog)
