"""C19: `/validate` only ever answers 200 or 401, directly to GW and through NGX."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from multidict import CIMultiDictProxy

from llmsec_aio.config import DEFAULT_ROLES
from tests.conftest import basic
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import MISSING, b64u, b64u_json, parts, remint, sign, unb64u
from tests.support.livestack import ValidateRecorder, http_session, live_gateway, nginx_stack

AGENT_TTL = DEFAULT_ROLES["agent_reasoning"].ttl
BAD_STATUSES = {301, 302, 303, 304, 307, 308, 400, 403, 405, 429}


@dataclass(frozen=True)
class Probe:
    """One request to /validate (directly) or to a protected NGX location (which subrequests it)."""

    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    path: str | None = None  # the protected NGX path; None: one the policy allows for agents


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    via_nginx: bool = False


@dataclass(frozen=True)
class Ctx:
    v: str
    expired: str
    dep: Deployment
    jwks: dict[str, Any]
    now: float


Send = Callable[[Probe], Awaitable[Answer]]
Item = Callable[[Send, Ctx], Awaitable[int]]  # returns how many requests it sent


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with http_session() as session:
        yield session


async def _login(http: aiohttp.ClientSession, gw_url: str) -> str:
    async with http.post(f"{gw_url}/llm/login",
                         headers={"Authorization": basic("agent1", "agent1-pw")}) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
    return token


async def make_ctx(http: aiohttp.ClientSession, gw_url: str, dep: Deployment, clock: FakeClock) -> Ctx:
    expired = await _login(http, gw_url)
    # exp + leeway is the first second the gateway must refuse: move the clock, never sleep.
    clock.advance(AGENT_TTL + int(dep.settings["leeway"]))
    v = await _login(http, gw_url)
    async with http.get(f"{gw_url}/.well-known/jwks.json") as resp:
        jwks: dict[str, Any] = await resp.json()
    return Ctx(v=v, expired=expired, dep=dep, jwks=jwks, now=clock.now)


def gw_sender(http: aiohttp.ClientSession, gw_url: str) -> Send:
    async def send(probe: Probe) -> Answer:
        async with http.request(probe.method, f"{gw_url}/validate", headers=probe.headers,
                                data=probe.body, allow_redirects=False) as resp:
            await resp.read()
            answer = Answer(resp.status, resp.headers)
        # Straight from /validate: nothing cacheable, never a Basic challenge.
        assert "ETag" not in answer.headers and "Last-Modified" not in answer.headers
        assert not answer.headers.get("WWW-Authenticate", "").lower().startswith("basic")
        return answer

    return send


def ngx_sender(http: aiohttp.ClientSession, ngx_url: str) -> Send:
    async def send(probe: Probe) -> Answer:
        # /validate itself is not public behind NGX: a protected location triggers auth_request.
        path = probe.path or ("/llm/chat/completions" if probe.method == "POST" else "/llm/models")
        async with http.request(probe.method, f"{ngx_url}{path}", headers=probe.headers,
                                data=probe.body, allow_redirects=False) as resp:
            await resp.read()
            answer = Answer(resp.status, resp.headers, via_nginx=True)
        # nginx passes a 401's WWW-Authenticate on: a Basic one would pop a browser dialog.
        assert not answer.headers.get("WWW-Authenticate", "").lower().startswith("basic")
        return answer

    return send


def assert_status(answer: Answer, expected: int) -> None:
    assert answer.status not in BAD_STATUSES - {expected} and answer.status < 500, answer.status
    assert answer.status == expected


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- items 1-7 ---------------------------------------------------------------------------------


async def item1_html_no_credentials(send: Send, ctx: Ctx) -> int:
    answer = await send(Probe(headers={"Accept": "text/html"}))
    if answer.via_nginx:
        # /validate said 401 (checked on the recorder); the shipped config then sends a browser
        # to the login page: a redirect made by NGINX, never by the auth subrequest.
        assert answer.status == 303 and answer.headers["Location"] == "/login?rd=/llm/models"
    else:
        assert_status(answer, 401)
    return 1


async def item2_head_no_credentials(send: Send, ctx: Ctx) -> int:
    assert_status(await send(Probe(method="HEAD")), 401)
    return 1


async def item3_post_empty_body(send: Send, ctx: Ctx) -> int:
    assert_status(await send(Probe(method="POST", body=b"")), 401)
    return 1


async def item4_expired_token(send: Send, ctx: Ctx) -> int:
    # 401, not 403: nginx's `error_page 401` must be able to send the browser to /login.
    assert_status(await send(Probe(headers=bearer(ctx.expired))), 401)
    return 1


async def item6_route_not_allowed(send: Send, ctx: Ctx) -> int:
    # Directly, the original URI is the header NGINX would set; through NGX, the path itself.
    original = {"X-Original-URI": "/llm/admin/stats", "X-Original-Method": "GET"}
    assert_status(await send(Probe(headers={**original, **bearer(ctx.v)}, path="/llm/admin/stats")), 403)
    return 1


async def item5_conditional_request(send: Send, ctx: Ctx) -> int:
    conditional = {"If-None-Match": "*",
                   "If-Modified-Since": email.utils.formatdate(ctx.now + 86400, usegmt=True)}
    with_v = await send(Probe(headers={**conditional, **bearer(ctx.v)}))
    assert_status(with_v, 200)  # never 304
    assert_status(await send(Probe(headers=conditional)), 401)
    return 2


async def item7_burst_of_invalid_tokens(send: Send, ctx: Ctx) -> int:
    head, payload, _ = ctx.v.split(".")
    tokens = [f"{head}.{payload}.{b64u(secrets.token_bytes(64))}" for _ in range(300)]
    start = time.monotonic()
    answers: list[Answer] = []
    for i in range(0, len(tokens), 25):
        answers += await asyncio.gather(*(send(Probe(headers=bearer(t))) for t in tokens[i:i + 25]))
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"the burst took {elapsed:.2f}s; the case needs 300 within 5s"
    assert [a.status for a in answers] == [401] * 300  # never 429
    return 300


ITEMS: dict[str, Item] = {
    "1-html-no-credentials": item1_html_no_credentials,
    "2-head-no-credentials": item2_head_no_credentials,
    "3-post-empty-body": item3_post_empty_body,
    "4-expired-token": item4_expired_token,
    "5-conditional": item5_conditional_request,
    "6-route-not-allowed": item6_route_not_allowed,
    "7-300-invalid-in-5s": item7_burst_of_invalid_tokens,
}


# -- item 8: every malformed input of C01, C02, C04 and C12 ---------------------------------------

Builder = Callable[[Ctx], Probe]


def deliver(token: str, way: str) -> Probe:
    if way == "bearer":
        return Probe(headers=bearer(token))
    if way == "cookie":
        return Probe(headers={"Cookie": f"auth_token={token}"})
    return Probe(method="POST", headers={"Content-Type": "application/json"},
                 body=json.dumps({"token": token}).encode())


def elevated_claims(ctx: Ctx) -> dict[str, Any]:
    _, claims = parts(ctx.v)
    return {**claims, "role": "admin", "exp": int(ctx.now) + 600}


def c01(alg: object, sig: str, way: str) -> Builder:
    def build(ctx: Ctx) -> Probe:
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": ctx.dep.rsa_kid}
        if alg is MISSING:
            del header["alg"]
        return deliver(f"{b64u_json(header)}.{b64u_json(elevated_claims(ctx))}.{sig}", way)

    return build


def jwk(ctx: Ctx, kid: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [k for k in ctx.jwks["keys"] if k["kid"] == kid]
    [entry] = entries
    return entry


def rsa_secrets(entry: dict[str, Any]) -> dict[str, bytes]:
    n_raw = unb64u(entry["n"])
    public = rsa.RSAPublicNumbers(int.from_bytes(unb64u(entry["e"]), "big"),
                                  int.from_bytes(n_raw, "big")).public_key()
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    return {
        "spki-pem": public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo),
        "pkcs1-pem": public.public_bytes(enc.PEM, fmt.PKCS1),
        "der": public.public_bytes(enc.DER, fmt.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(entry).encode(),
        "n-raw": n_raw,
    }


def okp_secrets(entry: dict[str, Any]) -> dict[str, bytes]:
    x_raw = unb64u(entry["x"])
    public = ed25519.Ed25519PublicKey.from_public_bytes(x_raw)
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    return {
        "pem": public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo),
        "openssh": public.public_bytes(enc.OpenSSH, fmt.OpenSSH),
        "x-raw": x_raw,
    }


def c02(key: str, secret: str, alg: str, with_kid: bool) -> Builder:
    def build(ctx: Ctx) -> Probe:
        kid = ctx.dep.rsa_kid if key == "rsa" else ctx.dep.ed_kid
        entry = jwk(ctx, kid)
        material = (rsa_secrets(entry) if key == "rsa" else okp_secrets(entry))[secret]
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", **({"kid": kid} if with_kid else {})}
        return deliver(sign(header, elevated_claims(ctx), material), "bearer")

    return build


def c04(kid: Callable[[Ctx], object]) -> Builder:
    def build(ctx: Ctx) -> Probe:
        return deliver(remint(ctx.v, ctx.dep.rsa, header={"alg": "RS256", "kid": kid(ctx)}), "bearer")

    return build


def c12_bearer(value: Callable[[Ctx], str]) -> Builder:
    return lambda ctx: Probe(headers=bearer(value(ctx)))


def c12_body(body: bytes) -> Builder:
    return lambda ctx: Probe(method="POST", headers={"Content-Type": "application/json"}, body=body)


def _no_alg(ctx: Ctx) -> str:
    _, payload, signature = ctx.v.split(".")
    return f"{b64u_json({'typ': 'JWT'})}.{payload}.{signature}"


def _string_payload(ctx: Ctx) -> str:
    header, _ = parts(ctx.v)
    signing_input = f"{ctx.v.split('.')[0]}.{b64u(json.dumps('just a string'))}"
    assert header["alg"] == "EdDSA"
    return f"{signing_input}.{b64u(ctx.dep.ed.sign(signing_input.encode()))}"


C01_ALGS: dict[str, object] = {"none": "none", "None": "None", "NONE": "NONE", "nOnE": "nOnE",
                               "empty": "", "null": None, "missing": MISSING}
RSA_SECRETS = ("spki-pem", "pkcs1-pem", "der", "jwk-json", "n-raw")
OKP_SECRETS = ("pem", "openssh", "x-raw")
C04_KIDS: dict[str, Callable[[Ctx], object]] = {
    "removed": lambda ctx: MISSING,
    "null": lambda ctx: None,
    "int": lambda ctx: 123,
    "list": lambda ctx: [ctx.dep.rsa_kid],
    "object": lambda ctx: {"id": ctx.dep.rsa_kid},
    "empty": lambda ctx: "",
    "unknown": lambda ctx: "unknown-kid",
    "path": lambda ctx: "../../../../k",
    "backslash-path": lambda ctx: "..\\..\\k",
    "sql": lambda ctx: f"{ctx.dep.rsa_kid}' OR '1'='1",
    "10k-chars": lambda ctx: "k" * 10_000,
    "case-changed": lambda ctx: ctx.dep.rsa_kid.swapcase(),
}
C12_BEARERS: dict[str, Callable[[Ctx], str]] = {
    "x": lambda ctx: "x",
    "a.b": lambda ctx: "a.b",
    "a.b.c.d": lambda ctx: "a.b.c.d",
    "dots": lambda ctx: "...",
    "empty-objects": lambda ctx: "e30.e30.",
    "array-header": lambda ctx: f"W10.e30.{ctx.v.split('.')[2]}",
    "no-alg": _no_alg,
    "string-payload": _string_payload,
    "undecodable-header": lambda ctx: f"{b64u(bytes([0xFF, 0xFE, 0xFD]))}.{ctx.v.split('.', 1)[1]}",
    "6kb-random": lambda ctx: secrets.token_urlsafe(4608),
}
C12_BODIES: dict[str, bytes] = {
    "token-int": b'{"token":123}',
    "token-null": b'{"token":null}',
    "token-list": b'{"token":["x"]}',
    "token-object": b'{"token":{"a":1}}',
    "empty-object": b"{}",
    "array": b"[]",
    "string": b'"str"',
    "not-json": b"not json",
    "empty": b"",
    "200kb-junk-token": json.dumps({"token": "x" * 200_000}).encode(),
}

MALFORMED: dict[str, Builder] = {
    **{f"c01-alg-{name}-{'junksig' if sig else 'nosig'}-{way}": c01(alg, sig, way)
       for name, alg in C01_ALGS.items() for sig in ("", "AAAA") for way in ("bearer", "cookie", "body")},
    **{f"c02-rsa-{secret}-{alg}-{'kid' if k else 'nokid'}": c02("rsa", secret, alg, k)
       for secret in RSA_SECRETS for alg in ("HS256", "HS384", "HS512") for k in (True, False)},
    **{f"c02-okp-{secret}-{alg}-{'kid' if k else 'nokid'}": c02("okp", secret, alg, k)
       for secret in OKP_SECRETS for alg in ("HS256", "HS384", "HS512") for k in (True, False)},
    **{f"c04-kid-{name}": c04(kid) for name, kid in C04_KIDS.items()},
    **{f"c12-bearer-{name}": c12_bearer(value) for name, value in C12_BEARERS.items()},
    **{f"c12-body-{name}": c12_body(body) for name, body in C12_BODIES.items()},
}


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # "Never 5xx" also means no traceback: the fail-closed 401 must not hide a crash.
    bad = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, bad


def assert_recorded_validations(recorder: ValidateRecorder, expected_calls: int) -> None:
    # Whatever the client saw, the subrequest itself only ever got 200 or 401.
    assert len(recorder.calls) == expected_calls
    for call in recorder.calls:
        assert call.status in (200, 401, 403)
        assert "ETag" not in call.response_headers and "Last-Modified" not in call.response_headers
        assert not call.response_headers.get("WWW-Authenticate", "").lower().startswith("basic")


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", list(ITEMS))
async def test_direct_to_gw(item: str, deployment: Deployment, clock: FakeClock,
                            http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    async with live_gateway(deployment.config(), clock) as gw:
        ctx = await make_ctx(http, gw.base_url, deployment, clock)
        sent = await ITEMS[item](gw_sender(http, gw.base_url), ctx)
    assert_recorded_validations(gw.recorder, sent)
    assert_no_traceback(caplog)


@pytest.mark.e2e
@pytest.mark.parametrize("item", list(ITEMS))
async def test_through_ngx(item: str, tmp_path: Path, deployment: Deployment, clock: FakeClock,
                           http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack:
        ctx = await make_ctx(http, stack.gateway.base_url, deployment, clock)
        sent = await ITEMS[item](ngx_sender(http, stack.base_url), ctx)
        # One auth subrequest per client request, each 200 or 401; a 401 never reached the LLM.
        assert_recorded_validations(stack.recorder, sent)
        assert len(stack.stub.requests) == stack.recorder.statuses.count(200)
    assert_no_traceback(caplog)


@pytest.mark.parametrize("variant", list(MALFORMED))
async def test_malformed_direct_to_gw(variant: str, deployment: Deployment, clock: FakeClock,
                                      http: aiohttp.ClientSession,
                                      caplog: pytest.LogCaptureFixture) -> None:
    async with live_gateway(deployment.config(), clock) as gw:
        ctx = await make_ctx(http, gw.base_url, deployment, clock)
        assert_status(await gw_sender(http, gw.base_url)(MALFORMED[variant](ctx)), 401)
    assert_recorded_validations(gw.recorder, 1)
    assert_no_traceback(caplog)


@pytest.mark.e2e
@pytest.mark.parametrize("variant", list(MALFORMED))
async def test_malformed_through_ngx(variant: str, tmp_path: Path, deployment: Deployment,
                                     clock: FakeClock, http: aiohttp.ClientSession,
                                     caplog: pytest.LogCaptureFixture) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack:
        ctx = await make_ctx(http, stack.gateway.base_url, deployment, clock)
        assert_status(await ngx_sender(http, stack.base_url)(MALFORMED[variant](ctx)), 401)
        assert_recorded_validations(stack.recorder, 1)
        assert stack.stub.requests == []
    assert_no_traceback(caplog)
