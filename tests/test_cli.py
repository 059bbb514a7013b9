"""cli.py: first run, config check, keys, users and credentials commands."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from llmsec_aio.cli import main
from llmsec_aio.config import load_config
from llmsec_aio.keys import load_keyring
from llmsec_aio.passwords import check_password
from llmsec_aio.users import load_users


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("credentials: {bcrypt_cost: 4}\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_creates_key_and_demo_users_once(config_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--config", str(config_path), "init")
    assert code == 0
    assert "created signing key" in out and "shown only this once" in out
    config = load_config(config_path, env={})
    users = load_users(config.credentials.file, config.roles)
    assert sorted(u.role for u in users.users.values()) == sorted(config.roles)
    # Each printed password opens its account, and only the hash is on disk.
    disk = config.credentials.file.read_text()
    for line in out.splitlines()[2:]:
        name, _role, password = line.split()
        user = users.get(name)
        assert user is not None and check_password(password, user.password_hash)
        assert password not in disk
    code, out, _ = run(capsys, "--config", str(config_path), "init")
    assert code == 0 and out.endswith("exist; nothing to create\n")


def test_config_check_reports_problems_with_exit_2(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  port: x\n")
    code, _, err = run(capsys, "config", "check", "--config", str(path))
    assert code == 2
    assert f"{path}:2: server.port: expected a port from 0 to 65535" in err


def test_config_check_loads_keys_and_users(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "check", "--config", str(config_path))
    assert code == 2 and "keys.dir: expected a folder of PEM keys, found no such folder" in err
    run(capsys, "init", "--config", str(config_path))
    code, out, _ = run(capsys, "config", "check", "--config", str(config_path))
    assert (code, out.strip()) == (0, f"{config_path}: ok")


def test_keys_generate_prints_the_kid(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "generate", "--alg", "RS256", "--config", str(config_path))
    assert code == 0
    ring = load_keyring(config_path.parent / "keys", "RS256")
    assert out.strip() == ring.signing.kid
    code, out, _ = run(capsys, "keys", "list", "--config", str(config_path), )
    assert code == 2  # the configured EdDSA has no key yet: said, not crashed


def test_users_add_reads_stdin(config_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pässwörd-密码\n"))
    code, _, _ = run(capsys, "users", "add", "alice", "--role", "user", "--password-stdin",
                     "--config", str(config_path))
    assert code == 0
    config = load_config(config_path, env={})
    alice = load_users(config.credentials.file, config.roles).get("alice")
    assert alice is not None and check_password("pässwörd-密码", alice.password_hash)
    code, _, err = run(capsys, "users", "add", "a:b", "--role", "user", "--config", str(config_path))
    assert code == 2 and "invalid username" in err
    code, _, err = run(capsys, "users", "add", "bob", "--role", "pilot", "--config", str(config_path))
    assert code == 2 and "unknown role 'pilot'" in err


def test_users_import_old_env_file(config_path: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / ".env.old"
    env.write_text("# old format\nAGNR_one=pw-one\nUSRS_two='pw two'\nXXXX_three=pw\nbroken\n")
    code, out, err = run(capsys, "users", "import", str(env), "--config", str(config_path))
    assert code == 0
    assert "imported 2 users (2 skipped)" in out
    assert "no role has the prefix 'XXXX'" in err and "no '=' on the line" in err
    config = load_config(config_path, env={})
    store = load_users(config.credentials.file, config.roles)
    one, two = store.get("AGNR_one"), store.get("USRS_two")
    assert one is not None and one.role == "agent_reasoning" and check_password("pw-one", one.password_hash)
    assert two is not None and two.role == "user" and check_password("pw two", two.password_hash)
    assert "pw-one" not in config.credentials.file.read_text()


def test_credentials_generate(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "credentials", "generate", "--users-per-role", "2",
                     "--config", str(config_path))
    assert code == 0
    config = load_config(config_path, env={})
    users = load_users(config.credentials.file, config.roles).users
    assert len(users) == 2 * len(config.roles)
    assert all(name.startswith(config.roles[u.role].prefix + "-") for name, u in users.items())
