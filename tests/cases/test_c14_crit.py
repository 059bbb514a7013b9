"""C14: a JWS header with `crit` (any form, any listed name) is refused; the same token without it passes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.conftest import Client, login
from tests.support.casekit import VIAS, Via, assert_no_error_logs, validate_status
from tests.support.deployment import Deployment
from tests.support.jwtcraft import remint

CRIT: dict[str, dict[str, Any]] = {
    "a-unknown-extension": {"crit": ["x-policy"], "x-policy": "strict"},
    "b-empty-list": {"crit": []},
    "c-registered-claim-name": {"crit": ["exp"]},
    "d-b64-false": {"crit": ["b64"], "b64": False},
    "e-string-not-list": {"crit": "x-policy"},
}


def signer(deployment: Deployment, alg: str) -> tuple[rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, str]:
    return (deployment.ed, deployment.ed_kid) if alg == "EdDSA" else (deployment.rsa, deployment.rsa_kid)


# Both keys the gateway verifies with, so the check cannot depend on the algorithm.
@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("crit", CRIT.values(), ids=CRIT.keys())
async def test_crit_header_is_refused(client: Client, deployment: Deployment,
                                      caplog: pytest.LogCaptureFixture,
                                      crit: dict[str, Any], via: Via, alg: str) -> None:
    key, kid = signer(deployment, alg)
    token = remint(await login(client), key, header={"alg": alg, "kid": kid, **crit})
    assert await validate_status(client, token, via) == 401
    assert_no_error_logs(caplog)


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
@pytest.mark.parametrize("via", VIAS)
async def test_control_without_crit_passes(client: Client, deployment: Deployment, via: Via,
                                           alg: str) -> None:
    key, kid = signer(deployment, alg)
    token = remint(await login(client), key, header={"alg": alg, "kid": kid})
    assert await validate_status(client, token, via) == 200
