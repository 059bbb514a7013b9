"""C28: after a login, `next` / `rd` may only send the browser to a local path."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Client

HOSTILE = [
    "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/%5Cevil.example", "/%09/evil.example", "/%0A/evil.example", "/ /evil.example",
    "https://evil.example", "HTTPS://evil.example", "https:evil.example", "http:/evil.example",
    "%2F%2Fevil.example",
    "https://llm.example.test.evil.example", "https://evil-llm.example.test",
    "https://llm.example.test@evil.example",
    "javascript:alert(1)", "data:text/html,x", "/../../evil",
    "/\t/evil.example", "/\n/evil.example",
]


def safe(location: str) -> bool:
    stripped = re.sub(r"[\t\n\r]", "", location)
    return (stripped.startswith("/") and not stripped.startswith(("//", "/\\"))
            and "evil" not in stripped)


@pytest.mark.parametrize("field", ["next", "rd", "rd-query"])
@pytest.mark.parametrize("target", HOSTILE)
async def test_hostile_targets_fall_back_to_root(client: Client, field: str, target: str) -> None:
    data = {"username": "web1", "password": "web1-pw"}
    params = {}
    if field == "rd-query":
        params["rd"] = target
    else:
        data[field] = target
    resp = await client.post("/login", data=data, params=params, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    assert safe(resp.headers["Location"])


@pytest.mark.parametrize("field", ["next", "rd"])
async def test_the_control_target_is_kept(client: Client, field: str) -> None:
    resp = await client.post("/login", data={"username": "web1", "password": "web1-pw", field: "/chat?x=1"},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/chat?x=1"


async def test_a_reflected_next_is_escaped(client: Client) -> None:
    resp = await client.get("/login?next=%22%3E%3Cscript%3Ex%3C%2Fscript%3E")
    body = await resp.text()
    assert resp.status == 200 and "<script" not in body
    resp = await client.get("/login?next=/chat%3Fa%3D1%26b%3D%27x%27")  # local: kept, and escaped
    assert 'value="/chat?a=1&amp;b=&#x27;x&#x27;"' in await resp.text()
