"""A person in real headless Chromium, through the real nginx to the stub LLM: redirected to the
login page, a failed and a good login, /me, logout, and the old cookie refused afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page

from tests.support.browser import headless_chromium
from tests.support.deployment import Deployment, FakeClock
from tests.support.livestack import http_session, nginx_stack

pytestmark = pytest.mark.e2e


async def test_the_browser_session_from_login_to_logout(
        tmp_path: Path, deployment: Deployment, clock: FakeClock) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, headless_chromium() as browser:
        context = await browser.new_context()
        page: Page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if is_problem(m) else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        base = stack.base_url

        # 1. A protected page sends the browser to the login page.
        await page.goto(f"{base}/llm/models")
        assert page.url == f"{base}/login?rd=/llm/models"
        assert await page.title() == "Sign in · llmsec-aio"
        assert await page.evaluate("document.activeElement.id") == "username"
        await page.screenshot(path=str(tmp_path / "login.png"), full_page=True)

        # 2. A wrong password: a generic error, the username kept, the password not.
        await page.fill("#username", "web1")
        await page.fill("#password", "not-the-password")
        await page.click("button[type=submit]")
        assert await page.locator("[role=alert]").inner_text() == "Invalid username or password."
        assert await page.input_value("#username") == "web1"
        assert await page.input_value("#password") == ""
        assert await page.evaluate("document.activeElement.id") == "password"

        # 3. The right password lands on the original page, served by the LLM.
        await page.fill("#password", "web1-pw")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/llm/models")
        assert json.loads(await page.inner_text("body"))["object"] == "list"
        [cookie] = [c for c in await context.cookies() if c["name"] == "auth_token"]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
        assert await page.evaluate("document.cookie") == ""  # scripts cannot read it

        # 4. /me says who you are.
        await page.goto(f"{base}/me")
        assert await page.inner_text("#user") == "web1"
        assert await page.inner_text("#role") == "user"
        await page.screenshot(path=str(tmp_path / "me.png"), full_page=True)

        # 5. Log out: back to the login page, and the protected page asks for a login again.
        await page.click("text=Log out")
        await page.wait_for_url(f"{base}/login")
        await page.goto(f"{base}/llm/models")
        assert page.url == f"{base}/login?rd=/llm/models"
        assert problems == []  # no CSP violation or script error on any page

        # 6. The old cookie, replayed by another client, is refused.
        replay = {"Cookie": f"auth_token={cookie['value']}", "Accept": "application/json"}
        async with http_session() as http, http.get(f"{base}/llm/models", headers=replay) as r:
            assert r.status == 401
    assert (tmp_path / "login.png").stat().st_size > 1000 and (tmp_path / "me.png").stat().st_size > 1000
    assert [r.path for r in stack.stub.requests] == ["/v1/models"]


def is_problem(message: ConsoleMessage) -> bool:
    """Script errors and CSP violations; a 401 login answer or a missing favicon is not one."""
    return message.type == "error" and not message.text.startswith("Failed to load resource")
