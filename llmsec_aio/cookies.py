"""The session cookie's Set-Cookie lines, built in one place so login, renewal and logout agree."""

from __future__ import annotations

from .config import CookieConfig


def _attributes(cookie: CookieConfig) -> list[str]:
    parts = ["Path=/", "HttpOnly", f"SameSite={cookie.samesite}"]
    if cookie.secure:
        parts.append("Secure")
    if cookie.domain:
        parts.append(f"Domain={cookie.domain}")
    return parts


def session_cookie(cookie: CookieConfig, token: str, max_age: int) -> str:
    """The cookie carrying `token`; a JWT needs no quoting, so none is applied."""
    return "; ".join([f"{cookie.name}={token}", f"Max-Age={max_age}", *_attributes(cookie)])


def cleared_cookie(cookie: CookieConfig) -> str:
    """Deletes the cookie: same name, Path and Domain, empty value, Max-Age=0."""
    return "; ".join([f"{cookie.name}=", "Max-Age=0", *_attributes(cookie)])
