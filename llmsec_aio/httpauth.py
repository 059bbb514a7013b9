"""Strict parsing of what clients send: Bearer and Basic credentials, and the post-login target."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import unquote

# RFC 9110 11.6.2 / RFC 6750: scheme is case-insensitive, then 1+ spaces, then one token68.
_BEARER = re.compile(r"(?i:bearer) +([A-Za-z0-9._~+/-]+=*)")
_BASIC = re.compile(r"(?i:basic) +([A-Za-z0-9+/]+={0,2})")
_BEARER_SCHEME = re.compile(r"(?i:bearer)(?: |$)")
# Enough for a long username and a 72-byte password, base64-encoded; bounds work on junk.
MAX_BASIC_HEADER = 1024
MAX_REDIRECT = 2048
# Characters a local path and query may hold unencoded; no backslash, space or controls.
_LOCAL_TARGET = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")


class MalformedCredentials(ValueError):
    """The Authorization header names a scheme we handle but cannot be parsed."""


def bearer_token(header: str | None) -> str | None:
    """The token of a Bearer header; None when the header is some other scheme or absent.

    A header that says Bearer but is malformed raises, so it never falls back to a cookie.
    """
    if header is None or not _BEARER_SCHEME.match(header):
        return None
    match = _BEARER.fullmatch(header)
    if match is None:
        raise MalformedCredentials("malformed Bearer credentials")
    return match.group(1)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(username, password) from a Basic header, decoded as UTF-8 and split at the first ':'.

    None for anything else: another scheme, bad base64, no colon, or bytes that are not UTF-8.
    """
    if header is None or len(header) > MAX_BASIC_HEADER:
        return None
    match = _BASIC.fullmatch(header)
    if match is None or len(match.group(1)) % 4:
        return None
    try:
        decoded = base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    return username, password


def local_redirect(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default` (C28: no open redirect).

    The check runs on the raw value and on each percent-decoding of it, so `//`, `/\\`,
    schemes, controls, `@` hosts and dot segments are refused however they are encoded.
    """
    if not target or len(target) > MAX_REDIRECT or not _LOCAL_TARGET.fullmatch(target):
        return default
    value = target
    for _ in range(4):
        path = value.split("?", 1)[0]
        if (path.startswith(("//", "/\\")) or "\\" in path
                or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in path)
                or any(seg in (".", "..") for seg in path.split("/"))):
            return default
        decoded = unquote(value)
        if decoded == value:
            return target
        value = decoded
    return default  # still encoded after four rounds: nobody needs that


def client_address(peer: str | None, x_real_ip: str | None, x_forwarded_for: str | None,
                   trusted: Sequence[IPv4Network | IPv6Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy that says otherwise.

    Only then are X-Real-IP, or else the last X-Forwarded-For entry (the one the proxy added),
    believed; a value that is not an IP address is ignored. A forged header from anyone else
    changes nothing.
    """
    if not peer:
        return "unknown"
    try:
        peer_ip = ip_address(peer)
    except ValueError:
        return peer
    if not any(peer_ip in net for net in trusted):
        return peer
    for candidate in (x_real_ip, (x_forwarded_for or "").rsplit(",", 1)[-1]):
        if candidate:
            try:
                return str(ip_address(candidate.strip()))
            except ValueError:
                continue
    return peer
