"""Arbitrary bytes in Authorization, Cookie, X-Original-URI and X-Original-Method, over raw sockets."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ_SETTINGS, Tokens
from tests.fuzz.rawhttp import (
    assert_not_server_error,
    assert_validate_status,
    fresh_client_address,
    send,
)
from tests.fuzz.strategies import (
    any_bytes,
    authorization_values,
    cookie_values,
    header_bytes,
    methods,
    original_uris,
)
from tests.support.threaded import ThreadedApp

VALIDATE_METHODS = st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"])
# Endpoints other than /validate; /logout and /admin/revoke only ever see junk here, never a
# valid token, so the fuzzing cannot revoke the tokens the other tests rely on.
OTHER_ENDPOINTS = st.sampled_from([
    (b"POST", b"/llm/login"), (b"GET", b"/login"), (b"POST", b"/login"), (b"GET", b"/me"),
    (b"POST", b"/logout"), (b"POST", b"/admin/revoke"), (b"GET", b"/.well-known/jwks.json"),
    (b"GET", b"/.well-known/openid-configuration"), (b"GET", b"/metrics"), (b"GET", b"/healthz"),
    (b"GET", b"/readyz"), (b"GET", b"/nowhere"),
])


def test_validate_answers_200_401_or_403_to_any_authorization(gateway: ThreadedApp,
                                                               tokens: Tokens) -> None:
    @FUZZ_SETTINGS
    @given(method=VALIDATE_METHODS, value=authorization_values(tokens.agent))
    def run(method: bytes, value: bytes) -> None:
        assert_validate_status(send(gateway, method, b"/validate", [(b"Authorization", value)]))

    run()


def test_validate_answers_200_401_or_403_to_any_cookie(gateway: ThreadedApp,
                                                        tokens: Tokens) -> None:
    @FUZZ_SETTINGS
    @given(method=VALIDATE_METHODS, value=cookie_values(tokens.web))
    def run(method: bytes, value: bytes) -> None:
        assert_validate_status(send(gateway, method, b"/validate", [(b"Cookie", value)]))

    run()


def test_validate_decides_any_original_uri_and_method(gateway: ThreadedApp, tokens: Tokens) -> None:
    # A valid token, so every request reaches the route policy: the answer is 200 or 403.
    @FUZZ_SETTINGS
    @given(uri=original_uris(), method=st.none() | methods(), bearer=st.booleans())
    def run(uri: bytes, method: bytes | None, bearer: bool) -> None:
        credential = ((b"Authorization", b"Bearer " + tokens.agent.encode()) if bearer
                      else (b"Cookie", b"auth_token=" + tokens.web.encode()))
        headers = [credential, (b"X-Original-URI", uri)]
        if method is not None:
            headers.append((b"X-Original-Method", method))
        response = send(gateway, b"GET", b"/validate", headers)
        assert response.status in (200, 403), (response.status, response.body[:300])

    run()


def test_validate_without_a_token_answers_401_to_any_original_uri(gateway: ThreadedApp) -> None:
    # The 401 builds a login redirect from the URI: that path must not fail on junk either.
    @FUZZ_SETTINGS
    @given(uri=original_uris(), method=methods())
    def run(uri: bytes, method: bytes) -> None:
        response = send(gateway, b"GET", b"/validate",
                        [(b"X-Original-URI", uri), (b"X-Original-Method", method)])
        assert response.status == 401, (response.status, response.body[:300])
        assert response.header("X-Auth-Request-Redirect")[0].startswith("/login?rd=")

    run()


def test_other_endpoints_never_fail_on_any_authorization_or_cookie(gateway: ThreadedApp) -> None:
    @FUZZ_SETTINGS
    @given(endpoint=OTHER_ENDPOINTS, authorization=st.none() | authorization_values(),
           cookie=st.none() | cookie_values(), uri=st.none() | header_bytes(2048))
    def run(endpoint: tuple[bytes, bytes], authorization: bytes | None, cookie: bytes | None,
            uri: bytes | None) -> None:
        method, path = endpoint
        headers = [(b"X-Real-IP", fresh_client_address())]
        for name, value in ((b"Authorization", authorization), (b"Cookie", cookie),
                            (b"X-Original-URI", uri)):
            if value is not None:
                headers.append((name, value))
        body = b"" if method == b"POST" else None
        assert_not_server_error(send(gateway, method, path, headers, body))

    run()


def test_invalid_header_bytes_get_no_5xx_and_the_gateway_keeps_serving(
        gateway: ThreadedApp, tokens: Tokens) -> None:
    # Controls, NUL, CR and LF: aiohttp's parser refuses such a request with its own 400 (which
    # is why NGINX must not forward them, see test_fuzz_nginx), but never a 5xx, and the next
    # request is served as usual.
    @FUZZ_SETTINGS
    @given(path=st.sampled_from([b"/validate", b"/llm/login", b"/me", b"/login"]),
           name=st.sampled_from([b"Authorization", b"Cookie", b"X-Original-URI"]),
           value=any_bytes(4096))
    def run(path: bytes, name: bytes, value: bytes) -> None:
        response = send(gateway, b"GET", path, [(name, value)])
        assert response.status < 500, (response.status, response.body[:300])

    run()
    after = send(gateway, b"GET", b"/validate", [(b"Authorization", b"Bearer " + tokens.agent.encode())])
    assert after.status == 200


def test_a_token_in_a_header_line_the_parser_refuses_is_not_logged(
        gateway: ThreadedApp, tokens: Tokens, caplog: pytest.LogCaptureFixture) -> None:
    # A client's stray control character after its token: the 400 is fine (NGINX should refuse
    # such a request first), but the gateway's log must not quote the token back.
    caplog.set_level(logging.DEBUG)
    response = send(gateway, b"GET", b"/validate",
                    [(b"Authorization", b"Bearer " + tokens.agent.encode() + b"\x01")])
    assert response.status == 400
    assert tokens.agent not in caplog.text
