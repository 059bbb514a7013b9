"""httpauth.py: Bearer and Basic parsing, and the local-redirect check."""

from __future__ import annotations

import base64

import pytest

from llmsec_aio.httpauth import MalformedCredentials, basic_credentials, bearer_token, local_redirect


@pytest.mark.parametrize("header, token", [
    ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer abc", "abc"), ("BEARER abc", "abc"),
    ("Bearer    abc", "abc"), ("Basic abc", None), (None, None), ("Token abc", None),
])
def test_bearer(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Bearer", "Bearer abc def", "Bearer a,Bearer b", "Bearer a\tb"])
def test_malformed_bearer_raises(header: str) -> None:
    with pytest.raises(MalformedCredentials):
        bearer_token(header)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("header, expected", [
    ("Basic " + b64(b"agent2:s3c:r3t:pw"), ("agent2", "s3c:r3t:pw")),
    ("basic " + b64("agent4:pässwörd-密码-🔑".encode()), ("agent4", "pässwörd-密码-🔑")),
    ("Basic " + b64(b"agent3:a%BCd%20e"), ("agent3", "a%BCd%20e")),
    ("Basic " + b64(b":"), ("", "")),
    ("Basic " + b64(b"agent1"), None),
    ("Basic " + b64(b"agent1:\xff\xfe"), None),
    ("Basic " + b64(b"agent1:pw") + "===", None),
    ("Basic ???", None), ("Basic", None), ("Basic " + "A" * 20000, None),
    ('Digest username="agent1"', None),
])
def test_basic(header: str, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


@pytest.mark.parametrize("target", ["/chat?x=1", "/", "/a/b-c_d.e~f?q=%2F&r=1", "/v1/models"])
def test_local_targets_are_kept(target: str) -> None:
    assert local_redirect(target) == target


@pytest.mark.parametrize("target", [
    "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "/%5Cevil.example",
    "/%09/evil.example", "/%0A/evil.example", "/ /evil.example", "https://evil.example",
    "HTTPS://evil.example", "https:evil.example", "http:/evil.example", "%2F%2Fevil.example",
    "https://llm.example.test@evil.example", "javascript:alert(1)", "data:text/html,x",
    "/../../evil", "/%2e%2e/evil", "/%252F/evil.example", "", None, "/" + "a" * 3000,
])
def test_everything_else_falls_back_to_root(target: str | None) -> None:
    assert local_redirect(target) == "/"
