"""C23: Basic credentials containing ':', '%' or non-ASCII characters (UTF-8, split at the first ':')."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsec_aio.config import DEFAULT_ROLES
from llmsec_aio.errors import ConfigError
from llmsec_aio.users import load_users
from tests.conftest import Client, MakeClient, basic
from tests.support.deployment import Deployment, hash_pw

USERS = {
    "agent2": "s3c:r3t:pw",
    "agent3": "a%BCd%20e",
    "agent4": "pässwörd-密码-🔑",
    "agent5": "pässwörd",
}
AGENT_TTL = DEFAULT_ROLES["agent_reasoning"].ttl
INVALID = {"error": "invalid_credentials", "message": "invalid username or password"}


@pytest.fixture
async def agents(deployment: Deployment, make_client: MakeClient) -> Client:
    for name, password in USERS.items():
        deployment.add_user(name, password, "agent_reasoning")
    return await make_client()


async def post_login(client: Client, authorization: str) -> tuple[int, dict[str, object], str]:
    resp = await client.post("/llm/login", headers={"Authorization": authorization})
    return resp.status, await resp.json(), resp.headers.get("WWW-Authenticate", "")


async def assert_logged_in(client: Client, authorization: str, user: str) -> None:
    status, body, _ = await post_login(client, authorization)
    assert status == 200, body
    assert body["expires_in"] == AGENT_TTL
    resp = await client.get("/validate", headers={"Authorization": f"Bearer {body['token']}"})
    assert resp.status == 200
    assert resp.headers["X-Auth-Request-User"] == user


@pytest.mark.parametrize("user", ["agent2", "agent3", "agent4"])
async def test_utf8_credentials_log_in(agents: Client, user: str) -> None:
    await assert_logged_in(agents, basic(user, USERS[user]), user)


async def test_lower_case_basic_scheme(agents: Client) -> None:
    await assert_logged_in(agents, "basic " + basic("agent2", USERS["agent2"]).split(" ", 1)[1], "agent2")


async def test_latin1_is_refused_without_fallback(agents: Client) -> None:
    # The product decodes Basic as UTF-8 only (documented); latin-1 bytes are not valid UTF-8.
    status, body, challenge = await post_login(agents, basic("agent5", USERS["agent5"], "latin-1"))
    assert (status, body) == (401, INVALID)
    assert challenge.startswith('Basic realm="')


async def test_latin1_user_logs_in_with_utf8(agents: Client) -> None:
    # Control for the test above: the refusal is about the charset, not the account.
    await assert_logged_in(agents, basic("agent5", USERS["agent5"]), "agent5")


@pytest.mark.parametrize("user", list(USERS))
async def test_wrong_password(agents: Client, user: str) -> None:
    status, body, challenge = await post_login(agents, basic(user, USERS[user] + "x"))
    assert (status, body) == (401, INVALID)
    assert challenge.startswith('Basic realm="')


@pytest.mark.parametrize("user", ["agent2", "agent3"])
async def test_password_is_neither_truncated_nor_unquoted(agents: Client, user: str) -> None:
    # Splitting at every ':' would try "r3t"; percent-decoding would turn %20 into a space.
    truncated = USERS[user].split(":")[0] if ":" in USERS[user] else USERS[user].replace("%20", " ")
    status, body, _ = await post_login(agents, basic(user, truncated))
    assert (status, body) == (401, INVALID)


def test_loader_rejects_username_with_colon(tmp_path: Path) -> None:
    # Such a user could never log in with Basic (split at the first ':').
    path = tmp_path / "credentials.yaml"
    path.write_text(f'users:\n  "bad:user": {{role: agent_reasoning, hash: "{hash_pw("pw")}"}}\n')
    with pytest.raises(ConfigError) as excinfo:
        load_users(path, DEFAULT_ROLES)
    assert any("users.bad:user" in problem for problem in excinfo.value.problems)
