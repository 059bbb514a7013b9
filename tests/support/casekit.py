"""Helpers shared by tests/cases: the three /validate delivery paths, log checks, role settings,
and a spy that counts key loading and file/DNS access while hostile requests are served."""

from __future__ import annotations

import builtins
import io
import logging
import os
import pathlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

import llmsec_aio.cli
import llmsec_aio.keys
import llmsec_aio.runtime
from llmsec_aio.config import DEFAULT_ROLES
from llmsec_aio.handlers import RUNTIME
from llmsec_aio.runtime import Runtime
from tests.conftest import Client

Via = Literal["bearer", "cookie", "body"]
# PUBLIC.md: Bearer header, then `Cookie: auth_token=`, then POST /validate {"token": ...}.
VIAS: tuple[Via, ...] = ("bearer", "cookie", "body")


async def validate_status(client: Client, token: str, via: Via = "bearer") -> int:
    """Send `token` to /validate the way `via` names and return the status."""
    # A cookie left in the client's jar would be merged into (and override) our Cookie header.
    client.session.cookie_jar.clear()
    if via == "bearer":
        resp = await client.get("/validate", headers={"Authorization": f"Bearer {token}"})
    elif via == "cookie":
        resp = await client.get("/validate", headers={"Cookie": f"auth_token={token}"})
    else:
        resp = await client.post("/validate", json={"token": token})
    await resp.read()
    return resp.status


async def timed_status(client: Client, token: str, via: Via = "bearer") -> tuple[int, float]:
    """(status, seconds) of one /validate request."""
    start = time.perf_counter()
    status = await validate_status(client, token, via)
    return status, time.perf_counter() - start


def error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record at ERROR or above (a logged traceback is one of them)."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


def assert_no_error_logs(caplog: pytest.LogCaptureFixture) -> None:
    errors = error_records(caplog)
    assert not errors, f"errors or tracebacks were logged: {errors}"


def roles_settings(**ttls: int) -> dict[str, dict[str, Any]]:
    """The default roles as a config.yaml `roles:` section, with some TTLs overridden."""
    return {
        name: {"prefix": role.prefix, "ttl": ttls.get(name, role.ttl), "login": sorted(role.login)}
        for name, role in DEFAULT_ROLES.items()
    }


def runtime_of(client: Client) -> Runtime:
    return client.app[RUNTIME]


@dataclass
class AccessSpy:
    """What the gateway touched while the spy was armed."""

    key_loads: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    armed: bool = False

    def arm(self) -> None:
        self.key_loads.clear()
        self.files.clear()
        self.lookups.clear()
        self.armed = True

    def disarm(self) -> None:
        self.armed = False


def spy_on_access(monkeypatch: pytest.MonkeyPatch) -> AccessSpy:
    """Count key-file loads, key-set rebuilds, file opens and DNS lookups (only while armed).

    `load_keyring` is patched where it is defined and where it was imported by name, so a
    reload through any entry point is seen; `load_key` is looked up in `keys` at call time.
    """
    spy = AccessSpy()

    def wrap(label: str, sink: list[str], real: Callable[..., Any],
             describe: Callable[..., str] | None = None) -> Callable[..., Any]:
        def spied(*args: Any, **kwargs: Any) -> Any:
            if spy.armed:
                sink.append(f"{label}({describe(*args) if describe else ''})")
            return real(*args, **kwargs)
        return spied

    def first(*args: Any) -> str:
        return str(args[0]) if args else ""

    for target in (llmsec_aio.keys, llmsec_aio.runtime, llmsec_aio.cli):
        if hasattr(target, "load_keyring"):
            monkeypatch.setattr(target, "load_keyring",
                                wrap("load_keyring", spy.key_loads, llmsec_aio.keys.load_keyring, first))
    monkeypatch.setattr(llmsec_aio.keys, "load_key",
                        wrap("load_key", spy.key_loads, llmsec_aio.keys.load_key, first))
    monkeypatch.setattr(builtins, "open", wrap("open", spy.files, builtins.open, first))
    monkeypatch.setattr(io, "open", wrap("io.open", spy.files, io.open, first))
    monkeypatch.setattr(os, "open", wrap("os.open", spy.files, os.open, first))
    for name in ("open", "read_bytes", "read_text"):
        real = getattr(pathlib.Path, name)
        monkeypatch.setattr(pathlib.Path, name, wrap(f"Path.{name}", spy.files, real, first))
    monkeypatch.setattr(socket, "getaddrinfo", wrap("getaddrinfo", spy.lookups, socket.getaddrinfo, first))
    return spy
