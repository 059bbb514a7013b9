"""The HTML pages (login and /me): one layout, every value HTML-escaped, under a strict CSP."""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from importlib import resources
from string import Template

from aiohttp import web


def _read(name: str) -> str:
    return resources.files("llmsec_aio").joinpath(f"templates/{name}").read_text("utf-8")


@functools.cache
def _layout() -> tuple[Template, str]:
    text = _read("page.html")
    # The only inline content is the stylesheet; allow exactly it by hash, and no script at all.
    style = re.search(r"<style>(.*?)</style>", text, re.S)
    digest = hashlib.sha256(style.group(1).encode() if style else b"").digest()
    csp = (
        "default-src 'none'; "
        f"style-src 'sha256-{base64.b64encode(digest).decode()}'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return Template(text), csp


@functools.cache
def _login_form() -> Template:
    return Template(_read("login.html"))


def render_page(title: str, main: str, status: int = 200) -> web.Response:
    """`main` is trusted markup built by the caller from escaped values."""
    layout, csp = _layout()
    headers = {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    body = layout.substitute(title=html.escape(title), main=main)
    return web.Response(text=body, status=status, content_type="text/html", headers=headers)


def render_login_page(*, rd: str, username: str = "", error: str = "",
                      status: int = 200) -> web.Response:
    form = _login_form().substitute(
        rd=html.escape(rd, quote=True),
        username=html.escape(username, quote=True),
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        # Focus where the person has to type next: the password after a failed attempt.
        username_focus="" if username else " autofocus",
        password_focus=" autofocus" if username else "",
    )
    return render_page("Sign in · llmsec-aio", form, status)
