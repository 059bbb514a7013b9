"""C05: the JWKS publishes the Ed25519 key as a correct OKP JWK that a stock client can verify with."""

from __future__ import annotations

import re
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from tests.conftest import Client, form_login, login
from tests.support.deployment import Deployment
from tests.support.jwtcraft import parts, unb64u

ISSUER, AUDIENCE = "https://llm.example.test", "llmsec-test"
# Private members of any JWK type (RFC 7517/7518/8037): none may ever be published.
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def fetch_jwks(client: Client) -> tuple[int, str, dict[str, Any]]:
    client.session.cookie_jar.clear()  # "with no credentials"
    resp = await client.get("/.well-known/jwks.json")
    return resp.status, resp.headers.get("Content-Type", ""), await resp.json()


async def ed_entry(client: Client, deployment: Deployment) -> dict[str, Any]:
    _, _, body = await fetch_jwks(client)
    entries = [k for k in body["keys"] if k.get("kid") == deployment.ed_kid]
    assert len(entries) == 1
    return dict(entries[0])


async def test_jwks_is_public_json_with_unique_kids(client: Client) -> None:
    status, content_type, body = await fetch_jwks(client)
    assert status == 200
    assert content_type.split(";")[0].strip() == "application/json"
    assert list(body) == ["keys"] and isinstance(body["keys"], list) and body["keys"]
    kids = [k["kid"] for k in body["keys"]]
    assert len(kids) == len(set(kids))
    for entry in body["keys"]:
        assert not PRIVATE_MEMBERS & set(entry), entry["kid"]


async def test_ed25519_entry_is_okp(client: Client, deployment: Deployment) -> None:
    entry = await ed_entry(client, deployment)
    assert entry["kty"] == "OKP"
    assert entry["crv"] == "Ed25519"
    assert entry["use"] == "sig"
    assert entry["alg"] == "EdDSA"
    assert "d" not in entry and "y" not in entry
    # x: 43 base64url characters, no padding, the 32 raw bytes of the configured public key.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", entry["x"])
    raw = deployment.ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert unb64u(entry["x"]) == raw and len(raw) == 32


async def test_issued_eddsa_tokens_name_the_okp_kid(client: Client, deployment: Deployment) -> None:
    header, _ = parts(await login(client))
    assert header["alg"] == "EdDSA"
    assert header["kid"] == deployment.ed_kid == (await ed_entry(client, deployment))["kid"]


async def test_stock_client_verifies_with_the_jwk_alone(client: Client, deployment: Deployment) -> None:
    # PyJWT's PyJWK built from the published entry only: no access to our key files.
    key = jwt.PyJWK(await ed_entry(client, deployment))
    assert key.algorithm_name == "EdDSA"
    for token, sub in ((await login(client), "agent1"), (await form_login(client), "web1")):
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)
        assert claims["sub"] == sub
    # The same through the whole key set, as a relying party would load it.
    _, _, body = await fetch_jwks(client)
    keyset = jwt.PyJWKSet.from_dict(body)
    v = await login(client)
    claims = jwt.decode(v, keyset[parts(v)[0]["kid"]], algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)
    assert claims["sub"] == "agent1"
