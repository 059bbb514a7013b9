"""C02: HS256/384/512 tokens keyed with any encoding of our published public keys are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.conftest import Client, login
from tests.support.casekit import assert_no_error_logs, validate_status
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import parts, sign, unb64u

PEM, DER, SSH = serialization.Encoding.PEM, serialization.Encoding.DER, serialization.Encoding.OpenSSH
SPKI, PKCS1 = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1

# Secrets derived from the RSA JWK (first five are the case's; the rest are cheap extras).
RSA_SECRETS = ("spki-pem", "pkcs1-pem", "spki-der", "jwk-json", "raw-n",
               "pkcs1-der", "spki-pem-stripped", "jwk-json-spaced")
# Secrets derived from the OKP JWK (first three are the case's).
OKP_SECRETS = ("pem", "openssh", "raw-x", "der", "jwk-json")
ALGORITHMS = ("HS256", "HS384", "HS512")


def jwk_text(entry: dict[str, Any], spaced: bool = False) -> bytes:
    return json.dumps(entry, separators=None if spaced else (",", ":")).encode()


def rsa_secrets(entry: dict[str, Any]) -> dict[str, bytes]:
    n, e = (int.from_bytes(unb64u(entry[m]), "big") for m in ("n", "e"))
    public = rsa.RSAPublicNumbers(e, n).public_key()
    return {
        "spki-pem": public.public_bytes(PEM, SPKI),
        "pkcs1-pem": public.public_bytes(PEM, PKCS1),
        "spki-der": public.public_bytes(DER, SPKI),
        "jwk-json": jwk_text(entry),
        "raw-n": unb64u(entry["n"]),
        "pkcs1-der": public.public_bytes(DER, PKCS1),
        "spki-pem-stripped": public.public_bytes(PEM, SPKI).strip(),
        "jwk-json-spaced": jwk_text(entry, spaced=True),
    }


def okp_secrets(entry: dict[str, Any]) -> dict[str, bytes]:
    public = ed25519.Ed25519PublicKey.from_public_bytes(unb64u(entry["x"]))
    return {
        "pem": public.public_bytes(PEM, SPKI),
        "openssh": public.public_bytes(SSH, serialization.PublicFormat.OpenSSH),
        "raw-x": unb64u(entry["x"]),
        "der": public.public_bytes(DER, SPKI),
        "jwk-json": jwk_text(entry),
    }


async def live_jwks(client: Client) -> dict[str, dict[str, Any]]:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200
    return {k["kid"]: k for k in (await resp.json())["keys"]}


def elevated_payloads(v: str, now: float) -> dict[str, dict[str, Any]]:
    """The case's elevated-role payload, and one that impersonates the real admin (so the
    gateway's user/role cross-check cannot be what refuses it)."""
    _, claims = parts(v)
    exp = int(now) + 600
    return {
        "elevated-role": {**claims, "role": "admin", "exp": exp},
        "as-admin1": {**claims, "sub": "admin1", "client_id": "admin1", "role": "admin", "exp": exp},
    }


async def assert_hmac_refused(client: Client, v: str, now: float, secret: bytes, alg: str,
                              kid: str | None) -> None:
    for typ in ("JWT", parts(v)[0]["typ"]):  # the case's typ, and the one the gateway issues
        header = {"alg": alg, "typ": typ, **({"kid": kid} if kid is not None else {})}
        for name, payload in elevated_payloads(v, now).items():
            status = await validate_status(client, sign(header, payload, secret))
            assert status == 401, f"typ={typ} payload={name}"


@pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("secret_name", RSA_SECRETS)
async def test_hmac_with_rsa_public_key_is_refused(client: Client, deployment: Deployment, clock: FakeClock,
                                                   caplog: pytest.LogCaptureFixture, secret_name: str,
                                                   alg: str, with_kid: bool) -> None:
    v = await login(client)
    secret = rsa_secrets((await live_jwks(client))[deployment.rsa_kid])[secret_name]
    await assert_hmac_refused(client, v, clock.now, secret, alg, deployment.rsa_kid if with_kid else None)
    assert_no_error_logs(caplog)


@pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("secret_name", OKP_SECRETS)
async def test_hmac_with_ed25519_public_key_is_refused(client: Client, deployment: Deployment,
                                                       clock: FakeClock, caplog: pytest.LogCaptureFixture,
                                                       secret_name: str, alg: str, with_kid: bool) -> None:
    v = await login(client)
    secret = okp_secrets((await live_jwks(client))[deployment.ed_kid])[secret_name]
    await assert_hmac_refused(client, v, clock.now, secret, alg, deployment.ed_kid if with_kid else None)
    assert_no_error_logs(caplog)


async def test_derived_secrets_are_the_real_public_keys(client: Client, deployment: Deployment) -> None:
    # Guards the test itself: the secrets above really are encodings of the configured keys.
    jwks = await live_jwks(client)
    rsa_pub, ed_pub = deployment.rsa.public_key(), deployment.ed.public_key()
    derived_rsa = rsa_secrets(jwks[deployment.rsa_kid])
    assert derived_rsa["spki-pem"] == rsa_pub.public_bytes(PEM, SPKI)
    assert derived_rsa["pkcs1-pem"].startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    assert derived_rsa["spki-der"] == rsa_pub.public_bytes(DER, SPKI)
    derived_ed = okp_secrets(jwks[deployment.ed_kid])
    assert derived_ed["pem"] == ed_pub.public_bytes(PEM, SPKI)
    assert derived_ed["openssh"].startswith(b"ssh-ed25519 AAAA")
    raw = ed_pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert derived_ed["raw-x"] == raw


async def test_control_and_fixed_algorithms(client: Client, deployment: Deployment, clock: FakeClock) -> None:
    # The impersonation payload signed with the real RSA key gets in: only the HMAC stops it above.
    v = await login(client)
    header = {"alg": "RS256", "typ": parts(v)[0]["typ"], "kid": deployment.rsa_kid}
    assert await validate_status(client, sign(header, elevated_payloads(v, clock.now)["as-admin1"],
                                               deployment.rsa)) == 200
    # The server advertises only what it issues; no HMAC algorithm anywhere.
    disco = await (await client.get("/.well-known/openid-configuration")).json()
    assert disco["id_token_signing_alg_values_supported"] == ["EdDSA", "RS256"]
    assert {k["alg"] for k in (await live_jwks(client)).values()} == {"EdDSA", "RS256"}
