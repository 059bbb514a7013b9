"""The HTTP endpoints: parse the request, call the domain, answer. No policy lives here."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import audit
from .config import RoleConfig
from .cookies import session_cookie
from .errors import (
    AuthenticationError,
    BadRequest,
    Forbidden,
    GatewayError,
    InvalidToken,
    LoginMethodNotAllowed,
    RevocationNotStored,
    TooManyAttempts,
)
from .httpauth import (
    MAX_REDIRECT,
    MalformedCredentials,
    basic_credentials,
    bearer_token,
    client_address,
    local_redirect,
)
from .keys import KeyRing
from .metrics import Metrics
from .passwords import check_password_async
from .revocation import Revocation
from .revocation_store import StoreUnavailable
from .runtime import Runtime, Snapshot
from .shared import SharedState
from .tokens import Claims, IssuedToken
from .users import User

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
BCRYPT_EXECUTOR = web.AppKey("bcrypt_executor", Executor)
SHARED = web.AppKey("shared_state", SharedState)
METRICS = web.AppKey("metrics", Metrics)
ADMIN_ROLE = "admin"
METRICS_ROLES = frozenset({"monitoring", ADMIN_ROLE})

# /validate reads a JSON body only when it is this small; NGINX's subrequest has none.
MAX_VALIDATE_BODY = 8192
NO_STORE = {"Cache-Control": "no-store"}
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="llmsec-aio", charset="UTF-8"'}
BEARER_CHALLENGE = InvalidToken.headers


def json_error(exc: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status, headers={**NO_STORE, **(headers or {})})


def client_of(request: web.Request) -> str:
    """The client address, from NGINX's headers only when NGINX (a trusted proxy) sent them."""
    trusted = request.app[RUNTIME].current.config.server.trusted_proxies
    return client_address(request.remote, request.headers.get("X-Real-IP"),
                          request.headers.get("X-Forwarded-For"), trusted)


async def authenticate(request: web.Request, snap: Snapshot, username: str | None,
                       password: str | None, method: str) -> tuple[User, RoleConfig]:
    """Check credentials with one bcrypt run whatever the cause of failure (no enumeration),
    unless a ban is in force: then no bcrypt at all, and TooManyAttempts."""
    throttle, metrics = request.app[SHARED].throttle, request.app[METRICS]
    client = client_of(request)

    def outcome(result: str, role: str | None = None) -> None:
        metrics.logins.labels(method, result).inc()
        audit.event("login", outcome=result, method=method, user=username or "", role=role,
                    client=client)

    wait = await throttle.retry_after(username or "", client)
    if wait is not None:
        outcome("banned")
        raise TooManyAttempts(wait)
    user = snap.users.get(username) if username else None
    usable = user is not None and not user.disabled and password is not None
    hashed = user.password_hash if usable and user is not None else snap.dummy_hash
    runtime, ttl = request.app[RUNTIME], snap.config.credentials.verified_cache_ttl
    now = runtime.clock()
    if usable and ttl and runtime.verified.check(username or "", password or "", hashed, now):
        ok = True  # verified with bcrypt within the last `ttl` seconds: skip the 250 ms
    else:
        ok = await check_password_async(request.app[BCRYPT_EXECUTOR], password or "", hashed)
        if ok and usable and ttl:
            runtime.verified.remember(username or "", password or "", hashed, now + ttl)
    if not (ok and usable and user is not None):
        outcome("failure")
        if await throttle.failed(username or "", client):
            metrics.bans.inc()
            audit.event("ban", user=username or "", client=client, seconds=throttle.limits.ban)
        raise AuthenticationError()
    await throttle.succeeded(user.name, client)
    role = snap.config.roles[user.role]
    if method not in role.login:
        outcome("method_not_allowed", role.name)
        raise LoginMethodNotAllowed()
    outcome("success", role.name)
    return user, role


def issue_token(snap: Snapshot, user: str, role: RoleConfig) -> IssuedToken:
    issued = snap.tokens.issue(user, role.name, role.ttl)
    claims = issued.claims
    audit.event("token_issued", user=user, role=role.name, jti=claims.jti, kid=claims.kid,
                exp=int(claims.exp))
    return issued


async def llm_login(request: web.Request) -> web.Response:
    """POST /llm/login: HTTP Basic in, a JWT out. Query strings and bodies are ignored."""
    snap = request.app[RUNTIME].current
    credentials = basic_credentials(request.headers.get("Authorization"))
    # An unreadable header counts as a failed login of no one, so junk cannot dodge regulation.
    username, password = credentials or ("", None)
    try:
        user, role = await authenticate(request, snap, username, password, method="basic")
    except AuthenticationError as exc:
        return json_error(exc, BASIC_CHALLENGE)
    except TooManyAttempts as exc:
        return json_error(exc, {"Retry-After": str(exc.retry_after)})
    except LoginMethodNotAllowed as exc:
        return json_error(exc)
    issued = issue_token(snap, user.name, role)
    body = {
        "token": issued.token, "access_token": issued.token, "token_type": "Bearer",
        "expires_in": issued.expires_in, "expires_at": int(issued.claims.exp),
    }
    return web.json_response(body, headers=NO_STORE)


