"""keys.py: RFC 7638 kids, key loading and refusals, signing-key choice, the JWKS body."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from llmsec_aio.errors import ConfigError
from llmsec_aio.keys import generate_key, load_keyring, thumbprint
from tests.support.deployment import Deployment, pem


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 section 3.1: this RSA key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKR"
         "XjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
         "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPk"
         "sINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    key = jwt.PyJWK({"kty": "RSA", "n": n, "e": "AQAB"}).key
    assert isinstance(key, rsa.RSAPublicKey)
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_newest_key_of_the_configured_algorithm_signs(deployment: Deployment) -> None:
    ring = load_keyring(deployment.keys_dir, "EdDSA")
    assert ring.signing.kid == deployment.ed_kid
    assert set(ring.keys) == {deployment.ed_kid, deployment.rsa_kid}
    assert load_keyring(deployment.keys_dir, "RS256").signing.kid == deployment.rsa_kid
    newer = ed25519.Ed25519PrivateKey.generate()
    deployment.write_key("c-ed25519.pem", newer)
    assert load_keyring(deployment.keys_dir, "EdDSA").signing.kid == thumbprint(newer.public_key())


def test_jwks_publishes_public_members_only(deployment: Deployment) -> None:
    ring = load_keyring(deployment.keys_dir, "EdDSA")
    keys = {k["kid"]: k for k in json.loads(ring.jwks_body)["keys"]}
    assert set(keys[deployment.ed_kid]) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert set(keys[deployment.rsa_kid]) == {"kty", "n", "e", "kid", "alg", "use"}
    assert keys[deployment.rsa_kid]["alg"] == "RS256" and keys[deployment.rsa_kid]["use"] == "sig"


def test_generated_key_is_private_to_its_owner(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "keys", "RS256")
    [path] = (tmp_path / "keys").glob("*.pem")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.alg == "RS256" and isinstance(key.private, rsa.RSAPrivateKey)
    assert key.private.key_size == 3072


@pytest.mark.parametrize("content, found", [
    (b"not a pem", "unreadable PEM data"),
    (b"", "unreadable PEM data"),
    (pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "1024 bits"),  # noqa: S505
    (pem(ec.generate_private_key(ec.SECP256R1())), "an EC key"),  # type: ignore[arg-type]
])
def test_unusable_key_files_are_refused(deployment: Deployment, content: bytes, found: str) -> None:
    (deployment.keys_dir / "z-bad.pem").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_keyring(deployment.keys_dir, "EdDSA")
    [problem] = info.value.problems
    assert "z-bad.pem" in problem and found in problem


def test_the_same_key_twice_is_refused(deployment: Deployment) -> None:
    deployment.write_key("c-copy.pem", deployment.ed)
    with pytest.raises(ConfigError, match=r"the same key as b-ed25519\.pem"):
        load_keyring(deployment.keys_dir, "EdDSA")


def test_missing_folder_and_missing_algorithm_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        load_keyring(tmp_path / "none", "EdDSA")
    generate_key(tmp_path / "k", "EdDSA")
    with pytest.raises(ConfigError, match=r"llmsec-aio keys generate --alg RS256"):
        load_keyring(tmp_path / "k", "RS256")


def test_a_key_others_can_read_is_refused(deployment: Deployment) -> None:
    (deployment.keys_dir / "b-ed25519.pem").chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable by its owner only \(chmod 600\), found mode 0640"):
        load_keyring(deployment.keys_dir, "EdDSA")


def test_unlisted_key_files_are_reported_as_ignored(deployment: Deployment) -> None:
    from llmsec_aio.keystate import KeyEntry, KeyState, write_manifest

    write_manifest(deployment.keys_dir, [KeyEntry("b-ed25519.pem", KeyState.ACTIVE, 0.0)])
    ring = load_keyring(deployment.keys_dir, "EdDSA")
    assert ring.ignored == ("a-rsa.pem",) and set(ring.keys) == {deployment.ed_kid}
