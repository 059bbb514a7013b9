"""Shared fixtures: a temp deployment with two keys and the PUBLIC.md users, an injected clock,
and a pytest-aiohttp client of the real `create_app`."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pytest_aiohttp import AiohttpClient

from llmsec_aio.app import create_app, server_limits
from tests.support.deployment import Deployment, FakeClock, make_deployment
from tests.support.leaks import TEST_PASSWORDS, LeakCapture, LeakScanner
from tests.support.stub_llm import StubLLM, running_stub

Client = TestClient[Request, Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def deployment(tmp_path: Path, rsa_key: rsa.RSAPrivateKey,
               ed_key: ed25519.Ed25519PrivateKey) -> Deployment:
    return make_deployment(tmp_path, rsa_key, ed_key)


@pytest.fixture
async def stub() -> AsyncIterator[StubLLM]:
    """The stand-in LLM server (OpenAI-compatible, streams SSE) on a free loopback port."""
    async with running_stub() as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, deployment: Deployment,
                clock: FakeClock) -> MakeClient:
    """Start the real app for `deployment` (re-read from disk) on a loopback port."""

    async def start(dep: Deployment | None = None) -> Client:
        config = (dep or deployment).config()
        app: Application = create_app(config, clock=clock)
        # TestServer drops constructor kwargs; only start_server() hands the parser limits on.
        server = TestServer(app)
        await server.start_server(**server_limits(config))
        return cast(Client, await aiohttp_client(server))

    return start


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


def basic(user: str, password: str, encoding: str = "utf-8") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode(encoding)).decode()


async def login(client: Client, user: str = "agent1", password: str = "agent1-pw") -> str:
    resp = await client.post("/llm/login", headers={"Authorization": basic(user, password)})
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["token"]
    return token


async def form_login(client: Client, user: str = "web1", password: str = "web1-pw") -> str:
    resp = await client.post("/login", data={"username": user, "password": password},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    cookie = resp.cookies["auth_token"].value
    return cookie


# Loggers that do not propagate to the root logger, so the leak check listens on them too.
NON_PROPAGATING_LOGGERS = ("llmsec_aio.audit",)


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakCapture]:
    """Every record the whole run logs (DEBUG up, from every logger) and every *.log file under
    the run's basetemp (subprocess gateways, nginx) hold no password, hash, key or token."""
    capture = LeakCapture(LeakScanner(TEST_PASSWORDS))
    root = logging.getLogger()
    previous_level = root.level
    # DEBUG, so what a debug log line would leak is found too, not only what INFO shows.
    root.setLevel(logging.DEBUG)
    loggers = [root, *(logging.getLogger(name) for name in NON_PROPAGATING_LOGGERS)]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger in loggers:
            logger.removeHandler(capture)
        root.setLevel(previous_level)
    findings = capture.findings + capture.scanner.scan_files(tmp_path_factory.getbasetemp())
    assert not findings, (f"secrets in logs ({capture.records} records scanned; "
                          "tests/conftest.py::no_secrets_in_logs checks the whole run):\n"
                          + "\n".join(map(str, findings[:50])))
