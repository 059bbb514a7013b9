"""People in a browser: the login form, the /me page and logout, with a login-CSRF check."""

from __future__ import annotations

import html
import logging
import time
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from . import audit
from .cookies import cleared_cookie, session_cookie
from .errors import (
    AuthenticationError,
    BadRequest,
    Forbidden,
    InvalidToken,
    LoginMethodNotAllowed,
    RevocationNotStored,
    TooManyAttempts,
)
from .handlers import (
    NO_STORE,
    RUNTIME,
    SHARED,
    authenticate,
    issue_token,
    json_error,
    token_from,
    verified,
)
from .httpauth import MalformedCredentials, local_redirect
from .loginpage import render_login_page, render_page
from .revocation_store import StoreUnavailable

log = logging.getLogger(__name__)


def _single(form: MultiDictProxy[Any], name: str) -> str | None:
    """A form field sent exactly once as text; anything else counts as absent."""
    values = form.getall(name, [])
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def cross_site(request: web.Request) -> bool:
    """True when the browser says this POST comes from another site (login CSRF, logout CSRF).

    `Sec-Fetch-Site` is trusted when present; otherwise `Origin` must name this very site, as
    NGINX passes it (`Host` with its port, `X-Forwarded-Proto`). Clients that send neither
    (curl, agents) are not browsers and pass.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
    return origin != f"{scheme}://{request.host}"


async def login_page(request: web.Request) -> web.Response:
    """GET /login: the form, remembering where to go afterwards."""
    rd = request.query.get("rd") or request.query.get("next") or "/"
    return render_login_page(rd=local_redirect(rd))


async def login_form(request: web.Request) -> web.Response:
    """POST /login: check the form, set the cookie, 303 to a local `rd` (or `next`)."""
    if cross_site(request):
        return json_error(Forbidden("a login from another site is refused"))
    snap = request.app[RUNTIME].current
    try:
        form = await request.post()
    except ValueError:  # not UTF-8, or broken multipart (UnicodeDecodeError is a ValueError)
        raise BadRequest("the form could not be read") from None
    username, password = _single(form, "username"), _single(form, "password")
    rd = local_redirect(_single(form, "rd") or _single(form, "next")
                        or request.query.get("rd") or request.query.get("next"))
    try:
        user, role = await authenticate(request, snap, username, password, method="form")
    except (AuthenticationError, LoginMethodNotAllowed):
        # The same page for every failure, including a role that may not use the form.
        return render_login_page(rd=rd, username=username or "",
                                 error="Invalid username or password.", status=401)
    except TooManyAttempts as exc:
        page = render_login_page(rd=rd, username=username or "", status=429,
                                 error=f"Too many failed attempts. Try again in {exc.retry_after} s.")
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    issued = issue_token(snap, user.name, role)
    return web.Response(status=303, headers={
        "Location": rd, "Set-Cookie": session_cookie(snap.config.cookie, issued.token, role.ttl),
        **NO_STORE})


async def me(request: web.Request) -> web.Response:
    """GET /me: who you are, your role, when the session ends, and a logout button."""
    snap = request.app[RUNTIME].current
    try:
        token = await token_from(request, snap.config.cookie.name, read_body=False)
        if token is None:
            raise InvalidToken("missing")
        claims = await verified(request, snap, token.value)
    except (InvalidToken, MalformedCredentials):
        return web.Response(status=303, headers={"Location": "/login?rd=/me", **NO_STORE})
    ends = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claims.exp))
    body = (
        "<h1>Signed in</h1>\n<dl>\n"
        f"<dt>User</dt><dd id=\"user\">{html.escape(claims.sub)}</dd>\n"
        f"<dt>Role</dt><dd id=\"role\">{html.escape(claims.role)}</dd>\n"
        f"<dt>Session ends</dt><dd id=\"ends\"><time datetime=\"{int(claims.exp)}\">{ends}</time></dd>\n"
        "</dl>\n<form method=\"post\" action=\"/logout\">"
        "<button type=\"submit\">Log out</button></form>"
    )
    return render_page("Your session · llmsec-aio", body)


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "") or request.content_type in (
        "application/x-www-form-urlencoded", "multipart/form-data")


async def logout(request: web.Request) -> web.Response:
    """POST /logout: revoke the presented token (Bearer or cookie) and clear the cookie.
    Browsers are sent to /login; API clients get JSON. Idempotent: no valid token, no error."""
    if cross_site(request):
        return json_error(Forbidden("a logout from another site is refused"))
    snap, shared = request.app[RUNTIME].current, request.app[SHARED]
    revoked, stored = False, True
    try:
        token = await token_from(request, snap.config.cookie.name, read_body=False)
        if token is not None:
            claims = await verified(request, snap, token.value)
            await shared.revoke(shared.revoke_token(claims))
            revoked = True
            audit.event("revoked", kind="jti", value=claims.jti, by=claims.sub, reason="logout")
    except (InvalidToken, MalformedCredentials):
        pass
    except StoreUnavailable as exc:
        revoked, stored = True, False
        log.error("logout: %s", exc)
    headers = {"Set-Cookie": cleared_cookie(snap.config.cookie), **NO_STORE}
    if not stored:
        return json_error(RevocationNotStored(), headers)
    if _wants_html(request):
        return web.Response(status=303, headers={"Location": "/login", **headers})
    return web.json_response({"revoked": revoked}, headers=headers)
