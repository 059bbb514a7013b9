"""Metrics (per-app registry, role-protected or on a loopback port), health, readiness, audit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest

from llmsec_aio.handlers import RUNTIME
from tests.conftest import Client, MakeClient, basic, form_login, login
from tests.support.deployment import Deployment
from tests.support.gateway import running_gateway
from tests.support.net import free_port


async def scrape(client: Client) -> str:
    token = await login(client, "admin1", "admin1-pw")
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200 and resp.content_type == "text/plain"
    return await resp.text()


def value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition sorts labels
    selector = f"{{{wanted}}}" if labels else ""
    pattern = rf"^{re.escape(name + selector)} (\S+)$"
    match = re.search(pattern, text, re.M)
    assert match, f"{name} {labels} not in metrics"
    return float(match.group(1))


async def test_metrics_need_a_monitoring_or_admin_token(client: Client) -> None:
    assert (await client.get("/metrics")).status == 401
    agent = await login(client)
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {agent}"})).status == 403
    assert "llmsec_signing_key_info" in await scrape(client)


async def test_metrics_follow_what_happens(client: Client, deployment: Deployment) -> None:
    token = await login(client)
    for _ in range(3):
        await client.get("/validate", headers={"Authorization": f"Bearer {token}"})
    await client.get("/validate", headers={"Authorization": "Bearer junk"})
    await client.get(
        "/validate",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Original-URI": "/llm/admin",
            "X-Original-Method": "GET",
        },
    )
    await client.post("/llm/login", headers={"Authorization": basic("agent1", "wrong")})
    await client.post("/logout", headers={"Authorization": f"Bearer {token}"})
    await client.app[RUNTIME].reload()
    text = await scrape(client)
    assert value(text, "llmsec_validate_decisions_total", outcome="allowed", reason="valid") == 3
    assert value(text, "llmsec_validate_decisions_total", outcome="invalid", reason="malformed") == 1
    assert value(text, "llmsec_validate_decisions_total", outcome="denied", reason="denied_by_rule") == 1
    assert value(text, "llmsec_validation_cache_lookups_total", result="hit") >= 3
    assert value(text, "llmsec_logins_total", method="basic", outcome="success") == 2
    assert value(text, "llmsec_logins_total", method="basic", outcome="failure") == 1
    assert value(text, "llmsec_http_requests_total", endpoint="validate", status="200") == 3
    assert value(text, "llmsec_request_duration_seconds_count", endpoint="validate") == 5
    assert value(text, "llmsec_reloads_total", outcome="success") == 1
    assert value(text, "llmsec_last_reload_success") == 1
    assert value(text, "llmsec_revocations") == 1
    assert (
        value(text, "llmsec_keys", state="active") == 1 and value(text, "llmsec_keys", state="retired") == 1
    )
    assert value(text, "llmsec_signing_key_info", kid=deployment.ed_kid, alg="EdDSA") == 1
    assert "llmsec_redis_up" not in text  # no Redis configured


async def test_each_app_has_its_own_registry(make_client: MakeClient) -> None:
    first, second = await make_client(), await make_client()
    await login(first)
    assert value(await scrape(second), "llmsec_logins_total", method="basic", outcome="success") == 1


async def test_health_and_readiness(client: Client) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_redis_down_at_start_is_not_ready_but_serves(
    make_client: MakeClient, deployment: Deployment
) -> None:
    deployment.settings["cache"] = {"backend": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    deployment.write()
    client = await make_client()
    ready = await client.get("/readyz")
    assert ready.status == 503 and await ready.json() == {
        "status": "not ready",
        "reasons": ["redis is unreachable"],
    }
    assert await (await client.get("/healthz")).json() == {"status": "ok", "redis": "down"}
    token = await login(client)  # logins and validation go on without Redis
    assert (await client.get("/validate", headers={"Authorization": f"Bearer {token}"})).status == 200
    assert (await client.post("/logout", headers={"Authorization": f"Bearer {token}"})).status == 200
    assert (await client.get("/validate", headers={"Authorization": f"Bearer {token}"})).status == 401


async def test_audit_events_are_json_lines(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="llmsec_aio.audit")
    cookie = await form_login(client)
    for _ in range(5):
        await client.post(
            "/llm/login", headers={"Authorization": basic("agent1", "wrong"), "X-Real-IP": "192.0.2.9"}
        )
    await client.post("/logout", headers={"Cookie": f"auth_token={cookie}"})
    await client.app[RUNTIME].reload("test")
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "llmsec_aio.audit"]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["login", "token_issued"]
    assert kinds.count("login") == 6 and "ban" in kinds and "revoked" in kinds and kinds[-1] == "reload"
    login_ok = events[0]
    assert (login_ok["outcome"], login_ok["user"], login_ok["role"], login_ok["method"]) == (
        "success",
        "web1",
        "user",
        "form",
    )
    assert {"jti", "kid", "role", "exp"} <= set(events[1])
    failed = next(e for e in events if e.get("outcome") == "failure")
    assert failed["client"] == "192.0.2.9" and failed["user"] == "agent1"
    text = caplog.text
    assert cookie not in text and "wrong" not in text and "$2b$" not in text


@pytest.mark.e2e
async def test_the_metrics_port_serves_without_a_token(deployment: Deployment, tmp_path: Path) -> None:
    port = free_port()
    deployment.settings["metrics"] = {"port": port}
    deployment.write()
    with running_gateway(deployment.config_path, tmp_path / "gw.log"):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200
            assert "llmsec_request_duration_seconds" in await r.text()
