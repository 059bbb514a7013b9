"""C04: missing, null, non-string, unknown or hostile `kid` values get a plain 401 and touch nothing."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from tests.conftest import Client, login
from tests.support.casekit import (
    assert_no_error_logs,
    runtime_of,
    spy_on_access,
    timed_status,
    validate_status,
)
from tests.support.deployment import Deployment
from tests.support.jwtcraft import MISSING, remint

RSA_KID = "<RSA_KID>"  # placeholder replaced by the deployment's real RSA kid


def swapcase_kid(kid: str) -> str:
    swapped = kid.swapcase()
    assert swapped != kid  # an RFC 7638 thumbprint always has letters
    return swapped


KIDS: dict[str, Any] = {
    "01-removed": MISSING,
    "02-null": None,
    "03-int": 123,
    "04-list": [RSA_KID],
    "05-object": {"id": RSA_KID},
    "06-empty": "",
    "07-unknown": "unknown-kid",
    "08-path-traversal": "../../../../k",
    "09-windows-traversal": "..\\..\\k",
    "10-sql-injection": f"{RSA_KID}' OR '1'='1",
    "11-10000-chars": "k" * 10_000,
    "12-case-changed": "swapcase",
}


def resolve(value: Any, rsa_kid: str) -> Any:
    """Put the real kid where the table says <RSA_KID>."""
    if value == "swapcase":
        return swapcase_kid(rsa_kid)
    if isinstance(value, str):
        return value.replace(RSA_KID, rsa_kid)
    if isinstance(value, list):
        return [resolve(v, rsa_kid) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, rsa_kid) for k, v in value.items()}
    return value


def rs256_with_kid(v: str, deployment: Deployment, kid: Any) -> str:
    """Remint V with RS256 and RSA_PRIV, changing only the kid."""
    return remint(v, deployment.rsa, header={"alg": "RS256", "kid": kid})


@pytest.mark.parametrize("kid", KIDS.values(), ids=KIDS.keys())
async def test_hostile_kid_is_refused(client: Client, deployment: Deployment,
                                      caplog: pytest.LogCaptureFixture, kid: Any) -> None:
    v = await login(client)
    token = rs256_with_kid(v, deployment, resolve(kid, deployment.rsa_kid))
    assert await validate_status(client, token) == 401
    assert_no_error_logs(caplog)


async def test_control_real_kid_passes(client: Client, deployment: Deployment) -> None:
    # The very same remint with the real kid gets 200: the kid alone decides above.
    v = await login(client)
    assert await validate_status(client, rs256_with_kid(v, deployment, deployment.rsa_kid)) == 200


async def test_hostile_kids_touch_no_file_key_or_lookup(client: Client, deployment: Deployment,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    v = await login(client)
    tokens = [rs256_with_kid(v, deployment, resolve(kid, deployment.rsa_kid)) for kid in KIDS.values()]
    keyring = runtime_of(client).current.keyring
    spy = spy_on_access(monkeypatch)
    spy.arm()
    for token in tokens:
        assert await validate_status(client, token) == 401
    spy.disarm()
    # No key file read, no key-set rebuild, no file opened, no DNS lookup for any kid value.
    assert spy.key_loads == []
    assert spy.files == []
    assert spy.lookups == []
    assert runtime_of(client).current.keyring is keyring


@pytest.mark.parametrize("kid", KIDS.values(), ids=KIDS.keys())
async def test_hostile_kid_latency_is_that_of_any_401(client: Client, deployment: Deployment,
                                                      kid: Any) -> None:
    # Baseline: a known kid with a bad signature, the most expensive ordinary 401.
    v = await login(client)
    head, payload, _ = rs256_with_kid(v, deployment, deployment.rsa_kid).split(".")
    baseline_token = f"{head}.{payload}.{'A' * 342}"
    hostile = rs256_with_kid(v, deployment, resolve(kid, deployment.rsa_kid))
    baseline: list[float] = []
    measured: list[float] = []
    for _ in range(30):  # interleaved, so a noisy moment hits both series alike
        for token, sink in ((baseline_token, baseline), (hostile, measured)):
            status, seconds = await timed_status(client, token)
            assert status == 401
            sink.append(seconds)
    base, hostile_median = statistics.median(baseline), statistics.median(measured)
    assert hostile_median <= max(3 * base, base + 0.005), (hostile_median, base)