@dataclass(frozen=True)
class Presented:
    value: str
    source: str  # "bearer", "cookie" or "body"


async def token_from(request: web.Request, cookie_name: str, *, read_body: bool = True) -> Presented | None:
    """Bearer header, then the cookie, then (for /validate) a small JSON body {"token": ...}."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        return Presented(token, "bearer")
    token = request.cookies.get(cookie_name)
    if token:
        return Presented(token, "cookie")
    length = request.content_length
    if not read_body or not request.body_exists or length is None or length > MAX_VALIDATE_BODY:
        return None
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        return None
    value = body.get("token") if isinstance(body, dict) else None
    return Presented(value, "body") if isinstance(value, str) and value else None


async def verified(request: web.Request, snap: Snapshot, token: str) -> Claims:
    """Claims of a token that is valid now: signature (or cache), key, revocation and user."""
    runtime = request.app[RUNTIME]
    claims = await runtime.cache.get(token)
    if claims is None:
        claims = snap.tokens.verify(token)
        await runtime.cache.put(token, claims)
    elif snap.keyring.get(claims.kid) is None:  # removed or compromised since it was cached
        raise InvalidToken("unknown_kid")
    # Checked on every request, cached or not, so a revocation is never outlived by the cache.
    if request.app[SHARED].is_revoked(claims):
        raise InvalidToken("revoked")
    user = snap.users.get(claims.sub)
    if user is None or user.disabled or user.role != claims.role:
        raise InvalidToken("unknown_user")
    return claims


def _renewal(snap: Snapshot, claims: Claims) -> dict[str, str]:
    """Sliding sessions: a cookie past half its life gets a fresh one, which NGINX hands to the
    browser (`auth_request_set` + `add_header Set-Cookie`). An idle session still ends at exp."""
    if claims.exp - snap.tokens.clock() >= (claims.exp - claims.iat) / 2:
        return {}
    role = snap.config.roles[claims.role]
    issued = issue_token(snap, claims.sub, role)
    return {"X-Auth-Request-Set-Cookie": session_cookie(snap.config.cookie, issued.token, role.ttl)}


def _identity_headers(claims: Claims) -> dict[str, str]:
    return {
        "X-Auth-Request-User": claims.sub,
        "X-Auth-Request-Role": claims.role,
        "X-Auth-Request-Expires": str(int(claims.exp)),
        **NO_STORE,
        **_decision_expiry(),
    }


def _decision_expiry() -> dict[str, str]:
    """For NGINX's opt-in decision micro-cache: keep this answer until the end of the current
    second of NGINX's (whole-second) clock, so a revocation applies through it within 1 s. A
    relative `1` would last up to 2 s. Wall-clock on purpose: NGINX reads it against its own."""
    return {"X-Accel-Expires": f"@{int(time.time())}"}


async def validate(request: web.Request) -> web.Response:
    """Any method /validate: NGINX's auth_request target. Answers 200 or 401, nothing else."""
    snap, metrics = request.app[RUNTIME].current, request.app[METRICS]
    reason = "error"
    try:
        token = await token_from(request, snap.config.cookie.name)
        if token is None:
            raise InvalidToken("missing")
        claims = await verified(request, snap, token.value)
        uri = request.headers.get("X-Original-URI")
        if uri is not None:  # without it (a direct call), the token alone is checked
            method = request.headers.get("X-Original-Method", "")
            decision = snap.config.policy.decide(claims.role, claims.sub, method, uri)
            if not decision.allowed:
                log.info("validate: 403 for %r (%s) %s %s: %s %s", claims.sub, claims.role, method,
                         uri[:200], decision.reason, decision.rule or "")
                metrics.decisions.labels("denied", decision.reason).inc()
                return json_error(Forbidden("this identity may not use this route"), _decision_expiry())
        headers = _identity_headers(claims)
        if token.source == "cookie":
            headers |= _renewal(snap, claims)
        metrics.valid.inc()
        return web.Response(headers=headers)
    except (InvalidToken, MalformedCredentials) as exc:
        reason = exc.reason if isinstance(exc, InvalidToken) else "malformed"
        log.debug("validate: 401 (%s)", reason)
    except Exception:
        # Fail closed: NGINX would turn a 5xx into a 500 for the client, and a 2xx would let it in.
        log.exception("validate: unexpected error, answering 401")
    metrics.decisions.labels("invalid", reason).inc()
    return json_error(InvalidToken(), {**BEARER_CHALLENGE, **_login_redirect(request)})


