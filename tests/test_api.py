"""The endpoints through the real create_app: logins, /validate, JWKS and discovery."""

from __future__ import annotations

import jwt

from tests.conftest import Client, basic, form_login, login
from tests.support.deployment import Deployment, FakeClock


async def test_agent_login_returns_token_with_seconds_lifetime(client: Client, clock: FakeClock) -> None:
    resp = await client.post("/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["token"] == body["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120  # agent_reasoning: 2 min
    assert body["expires_at"] == int(clock.now) + 120
    header = jwt.get_unverified_header(body["token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA"


async def test_token_carries_every_claim(client: Client, deployment: Deployment, clock: FakeClock) -> None:
    token = await login(client)
    claims = jwt.decode(token, deployment.ed.public_key(), algorithms=["EdDSA"],
                        audience="llmsec-test", issuer="https://llm.example.test")
    assert set(claims) == {"iss", "aud", "sub", "client_id", "role", "iat", "nbf", "exp", "jti"}
    assert (claims["sub"], claims["role"]) == ("agent1", "agent_reasoning")
    assert claims["exp"] - claims["iat"] == 120


async def test_validate_answers_200_with_identity_headers(client: Client, clock: FakeClock) -> None:
    token = await login(client)
    resp = await client.get("/validate", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert resp.headers["X-Auth-Request-User"] == "agent1"
    assert resp.headers["X-Auth-Request-Role"] == "agent_reasoning"
    assert resp.headers["X-Auth-Request-Expires"] == str(int(clock.now) + 120)


async def test_validate_takes_any_method_and_the_cookie(client: Client) -> None:
    cookie = await form_login(client)
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        resp = await client.request(method, "/validate", headers={"Cookie": f"auth_token={cookie}"})
        assert resp.status == 200, method


async def test_validate_reads_a_json_body_last(client: Client) -> None:
    token = await login(client)
    resp = await client.post("/validate", json={"token": token})
    assert resp.status == 200
    resp = await client.post("/validate", json={"token": "x"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert await resp.json() == {"error": "invalid_token",
                                 "message": "the access token is missing, invalid or expired"}


async def test_expired_token_is_refused_after_leeway(client: Client, clock: FakeClock) -> None:
    token = await login(client)
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/validate", headers=auth)).status == 200
    clock.advance(120 + 5 - 1)
    assert (await client.get("/validate", headers=auth)).status == 200
    clock.advance(1)
    assert (await client.get("/validate", headers=auth)).status == 401


async def test_wrong_password_and_unknown_user_get_the_same_answer(client: Client) -> None:
    answers = []
    for user, pw in (("agent1", "nope"), ("nobody", "nope")):
        resp = await client.post("/llm/login", headers={"Authorization": basic(user, pw)})
        answers.append((resp.status, await resp.json(), resp.headers["WWW-Authenticate"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and answers[0][1]["error"] == "invalid_credentials"


async def test_role_without_basic_login_gets_403(client: Client) -> None:
    resp = await client.post("/llm/login", headers={"Authorization": basic("web1", "web1-pw")})
    assert resp.status == 403
    assert (await resp.json())["error"] == "login_method_not_allowed"


async def test_form_login_sets_cookie_and_redirects(client: Client) -> None:
    resp = await client.post("/login", data={"username": "web1", "password": "web1-pw",
                                             "rd": "/chat?x=1"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/chat?x=1"
    set_cookie = resp.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=900"):
        assert attribute in set_cookie


async def test_form_login_failure_shows_the_form_again(client: Client) -> None:
    resp = await client.post("/login", data={"username": "web1", "password": "bad"})
    assert resp.status == 401
    text = await resp.text()
    assert "Invalid username or password." in text and 'value="web1"' in text
    assert "value=\"bad\"" not in text  # the password is never echoed


async def test_agent_role_cannot_use_the_form(client: Client) -> None:
    resp = await client.post("/login", data={"username": "agent1", "password": "agent1-pw"},
                             allow_redirects=False)
    assert resp.status == 401


async def test_unknown_route_gets_json_404(client: Client) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert await resp.json() == {"error": "not_found", "message": "not found"}
    resp = await client.get("/llm/login")
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"


async def test_jwks_and_discovery(client: Client, deployment: Deployment) -> None:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    keys = {k["kid"]: k for k in (await resp.json())["keys"]}
    assert set(keys) == {deployment.rsa_kid, deployment.ed_kid}
    assert "d" not in keys[deployment.ed_kid] and "d" not in keys[deployment.rsa_kid]
    etag = resp.headers["ETag"]
    assert "max-age=300" in resp.headers["Cache-Control"]
    again = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert again.status == 304
    disco = await (await client.get("/.well-known/openid-configuration")).json()
    assert disco["issuer"] == "https://llm.example.test"
    assert disco["jwks_uri"] == "https://llm.example.test/.well-known/jwks.json"
    assert disco["id_token_signing_alg_values_supported"] == ["EdDSA", "RS256"]
