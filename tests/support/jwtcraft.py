"""Build hostile and hand-edited tokens for the cases: remint, unsigned, HMAC-confused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256


def b64u(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64u_json(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")))


def unb64u(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS, unverified."""
    h, p, _ = token.split(".")
    return json.loads(unb64u(h)), json.loads(unb64u(p))


MISSING = object()  # a change that removes the member


def _apply(obj: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(obj)
    for k, v in (changes or {}).items():
        if v is MISSING:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def sign(header: dict[str, Any], payload: dict[str, Any],
         key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | bytes | None) -> str:
    """Encode and sign; `bytes` means an HMAC secret with the header's HSxxx, None no signature."""
    signing_input = f"{b64u_json(header)}.{b64u_json(payload)}"
    data = signing_input.encode()
    if key is None:
        sig = b""
    elif isinstance(key, bytes):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
        sig = hmac.new(key, data, digest).digest()
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(data)
    else:
        sig = key.sign(data, padding.PKCS1v15(), SHA256())
    return f"{signing_input}.{b64u(sig)}"


def remint(token: str, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | bytes | None,
           header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None) -> str:
    """PUBLIC.md's Remint: copy `token`'s header and claims, apply the changes, sign."""
    h, p = parts(token)
    return sign(_apply(h, header), _apply(p, claims), key)
