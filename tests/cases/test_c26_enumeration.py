"""C26: no user enumeration through wording, status, headers or timing on both login paths."""

from __future__ import annotations

import html
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import FormData

from tests.conftest import Client, MakeClient, basic
from tests.support.deployment import Deployment

# Cost 10 makes bcrypt (~tens of ms) dominate a login; unknown users are checked against a
# dummy hash with the highest cost found among the users, so both must cost the same.
COST = 10
WARMUPS = 10
CALLS = 40
TOLERANCE = 0.20
UNKNOWN = f"nouser-{secrets.token_hex(6)}"
IGNORED_HEADERS = {"date"}  # (no request id is sent)


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    headers: dict[str, str]  # lower-cased names, minus IGNORED_HEADERS


Call = Callable[[], Awaitable[Reply]]


@pytest.fixture
async def client(deployment: Deployment, make_client: MakeClient) -> Client:
    # 150 deliberate failures from one address: regulation (C27) would answer them with 429.
    deployment.settings["logins"] = {"max_failures": 1000, "max_failures_per_client": 1000}
    deployment.add_user("agent1", "agent1-pw", "agent_reasoning", cost=COST)
    deployment.add_user("web1", "web1-pw", "user", cost=COST)
    return await make_client()


async def reply(client: Client, path: str, *, headers: dict[str, str] | None = None,
                data: FormData | None = None) -> Reply:
    client.session.cookie_jar.clear()
    resp = await client.post(path, headers=headers, data=data, allow_redirects=False)
    body = await resp.text()
    headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in IGNORED_HEADERS}
    return Reply(resp.status, body, headers)


def llm_login(client: Client, user: str, password: str) -> Call:
    return lambda: reply(client, "/llm/login", headers={"Authorization": basic(user, password)})


def form_login(client: Client, fields: list[tuple[str, str]]) -> Call:
    def call() -> Awaitable[Reply]:
        form = FormData()
        for name, value in fields:
            form.add_field(name, value)
        return reply(client, "/login", data=form)

    return call


async def timed(calls: dict[str, Call]) -> tuple[dict[str, list[Reply]], dict[str, float]]:
    """Warm up, then CALLS rounds of every variant interleaved, so drift hits all of them alike."""
    names = list(calls)
    for i in range(WARMUPS):
        await calls[names[i % len(names)]]()
    replies: dict[str, list[Reply]] = {name: [] for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(CALLS):
        for name in names:
            start = time.perf_counter()
            replies[name].append(await calls[name]())
            times[name].append(time.perf_counter() - start)
    return replies, {name: statistics.median(t) for name, t in times.items()}


def assert_close(medians: dict[str, float], base: str, other: str) -> None:
    ratio = medians[other] / medians[base]
    assert 1 - TOLERANCE <= ratio <= 1 + TOLERANCE, (
        f"median {other}={medians[other] * 1000:.1f} ms vs {base}={medians[base] * 1000:.1f} ms")


async def test_llm_login_same_answer_and_timing(client: Client) -> None:
    calls = {
        "a-known-wrong-password": llm_login(client, "agent1", "wrong-pw"),
        "b-unknown-user": llm_login(client, UNKNOWN, "wrong-pw"),
        "c-empty-username": llm_login(client, "", "wrong-pw"),
    }
    replies, medians = await timed(calls)
    print("C26 /llm/login medians (ms):", {k: round(v * 1000, 1) for k, v in medians.items()})
    first = replies["a-known-wrong-password"][0]
    assert first.status == 401
    assert first.headers["www-authenticate"].startswith('Basic realm="')
    # Identical status, body, header names and values, on every call of every variant.
    for name, got in replies.items():
        assert all(r == first for r in got), name
    assert_close(medians, "a-known-wrong-password", "b-unknown-user")
    assert_close(medians, "a-known-wrong-password", "c-empty-username")


def _normalised(r: Reply, username: str) -> tuple[int, str, frozenset[str]]:
    # The form echoes the username back (escaped) so the person can retype only the password.
    body = r.body.replace(f'value="{html.escape(username, quote=True)}"', 'value="<USER>"')
    return r.status, body, frozenset(r.headers)


FORM_SHAPES: dict[str, Callable[[str], list[tuple[str, str]]]] = {
    "wrong-password": lambda u: [("username", u), ("password", "wrong-pw")],
    "password-missing": lambda u: [("username", u)],
    "password-twice": lambda u: [("username", u), ("password", "web1-pw"), ("password", "web1-pw")],
}


async def test_form_login_same_page_for_every_failure(client: Client) -> None:
    got = {
        (user, shape): _normalised(await form_login(client, fields(user))(), user)
        for user in ("web1", UNKNOWN) for shape, fields in FORM_SHAPES.items()
    }
    reference = got[("web1", "wrong-password")]
    assert reference[0] == 401
    assert "Invalid username or password." in reference[1]
    for key, value in got.items():
        assert value == reference, key


async def test_form_login_timing(client: Client) -> None:
    calls = {
        "known-wrong-password": form_login(client, FORM_SHAPES["wrong-password"]("web1")),
        "unknown-user": form_login(client, FORM_SHAPES["wrong-password"](UNKNOWN)),
    }
    replies, medians = await timed(calls)
    print("C26 /login medians (ms):", {k: round(v * 1000, 1) for k, v in medians.items()})
    assert {r.status for rs in replies.values() for r in rs} == {401}
    assert_close(medians, "known-wrong-password", "unknown-user")
