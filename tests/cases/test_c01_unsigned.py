"""C01: unsigned tokens (`alg: none` in any spelling, null, empty or missing) are refused on every path."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import Client, login
from tests.support.casekit import VIAS, Via, assert_no_error_logs, validate_status
from tests.support.deployment import Deployment, FakeClock
from tests.support.jwtcraft import MISSING, b64u_json, parts, sign

# The most privileged role of the test config, and a user that really holds it.
TOP_ROLE = "admin"

ALGS: dict[str, Any] = {
    "none": "none", "None": "None", "NONE": "NONE", "nOnE": "nOnE",
    "empty": "", "null": None, "missing": MISSING,
}
SIGNATURES = {"empty": "", "AAAA": "AAAA"}


def forged_payloads(v: str, now: float) -> dict[str, dict[str, Any]]:
    """V's claims elevated as PUBLIC.md says, plus a full impersonation of the real admin.

    The gateway also checks the role against the user store, which alone refuses the first
    payload; the second one passes that check, so only the missing signature can stop it.
    """
    _, claims = parts(v)
    exp = int(now) + 600
    return {
        "elevated-role": {**claims, "role": TOP_ROLE, "exp": exp},
        "as-admin1": {**claims, "sub": "admin1", "client_id": "admin1", "role": TOP_ROLE, "exp": exp},
    }


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    return f"{b64u_json(header)}.{b64u_json(payload)}.{signature}"


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("signature", SIGNATURES.values(), ids=SIGNATURES.keys())
@pytest.mark.parametrize("alg", ALGS.values(), ids=ALGS.keys())
async def test_unsigned_token_is_refused(client: Client, deployment: Deployment, clock: FakeClock,
                                         caplog: pytest.LogCaptureFixture,
                                         alg: Any, signature: str, via: Via) -> None:
    v = await login(client)
    # typ "JWT" is the case's header; V's own "at+jwt" makes sure typ is not what refuses it.
    # The case names the RSA kid; the Ed25519 kid is a cheap extra.
    for typ, kid in itertools.product(("JWT", parts(v)[0]["typ"]), (deployment.rsa_kid, deployment.ed_kid)):
        header: dict[str, Any] = {"alg": alg, "typ": typ, "kid": kid}
        if alg is MISSING:
            del header["alg"]
        for name, payload in forged_payloads(v, clock.now).items():
            status = await validate_status(client, unsigned(header, payload, signature), via)
            assert status == 401, f"typ={typ} kid={kid} payload={name}"
    assert_no_error_logs(caplog)


@pytest.mark.parametrize("via", VIAS)
async def test_control_signed_tokens_pass(client: Client, deployment: Deployment, clock: FakeClock,
                                          via: Via) -> None:
    # V itself, and the impersonation payload properly signed with RS256: both get in, so the
    # 401s above come from the missing signature and nothing else.
    v = await login(client)
    assert await validate_status(client, v, via) == 200
    header = {"alg": "RS256", "typ": parts(v)[0]["typ"], "kid": deployment.rsa_kid}
    signed = sign(header, forged_payloads(v, clock.now)["as-admin1"], deployment.rsa)
    assert await validate_status(client, signed, via) == 200
