"""tokens.py: issue and verify, pinned algorithms, required claims, leeway, injected clock."""

from __future__ import annotations

import jwt
import pytest

from llmsec_aio.errors import InvalidToken
from llmsec_aio.keys import load_keyring
from llmsec_aio.tokens import MAX_TOKEN_LENGTH, TokenService
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import MISSING, remint


def service(deployment: Deployment, clock: FakeClock, alg: str = "EdDSA") -> TokenService:
    ring = load_keyring(deployment.keys_dir, alg)
    return TokenService(ring, issuer="https://iss.test", audience="aud", roles={"user", "admin"},
                        leeway=5, clock=clock)


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_issue_then_verify_round_trip(deployment: Deployment, clock: FakeClock, alg: str) -> None:
    tokens = service(deployment, clock, alg)
    issued = tokens.issue("alice", "user", 900)
    assert issued.expires_in == 900 and issued.claims.exp == int(clock.now) + 900
    claims = tokens.verify(issued.token)
    assert (claims.sub, claims.role, claims.client_id) == ("alice", "user", "alice")
    assert claims.kid == tokens.keyring.signing.kid and claims.jti == issued.claims.jti
    assert jwt.get_unverified_header(issued.token) == {"alg": alg, "kid": claims.kid, "typ": "at+jwt"}


def test_each_token_has_its_own_jti(deployment: Deployment, clock: FakeClock) -> None:
    tokens = service(deployment, clock)
    assert tokens.issue("a", "user", 60).claims.jti != tokens.issue("a", "user", 60).claims.jti


def reason(tokens: TokenService, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        tokens.verify(token)
    return info.value.reason


@pytest.mark.parametrize("claims, expected", [
    ({"iss": "https://evil.test"}, "bad_claims"),
    ({"aud": "other"}, "bad_claims"),
    ({"role": "root"}, "unknown_role"),
    ({"sub": ""}, "bad_claims"),
    ({"jti": MISSING}, "bad_claims"),
    ({"client_id": MISSING}, "bad_claims"),
    ({"exp": "never"}, "bad_claims"),
    ({"exp": True}, "bad_claims"),
])
def test_claims_are_required_and_checked(deployment: Deployment, clock: FakeClock,
                                          claims: dict[str, object], expected: str) -> None:
    tokens = service(deployment, clock)
    token = tokens.issue("alice", "user", 900).token
    assert reason(tokens, remint(token, deployment.ed, claims=claims)) == expected


def test_audience_list_containing_ours_is_accepted(deployment: Deployment, clock: FakeClock) -> None:
    tokens = service(deployment, clock)
    token = remint(tokens.issue("alice", "user", 900).token, deployment.ed, claims={"aud": ["x", "aud"]})
    assert tokens.verify(token).sub == "alice"


def test_type_must_be_access_token(deployment: Deployment, clock: FakeClock) -> None:
    tokens = service(deployment, clock)
    token = tokens.issue("alice", "user", 900).token
    assert reason(tokens, remint(token, deployment.ed, header={"typ": "JWT"})) == "bad_type"
    assert tokens.verify(remint(token, deployment.ed, header={"typ": "application/at+jwt"})).sub == "alice"


def test_clock_is_read_at_every_verification(deployment: Deployment, clock: FakeClock) -> None:
    tokens = service(deployment, clock)
    token = tokens.issue("alice", "user", 60).token
    clock.advance(64)
    assert tokens.verify(token).sub == "alice"
    clock.advance(1)
    assert reason(tokens, token) == "expired"


def test_signature_from_another_key_with_the_same_kid_fails(deployment: Deployment, clock: FakeClock) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    tokens = service(deployment, clock)
    token = tokens.issue("alice", "user", 60).token
    assert reason(tokens, remint(token, ed25519.Ed25519PrivateKey.generate())) == "bad_signature"


def test_overlong_token_is_refused_before_parsing(deployment: Deployment, clock: FakeClock) -> None:
    assert reason(service(deployment, clock), "a" * (MAX_TOKEN_LENGTH + 1)) == "too_long"
