"""Users and roles on reload: who may log in and whose live tokens survive."""

from __future__ import annotations

import pytest

from llmsec_aio.handlers import RUNTIME
from tests.conftest import Client, basic, form_login, login
from tests.support.deployment import Deployment


async def validate(client: Client, token: str) -> int:
    return (await client.get("/validate", headers={"Authorization": f"Bearer {token}"})).status


@pytest.mark.parametrize("change", ["removed", "disabled", "role changed"])
async def test_a_changed_user_loses_login_and_live_tokens_at_once(
        client: Client, deployment: Deployment, change: str) -> None:
    token, other = await login(client), await form_login(client)
    assert await validate(client, token) == 200  # cached from here on
    if change == "removed":
        del deployment.users["agent1"]
    elif change == "disabled":
        deployment.users["agent1"]["disabled"] = True
    else:
        deployment.users["agent1"]["role"] = "agent_fast"
    deployment.write()
    await client.app[RUNTIME].reload()
    assert await validate(client, token) == 401
    assert await validate(client, other) == 200  # nobody else is affected
    resp = await client.post("/llm/login", headers={"Authorization": basic("agent1", "agent1-pw")})
    assert resp.status == (200 if change == "role changed" else 401)


async def test_reloads_are_recorded(client: Client, deployment: Deployment) -> None:
    runtime = client.app[RUNTIME]
    await runtime.reload("test")
    deployment.config_path.write_text("leeway: lots\n")
    with pytest.raises(Exception, match="leeway"):
        await runtime.reload("test")
    ok, failed = list(runtime.reloads)[-2:]
    assert ok.ok and ok.message.startswith("2 keys, 3 users, signing kid ")
    assert not failed.ok and "leeway: expected seconds from 0 to 120, found string 'lots'" in failed.message


async def test_a_server_setting_change_is_reported_as_needing_a_restart(
        client: Client, deployment: Deployment) -> None:
    deployment.settings["server"] = {"port": 9999}
    deployment.write()
    await client.app[RUNTIME].reload()
    assert client.app[RUNTIME].reloads[-1].message.endswith(
        "server.* changed and applies only after a restart")