def _login_redirect(request: web.Request) -> dict[str, str]:
    """Where NGINX sends a browser after this 401: the login page, back to where it was."""
    uri = request.headers.get("X-Original-URI", "")
    target = local_redirect(uri[:MAX_REDIRECT])
    return {"X-Auth-Request-Redirect": "/login?rd=" + quote(target, safe="/")}


async def bearer_of_role(request: web.Request, roles: frozenset[str], refusal: str) -> Claims:
    """The claims of a valid Bearer token (never a cookie: no cross-site use) whose role is in
    `roles`; raises InvalidToken (401) or Forbidden (403) for the error middleware to answer."""
    try:
        token = bearer_token(request.headers.get("Authorization"))
    except MalformedCredentials:
        raise InvalidToken("malformed") from None
    if token is None:
        raise InvalidToken("missing")
    claims = await verified(request, request.app[RUNTIME].current, token)
    if claims.role not in roles:
        raise Forbidden(refusal)
    return claims


async def admin_revoke(request: web.Request) -> web.Response:
    """POST /admin/revoke {"jti": ...} or {"sub": ...}: admin Bearer tokens only (no cookie,
    so a cross-site form cannot use an admin's browser session)."""
    snap, shared = request.app[RUNTIME].current, request.app[SHARED]
    claims = await bearer_of_role(request, frozenset({ADMIN_ROLE}), "only the admin role may revoke")
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        body = None
    keep_for = snap.config.max_ttl + snap.config.leeway
    if isinstance(body, dict) and len(body) == 1 and isinstance(body.get("jti"), str) and body["jti"]:
        record = Revocation("jti", body["jti"], shared.clock(), shared.clock() + keep_for)
    elif isinstance(body, dict) and len(body) == 1 and isinstance(body.get("sub"), str) and body["sub"]:
        record = shared.revoke_subject(body["sub"], keep_for)
    else:
        return json_error(BadRequest('expected a JSON body {"jti": "..."} or {"sub": "..."}'))
    try:
        await shared.revoke(record)
    except StoreUnavailable as exc:
        log.error("admin revoke: %s", exc)
        return json_error(RevocationNotStored())
    audit.event("revoked", kind=record.kind, value=record.value, by=claims.sub)
    return web.json_response({"revoked": {"kind": record.kind, "value": record.value}},
                             headers=NO_STORE)


def _jwks_response(request: web.Request, keyring: KeyRing, max_age: int) -> web.Response:
    headers = {"ETag": keyring.etag, "Cache-Control": f"public, max-age={max_age}"}
    if keyring.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=keyring.jwks_body, content_type="application/json", headers=headers)


async def jwks(request: web.Request) -> web.Response:
    """GET /.well-known/jwks.json: public keys only, so downstream services verify locally."""
    snap = request.app[RUNTIME].current
    return _jwks_response(request, snap.keyring, snap.config.keys.jwks_max_age)


async def openid_configuration(request: web.Request) -> web.Response:
    """GET /.well-known/openid-configuration: where the keys are and what signs."""
    snap = request.app[RUNTIME].current
    issuer = snap.config.issuer.rstrip("/")
    algs = sorted({k.alg for k in snap.keyring.keys.values()})
    body = {
        "issuer": snap.config.issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/llm/login",
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "claims_supported": ["iss", "aud", "sub", "client_id", "role", "iat", "nbf", "exp", "jti"],
    }
    max_age = snap.config.keys.jwks_max_age
    return web.json_response(body, headers={"Cache-Control": f"public, max-age={max_age}"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    """GET /metrics: for a Bearer token of the monitoring or admin role (see also metrics.port)."""
    await bearer_of_role(request, METRICS_ROLES, "only the monitoring and admin roles may read metrics")
    return metrics_response(request.app[METRICS])


def metrics_response(metrics: Metrics) -> web.Response:
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, **NO_STORE})


async def readyz(request: web.Request) -> web.Response:
    """Ready when keys and users are loaded (they are, or the process would not run) and Redis,
    when configured, is reachable; otherwise 503 with the reasons."""
    shared = request.app[SHARED]
    reasons = []
    if shared.redis_up is False:
        reasons.append("redis is unreachable")
    snap = request.app[RUNTIME].current
    if not snap.users.users:
        reasons.append("no users are loaded")
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503,
                                 headers=NO_STORE)
    return web.json_response({"status": "ready", "keys": len(snap.keyring.keys),
                              "users": len(snap.users.users)}, headers=NO_STORE)


async def healthz(request: web.Request) -> web.Response:
    """Liveness, and whether Redis (when configured) is reachable."""
    body = {"status": "ok"}
    redis_up = request.app[SHARED].redis_up
    if redis_up is not None:
        body["redis"] = "up" if redis_up else "down"
    return web.json_response(body, headers=NO_STORE)
