"""Hypothesis strategies for the fuzz tests: header bytes, tokens, JSON values and form bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.fuzz.rawhttp import field_value, forwardable

# Up to 32 KiB: the largest header line the shipped NGINX config lets through.
MAX_FORWARDED = 32 * 1024


def repeated(max_size: int) -> st.SearchStrategy[bytes]:
    """Long values cheaply: a short random chunk repeated, up to `max_size` bytes."""
    return st.builds(lambda chunk, n: (chunk * n)[:max_size],
                     st.binary(min_size=1, max_size=16), st.integers(1, max_size))


def any_bytes(max_size: int = MAX_FORWARDED) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), repeated(max_size))


def forwardable_bytes(max_size: int = MAX_FORWARDED) -> st.SearchStrategy[bytes]:
    """Header value bytes NGINX passes on (no NUL, CR or LF), control characters included."""
    return any_bytes(max_size).map(forwardable)


def header_bytes(max_size: int = MAX_FORWARDED) -> st.SearchStrategy[bytes]:
    """Valid field-value bytes (no controls but HTAB; obs-text 0x80-0xFF included): every
    header the gateway's HTTP parser accepts, which its handlers must then answer properly."""
    return any_bytes(max_size).map(field_value)


def with_prefix(prefixes: list[bytes], rest: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    # A known scheme or name first, so the fuzzing reaches the parsers behind it.
    return st.builds(lambda p, r: p + r, st.sampled_from(prefixes), rest)


def mutated(token: str, clean: Callable[[bytes], bytes] = field_value) -> st.SearchStrategy[bytes]:
    """A valid token with a few bytes inserted, dropped or replaced: well-formed but wrong, or
    malformed in one place, which reaches signature and claim checks rather than the parser.
    `clean` drops the bytes the receiving side cannot be sent (see rawhttp)."""
    raw = token.encode()

    def apply(ops: list[tuple[int, int, bytes]]) -> bytes:
        value = bytearray(raw)
        for where, drop, insert in ops:
            at = where % (len(value) + 1)
            value[at:at + drop] = insert
        return bytes(value)

    op = st.tuples(st.integers(0, 1 << 16), st.integers(0, 3), st.binary(max_size=4))
    return st.lists(op, min_size=0, max_size=3).map(apply).map(clean)


def authorization_values(token: str | None = None) -> st.SearchStrategy[bytes]:
    schemes = [b"Bearer ", b"bearer ", b"BEARER  ", b"Bearer\t", b"Basic ", b"basic ", b"Digest ", b""]
    options = [header_bytes(), with_prefix(schemes, header_bytes())]
    if token is not None:
        options.append(with_prefix([b"Bearer ", b"bearer "], mutated(token)))
    return st.one_of(*options)


def cookie_values(token: str | None = None) -> st.SearchStrategy[bytes]:
    names = [b"auth_token=", b"a=b; auth_token=", b"auth_token=x; auth_token=", b'auth_token="', b""]
    options = [header_bytes(), with_prefix(names, header_bytes())]
    if token is not None:
        options.append(with_prefix([b"auth_token=", b"junk=1; auth_token="], mutated(token)))
    return st.one_of(*options)


def original_uris() -> st.SearchStrategy[bytes]:
    prefixes = [b"/llm/", b"/llm/models/", b"/llm/chat/completions", b"/", b"//", b"/llm/%",
                b"/llm/../", b"http://", b""]
    return st.one_of(header_bytes(4096), with_prefix(prefixes, header_bytes(4096)))


def methods() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE",
                                      b"OPTIONS", b"PROPFIND", b"get", b""]),
                     header_bytes(64))


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=64),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=16), inner, max_size=5),
    max_leaves=20,
)


def json_bodies(extra_keys: list[str], token: str | None = None) -> st.SearchStrategy[bytes]:
    """JSON documents of every shape, objects with the endpoint's own keys, deep nesting, and
    bytes that are not JSON at all."""
    keyed_values: st.SearchStrategy[Any] = json_values
    if token is not None:
        keyed_values = st.one_of(json_values, mutated(token).map(lambda b: b.decode("utf-8", "replace")))
    keyed = st.dictionaries(st.sampled_from(extra_keys), keyed_values, min_size=1, max_size=2)
    # Nesting past the JSON decoder's recursion limit (~1000), which raises RecursionError,
    # not ValueError; depths are also drawn from a fixed list, as Hypothesis favours small ints.
    depth = st.one_of(st.integers(1, 8_000), st.sampled_from([999, 1_001, 3_000, 8_000]))
    deep = st.builds(lambda opener, closer, n: opener * n + closer * n,
                     st.sampled_from([b"[", b'{"a":', b'{"token":[']), st.sampled_from([b"", b"]", b"}"]),
                     depth)
    return st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        keyed.map(lambda v: json.dumps(v).encode()),
        deep,
        any_bytes(20_000),
    )


def form_bodies() -> st.SearchStrategy[bytes]:
    """urlencoded fields (the real ones, repeated or not, and others), raw bytes, and long bodies
    around the 16 KiB limit."""
    names = st.one_of(st.sampled_from(["username", "password", "rd", "next"]), st.text(max_size=8))
    fields = st.lists(st.tuples(names, st.text(max_size=200)), max_size=6)
    return st.one_of(fields.map(lambda f: urlencode(f).encode()), any_bytes(20_000))
