"""Issue and verify access tokens (RFC 9068 `at+jwt`): the key's algorithm, never the token's."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import jwt

from .errors import InvalidToken
from .keys import KeyRing

Clock = Callable[[], float]

# Longer than any token we issue (an RS256 token is ~700 bytes); bounds the work on junk.
MAX_TOKEN_LENGTH = 4096
TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "client_id", "role", "iat", "nbf", "exp", "jti")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified identity a token carries."""

    sub: str
    role: str
    jti: str
    client_id: str
    kid: str
    iat: float
    exp: float


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: Claims
    expires_in: int


def _b64decode(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):
        raise InvalidToken("malformed")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidToken("malformed") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TokenService:
    """Signs with the ring's signing key; verifies against every key in the ring."""

    def __init__(self, keyring: KeyRing, *, issuer: str, audience: str,
                 roles: Collection[str], leeway: int, clock: Clock) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.roles = frozenset(roles)
        self.leeway = leeway
        self.clock = clock

    def issue(self, subject: str, role: str, ttl: int) -> IssuedToken:
        key = self.keyring.signing
        iat = int(self.clock())
        jti = secrets.token_urlsafe(16)
        payload = {
            "iss": self.issuer, "aud": self.audience, "sub": subject, "client_id": subject,
            "role": role, "iat": iat, "nbf": iat, "exp": iat + ttl, "jti": jti,
        }
        token = jwt.encode(payload, key.private, algorithm=key.alg,
                           headers={"kid": key.kid, "typ": "at+jwt"})
        claims = Claims(sub=subject, role=role, jti=jti, client_id=subject, kid=key.kid,
                        iat=iat, exp=iat + ttl)
        return IssuedToken(token=token, claims=claims, expires_in=ttl)

    def verify(self, token: str) -> Claims:
        """Return the claims of a valid token, else raise InvalidToken with a reason."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("too_long")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed")
        header_b64, payload_b64, signature_b64 = parts
        header = _json_object(header_b64)
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("unknown_kid")
        key = self.keyring.get(kid)
        if key is None:
            raise InvalidToken("unknown_kid")
        # The key fixes the algorithm; `none`, HS* or any other value in the token is refused.
        if header.get("alg") != key.alg:
            raise InvalidToken("bad_algorithm")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES:
            raise InvalidToken("bad_type")
        if "crit" in header:  # RFC 7515 4.1.11: we understand no extensions
            raise InvalidToken("bad_header")
        signature = _b64decode(signature_b64)
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if not key.verifier.verify(signing_input, key.public, signature):
            raise InvalidToken("bad_signature")
        return self._check_claims(_json_object(payload_b64), kid)

    def _check_claims(self, payload: dict[str, Any], kid: str) -> Claims:
        if any(name not in payload for name in REQUIRED_CLAIMS):
            raise InvalidToken("bad_claims")
        if payload["iss"] != self.issuer:
            raise InvalidToken("bad_claims")
        aud = payload["aud"]
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidToken("bad_claims")
        sub, role, jti, client_id = (payload[n] for n in ("sub", "role", "jti", "client_id"))
        if not all(isinstance(v, str) and v for v in (sub, role, jti, client_id)):
            raise InvalidToken("bad_claims")
        if role not in self.roles:
            raise InvalidToken("unknown_role")
        iat, nbf, exp = payload["iat"], payload["nbf"], payload["exp"]
        if not (_number(iat) and _number(nbf) and _number(exp)):
            raise InvalidToken("bad_claims")
        now = self.clock()
        if exp <= now - self.leeway:
            raise InvalidToken("expired")
        if nbf > now + self.leeway or iat > now + self.leeway:
            raise InvalidToken("not_yet_valid")
        return Claims(sub=sub, role=role, jti=jti, client_id=client_id, kid=kid,
                      iat=float(iat), exp=float(exp))
