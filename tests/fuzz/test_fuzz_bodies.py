"""Arbitrary Basic credentials, POST /login form bodies, and JSON bodies for /validate and /admin/revoke."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ_SETTINGS, Tokens
from tests.fuzz.rawhttp import (
    assert_not_server_error,
    assert_validate_status,
    basic_header,
    fresh_client_address,
    send,
)
from tests.fuzz.strategies import any_bytes, form_bodies, header_bytes, json_bodies
from tests.support.deployment import DEFAULT_USERS
from tests.support.threaded import ThreadedApp

BASIC_CHALLENGE = 'Basic realm="llmsec-aio", charset="UTF-8"'
# A known username before the colon some of the time, so the password path is fuzzed too.
CREDENTIALS = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda user, password: user + b":" + password,
              st.sampled_from([u.encode() for u in DEFAULT_USERS] + [b"", b"nobody"]),
              st.binary(max_size=200)),
)
FORM_TYPES = st.sampled_from([
    b"application/x-www-form-urlencoded", b"application/x-www-form-urlencoded; charset=latin-1",
    b"multipart/form-data; boundary=xyz", b"multipart/form-data", b"text/plain", b"application/json",
])
JSON_TYPES = st.sampled_from([b"application/json", b"application/json; charset=utf-16", b"text/plain",
                              b"application/x-www-form-urlencoded"])


def test_basic_credentials_of_any_bytes_get_a_plain_401(gateway: ThreadedApp) -> None:
    # A fresh client address per login: no ban, so every example runs the password check.
    @FUZZ_SETTINGS
    @given(credentials=CREDENTIALS)
    def run(credentials: bytes) -> None:
        response = send(gateway, b"POST", b"/llm/login", [
            (b"Authorization", basic_header(credentials)), (b"X-Real-IP", fresh_client_address())])
        assert response.status == 401, (response.status, response.body[:300])
        assert response.header("WWW-Authenticate") == [BASIC_CHALLENGE]
        assert json.loads(response.body)["error"] == "invalid_credentials"

    run()


def test_login_endpoints_never_fail_on_any_authorization_bytes(gateway: ThreadedApp) -> None:
    # Not even base64: whatever NGINX forwards. Bans (429) are a fine answer here.
    @FUZZ_SETTINGS
    @given(value=header_bytes(4096), fresh_address=st.booleans())
    def run(value: bytes, fresh_address: bool) -> None:
        headers = [(b"Authorization", value)]
        if fresh_address:
            headers.append((b"X-Real-IP", fresh_client_address()))
        response = send(gateway, b"POST", b"/llm/login", headers)
        assert response.status in (401, 429), (response.status, response.body[:300])

    run()


def test_form_login_never_fails_on_any_body(gateway: ThreadedApp) -> None:
    @FUZZ_SETTINGS
    @given(body=form_bodies(), content_type=FORM_TYPES,
           query=st.none() | header_bytes(256).map(lambda b: b.replace(b" ", b"%20")))
    def run(body: bytes, content_type: bytes, query: bytes | None) -> None:
        target = b"/login" + (b"?rd=" + query.replace(b"#", b"%23") if query is not None else b"")
        response = send(gateway, b"POST", target, [
            (b"Content-Type", content_type), (b"X-Real-IP", fresh_client_address())], body)
        assert_not_server_error(response)

    run()


@pytest.mark.parametrize("content_type, body", [
    (b"application/x-www-form-urlencoded", b"\x80"),
    (b"application/x-www-form-urlencoded", b"username=web1&password=\xc3"),
    (b"multipart/form-data", b"junk"),
    (b"multipart/form-data; boundary=xyz", b""),
    (b"multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="username"\r\n\r\n\x80\r\n--xyz--\r\n'),
], ids=["urlencoded-not-utf8", "urlencoded-truncated-utf8", "multipart-no-boundary",
        "multipart-empty", "multipart-field-not-utf8"])
def test_malformed_form_bodies_get_a_4xx(gateway: ThreadedApp, content_type: bytes,
                                         body: bytes) -> None:
    # The shrunk examples of the fuzz test above, as plain regression cases.
    response = send(gateway, b"POST", b"/login", [
        (b"Content-Type", content_type), (b"X-Real-IP", fresh_client_address())], body)
    assert 400 <= response.status < 500, (response.status, response.body[:300])


def test_validate_answers_200_401_or_403_to_any_json_body(gateway: ThreadedApp,
                                                          tokens: Tokens) -> None:
    @FUZZ_SETTINGS
    @given(method=st.sampled_from([b"POST", b"PUT", b"PATCH", b"DELETE", b"GET"]),
           body=json_bodies(["token"], tokens.agent), content_type=JSON_TYPES)
    def run(method: bytes, body: bytes, content_type: bytes) -> None:
        assert_validate_status(send(gateway, method, b"/validate", [(b"Content-Type", content_type)], body))

    run()


def test_admin_revoke_never_fails_on_any_json_body(gateway: ThreadedApp, tokens: Tokens) -> None:
    # With the admin's token, so each body reaches the parser; revoking the admin's own subject
    # would turn the rest of the run into 401s, so that one value is swapped for another.
    admin = "admin1"

    def spare_admin(body: bytes) -> bytes:
        return body.replace(json.dumps(admin).encode(), b'"someone-else"')

    @FUZZ_SETTINGS
    @given(body=json_bodies(["jti", "sub"]).map(spare_admin), content_type=JSON_TYPES,
           authorized=st.booleans())
    def run(body: bytes, content_type: bytes, authorized: bool) -> None:
        headers = [(b"Content-Type", content_type)]
        if authorized:
            headers.append((b"Authorization", b"Bearer " + tokens.admin.encode()))
        response = send(gateway, b"POST", b"/admin/revoke", headers, body)
        assert_not_server_error(response)
        if not authorized:
            assert response.status == 401

    run()


@pytest.mark.parametrize("path", [b"/admin/revoke", b"/validate"])
# Under the 16 KiB body limit (else 413), and far past the decoder's ~1000 levels.
@pytest.mark.parametrize("body", [b"[" * 5000, b'{"jti":' * 2000, b"[" * 2000 + b"]" * 2000],
                         ids=["open-arrays", "open-objects", "closed-arrays"])
def test_deeply_nested_json_gets_a_4xx(gateway: ThreadedApp, tokens: Tokens, path: bytes,
                                       body: bytes) -> None:
    # The shrunk example of the fuzz tests above: past the decoder's recursion limit.
    response = send(gateway, b"POST", path, [(b"Authorization", b"Bearer " + tokens.admin.encode()),
                                             (b"Content-Type", b"application/json")], body)
    expected = {400} if path == b"/admin/revoke" else {200}  # /validate has the Bearer token
    assert response.status in expected, (response.status, response.body[:300])


def test_other_json_endpoints_never_fail_on_any_body(gateway: ThreadedApp) -> None:
    # Bodies on endpoints that ignore them (POST /llm/login, POST /logout) change nothing.
    @FUZZ_SETTINGS
    @given(path=st.sampled_from([b"/llm/login", b"/logout"]), body=any_bytes(20_000),
           content_type=st.one_of(JSON_TYPES, FORM_TYPES))
    def run(path: bytes, body: bytes, content_type: bytes) -> None:
        response = send(gateway, b"POST", path, [
            (b"Content-Type", content_type), (b"X-Real-IP", fresh_client_address())], body)
        assert_not_server_error(response)

    run()
