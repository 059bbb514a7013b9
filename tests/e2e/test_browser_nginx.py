"""The browser side of nginx.conf.example, over plain HTTP: a 401 sends a browser to the login
page and back, API clients keep the 401, and a half-spent cookie is renewed through NGINX."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from yarl import URL

from tests.support.deployment import Deployment, FakeClock
from tests.support.livestack import http_session, nginx_stack

pytestmark = pytest.mark.e2e


async def test_a_browser_is_sent_to_login_and_an_api_client_is_not(
        tmp_path: Path, deployment: Deployment, clock: FakeClock) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, http_session() as http:
        page = "/llm/models?view=full&x=%2F"
        async with http.get(URL(stack.base_url + page, encoded=True), allow_redirects=False,
                            headers={"Accept": "text/html,application/xhtml+xml"}) as r:
            assert r.status == 303
            location = r.headers["Location"]
        assert urlsplit(location).path == "/login"
        assert parse_qs(urlsplit(location).query)["rd"] == [page]
        async with http.get(URL(stack.base_url + page, encoded=True), allow_redirects=False,
                            headers={"Accept": "application/json"}) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
            assert "Location" not in r.headers
        # The login page keeps rd, and a successful login lands on the original page.
        async with http.get(stack.base_url + location) as r:
            assert 'name="rd" value="/llm/models?view=full&amp;x=%2F"' in await r.text()
        async with http.post(f"{stack.base_url}/login", allow_redirects=False,
                             data={"username": "web1", "password": "web1-pw", "rd": page}) as r:
            assert r.status == 303 and r.headers["Location"] == page
            cookie = r.cookies["auth_token"].value
        with_cookie = {"Cookie": f"auth_token={cookie}"}
        async with http.get(URL(stack.base_url + page, encoded=True), headers=with_cookie) as r:
            assert r.status == 200
    assert [req.path_qs for req in stack.stub.requests] == ["/v1/models?view=full&x=%2F"]


async def test_a_half_spent_session_is_renewed_through_nginx(
        tmp_path: Path, deployment: Deployment, clock: FakeClock) -> None:
    async with nginx_stack(tmp_path, deployment.config(), clock) as stack, http_session() as http:
        async with http.post(f"{stack.base_url}/login", allow_redirects=False,
                             data={"username": "web1", "password": "web1-pw"}) as r:
            cookie = r.cookies["auth_token"].value
        url = f"{stack.base_url}/llm/models"
        async with http.get(url, headers={"Cookie": f"auth_token={cookie}"}) as r:
            assert r.status == 200 and "Set-Cookie" not in r.headers  # fresh: nothing to renew
        clock.advance(451)  # the user TTL is 900 s: less than half is left
        async with http.get(url, headers={"Cookie": f"auth_token={cookie}"}) as r:
            assert r.status == 200
            renewed = r.headers["Set-Cookie"]
        assert renewed.startswith("auth_token=") and "Max-Age=900" in renewed and "HttpOnly" in renewed
        fresh = renewed.split(";", 1)[0].split("=", 1)[1]
        assert fresh != cookie
        clock.advance(900 - 451 + 5)  # the old cookie has expired (with leeway) ...
        async with http.get(url, headers={"Cookie": f"auth_token={cookie}"}) as r:
            assert r.status == 401
        async with http.get(url, headers={"Cookie": f"auth_token={fresh}"}) as r:
            assert r.status == 200  # ... the renewed one carries on
        clock.advance(900)  # idle past its TTL: the session ends
        async with http.get(url, headers={"Cookie": f"auth_token={fresh}"}) as r:
            assert r.status == 401
