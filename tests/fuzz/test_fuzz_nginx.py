"""Through the real NGINX (nginx.conf.example): whatever header bytes it forwards, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ_SETTINGS, Tokens
from tests.fuzz.rawhttp import build_request, forwardable, send_to
from tests.fuzz.strategies import forwardable_bytes, mutated
from tests.support.nginx import NginxInstance, running_nginx
from tests.support.threaded import ThreadedApp, stub_in_thread

pytestmark = pytest.mark.e2e

# What a client of the protected location may get: the LLM's answer (the stub's 404 for an
# unknown model, say), the gateway's 401/403, or NGINX's own 400 for a request it refuses. A 5xx
# means /validate answered something NGINX could not use (it turns that into a 500).
CLIENT_STATUSES = frozenset(range(200, 500))
PROTECTED = st.sampled_from([b"GET /llm/models", b"POST /llm/chat/completions", b"GET /llm/models/x"])


@pytest.fixture(scope="module")
def nginx(gateway: ThreadedApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxInstance]:
    with stub_in_thread() as stub, running_nginx(tmp_path_factory.mktemp("fuzz-nginx"),
                                                 gateway_port=gateway.port, llm_port=stub.port) as ngx:
        yield ngx


def through_nginx(ngx: NginxInstance, request_line: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    method, _, target = request_line.partition(b" ")
    body = b"{}" if method == b"POST" else None
    return send_to(ngx.host, ngx.port, build_request(method, target, headers, body)).status


def test_any_credential_bytes_nginx_forwards_get_no_5xx(nginx: NginxInstance, tokens: Tokens) -> None:
    # Control characters included: NGINX passes them to the auth subrequest.
    credential = st.one_of(
        st.tuples(st.just(b"Authorization"), forwardable_bytes(4096)),
        st.tuples(st.just(b"Authorization"),
                  mutated(tokens.agent, forwardable).map(lambda t: b"Bearer " + t)),
        st.tuples(st.just(b"Cookie"), forwardable_bytes(4096).map(lambda v: b"auth_token=" + v)),
    )

    @FUZZ_SETTINGS
    @given(request_line=PROTECTED, header=credential)
    def run(request_line: bytes, header: tuple[bytes, bytes]) -> None:
        status = through_nginx(nginx, request_line, [header])
        assert status in CLIENT_STATUSES, status

    run()


def test_a_valid_token_with_any_other_header_bytes_gets_no_5xx(nginx: NginxInstance,
                                                              tokens: Tokens) -> None:
    # Every client header rides along on the subrequest, not only the credentials.
    @FUZZ_SETTINGS
    @given(request_line=PROTECTED, value=forwardable_bytes(4096),
           name=st.sampled_from([b"X-Client-Note", b"User-Agent", b"Accept", b"Referer"]))
    def run(request_line: bytes, value: bytes, name: bytes) -> None:
        status = through_nginx(nginx, request_line, [
            (b"Authorization", b"Bearer " + tokens.agent.encode()), (name, value)])
        assert status in CLIENT_STATUSES, status

    run()


@pytest.mark.parametrize("value", [b"\x01", b"x\x7f", b"\x1b[31m", b"\x0c"], ids=["SOH", "DEL", "ESC", "FF"])
def test_control_characters_in_a_header_get_no_5xx(nginx: NginxInstance, tokens: Tokens,
                                                   value: bytes) -> None:
    # The shrunk examples of the two tests above, kept as plain regression cases.
    bearer = b"Bearer " + tokens.agent.encode()
    statuses = {
        "in another header": through_nginx(nginx, b"GET /llm/models",
                                           [(b"Authorization", bearer), (b"X-Client-Note", value)]),
        "as the token": through_nginx(nginx, b"GET /llm/models", [(b"Authorization", b"Bearer " + value)]),
        # A real token with a stray control character: aiohttp's parse error quotes the whole
        # header line, so this also checks the token does not end up in the gateway's log.
        "after a real token": through_nginx(nginx, b"GET /llm/models", [(b"Authorization", bearer + value)]),
    }
    assert all(status in CLIENT_STATUSES for status in statuses.values()), statuses
