"""C09 (and issue 3's broken reloads): a broken config, key folder or credentials file on reload
keeps the last good state whole; the same breakage at first start fails with exit code 2."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from llmsec_aio.cli import main
from llmsec_aio.errors import ConfigError
from llmsec_aio.handlers import RUNTIME
from tests.conftest import Client, basic, login
from tests.support.deployment import Deployment, pem


def yaml_syntax_error(dep: Deployment) -> None:
    dep.config_path.write_text("server:\n  port: [9000\n")


def users_section_missing(dep: Deployment) -> None:
    dep.credentials_path.write_text("people: {}\n")


def unknown_config_key(dep: Deployment) -> None:
    dep.settings["colour"] = "blue"
    dep.write()


def key_file_missing(dep: Deployment) -> None:
    (dep.keys_dir / "keyring.yaml").write_text(
        "keys:\n  - {file: b-ed25519.pem, state: active, since: 2026-01-01T00:00:00Z}\n"
        "  - {file: nowhere.pem, state: next, since: 2026-01-01T00:00:00Z}\n")


def weak_rsa_key(dep: Deployment) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    (dep.keys_dir / "c-weak.pem").write_bytes(pem(weak))


def two_files_one_kid(dep: Deployment) -> None:
    shutil.copy(dep.keys_dir / "a-rsa.pem", dep.keys_dir / "c-same-kid.pem")


def plaintext_password(dep: Deployment) -> None:
    dep.users["web1"]["hash"] = "web1-pw"
    dep.write()


def unreadable_pem(dep: Deployment) -> None:
    # A PEM header with junk inside (built, so that no file here looks like a committed key).
    (dep.keys_dir / "b-ed25519.pem").write_text("-----BEGIN " + "PRIVATE KEY-----\nnot base64\n")


def keys_folder_missing(dep: Deployment) -> None:
    shutil.rmtree(dep.keys_dir)


def half_written_credentials(dep: Deployment) -> None:
    text = dep.credentials_path.read_text()
    dep.credentials_path.write_text(text[: len(text) // 2])


def empty_credentials(dep: Deployment) -> None:
    dep.credentials_path.write_text("")


BREAKAGES: dict[str, Callable[[Deployment], None]] = {
    "a-yaml-syntax": yaml_syntax_error,
    "b-users-missing": users_section_missing,
    "c-key-file-missing": key_file_missing,
    "d-rsa-1024": weak_rsa_key,
    "e-shared-kid": two_files_one_kid,
    "f-plaintext-password": plaintext_password,
    "unknown-key": unknown_config_key,
    "bad-pem": unreadable_pem,
    "keys-folder-missing": keys_folder_missing,
    "half-written-file": half_written_credentials,
    "empty-file-mid-write": empty_credentials,
}


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
async def test_broken_reload_keeps_the_last_good_state(
        client: Client, deployment: Deployment, breakage: Callable[[Deployment], None],
        caplog: pytest.LogCaptureFixture) -> None:
    runtime = client.app[RUNTIME]
    j0 = await (await client.get("/.well-known/jwks.json")).read()
    t0 = await login(client)
    kid0 = runtime.current.keyring.signing.kid
    good_settings, good_users = copy.deepcopy(deployment.settings), copy.deepcopy(deployment.users)

    breakage(deployment)
    with pytest.raises(ConfigError):
        await runtime.reload("test")

    assert await (await client.get("/.well-known/jwks.json")).read() == j0
    assert (await client.get("/validate", headers={"Authorization": f"Bearer {t0}"})).status == 200
    assert runtime.current.keyring.signing.kid == kid0
    await login(client)
    failure = runtime.reloads[-1]
    assert not failure.ok and failure.message
    assert "web1-pw" not in caplog.text and "web1-pw" not in failure.message  # no secret in the log

    # Repair, adding one user: the next reload takes effect whole.
    shutil.rmtree(deployment.keys_dir, ignore_errors=True)
    deployment.write_key("a-rsa.pem", deployment.rsa)
    deployment.write_key("b-ed25519.pem", deployment.ed)
    deployment.settings, deployment.users = good_settings, good_users
    deployment.add_user("newbie", "newbie-pw", "agent_fast")
    await runtime.reload("test")
    resp = await client.post("/llm/login", headers={"Authorization": basic("newbie", "newbie-pw")})
    assert resp.status == 200
    assert (await client.get("/validate", headers={"Authorization": f"Bearer {t0}"})).status == 200


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_the_same_breakage_stops_the_first_start(
        deployment: Deployment, breakage: Callable[[Deployment], None],
        capsys: pytest.CaptureFixture[str]) -> None:
    breakage(deployment)
    assert main(["--config", str(deployment.config_path), "serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmsec-aio: configuration error:") and "Traceback" not in err
    assert err.count("\n") == 1 or err.startswith("llmsec-aio: configuration error:\n")
    assert "web1-pw" not in err
