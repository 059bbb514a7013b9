"""config.py: defaults, every problem reported at once with file, line and key, env overrides."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmsec_aio.config import DEFAULT_ROLES, load_config
from llmsec_aio.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.problems


def test_empty_file_gives_the_embedded_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 9000)
    assert config.keys.algorithm == "EdDSA" and config.keys.dir == tmp_path / "keys"
    assert config.credentials.file == tmp_path / "credentials.yaml"
    assert (config.cookie.name, config.cookie.secure, config.cookie.samesite) == ("auth_token", True, "Lax")
    assert config.roles == DEFAULT_ROLES


def test_committed_config_matches_the_defaults(tmp_path: Path) -> None:
    committed = load_config(REPO_CONFIG, env={})
    defaults = load_config(write(tmp_path, ""), env={})
    assert committed.roles == defaults.roles
    assert replace(committed.server, state_dir=defaults.server.state_dir) == defaults.server
    assert committed.server.state_dir == REPO_CONFIG.parent / "state"
    assert replace(committed.keys, dir=defaults.keys.dir) == defaults.keys
    assert committed.cache == defaults.cache
    assert committed.cookie == defaults.cookie and committed.leeway == defaults.leeway
    assert committed.logins == defaults.logins
    assert [r.name for r in committed.policy.rules] == [r.name for r in defaults.policy.rules]
    assert [(r.roles, r.methods, [p.source for p in r.paths]) for r in committed.policy.rules] == [
        (r.roles, r.methods, [p.source for p in r.paths]) for r in defaults.policy.rules]


def test_default_role_lifetimes() -> None:
    expected = {"agent_reasoning": ("AGNR", 120), "agent_fast": ("AGNF", 60), "agi": ("AGIA", 1800),
                "user": ("USRS", 900), "monitoring": ("MNTR", 1200), "admin": ("ADMN", 3600)}
    assert {n: (r.prefix, r.ttl) for n, r in DEFAULT_ROLES.items()} == expected
    assert DEFAULT_ROLES["admin"].login == {"basic", "form"}


def test_every_problem_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: eighty\nleeway: -1\nkeys:\n  algorithm: HS256\nbogus: 1\n")
    found = problems(path)
    assert found == [
        f"{path}:2: server.port: expected a port from 0 to 65535, found string 'eighty'",
        f"{path}:3: leeway: expected seconds from 0 to 120, found number -1",
        f"{path}:5: keys.algorithm: expected EdDSA or RS256, found string 'HS256'",
        f"{path}:6: bogus: expected a known key, found an unknown key",
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: [9000\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:") and "(syntax): expected valid YAML" in problem


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "leeway: 5\nleeway: 6\n")
    assert problems(path) == [f"{path}:2: leeway: expected a key written once, found a duplicate"]


def test_roles_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "roles:\n  a:\n    prefix: ab\n    ttl: 0\n    login: [sso]\n"
                           "  b: {prefix: XXXX, ttl: 5}\n  c: {prefix: XXXX, ttl: 5, login: [form]}\n")
    found = problems(path)
    assert f"{path}:3: roles.a.prefix: expected 4 capital letters, found string 'ab'" in found
    assert f"{path}:4: roles.a.ttl: expected seconds from 1 to 86400, found number 0" in found
    assert any("roles.a.login: expected a non-empty list of basic and form" in p for p in found)
    assert f"{path}:6: roles.b.login: expected a value, found nothing" in found
    assert any("roles.c.prefix: expected a prefix used by one role" in p for p in found)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "keys: {dir: ../elsewhere}\ncredentials: {file: sub/creds.yaml}\n")
    config = load_config(path, env={})
    assert config.keys.dir == tmp_path / "../elsewhere"
    assert config.credentials.file == tmp_path / "sub/creds.yaml"


def test_environment_overrides_host_port_and_paths(tmp_path: Path) -> None:
    env = {"LLMSEC_HOST": "0.0.0.0", "LLMSEC_PORT": "9100",  # noqa: S104 - the override is tested
           "LLMSEC_KEYS_DIR": "/srv/keys", "LLMSEC_CREDENTIALS": "/srv/creds.yaml"}
    config = load_config(write(tmp_path, "server: {port: 1}\n"), env=env)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9100)  # noqa: S104
    assert config.keys.dir == Path("/srv/keys") and config.credentials.file == Path("/srv/creds.yaml")
    assert problems(write(tmp_path, ""), env={"LLMSEC_PORT": "x"}) == [
        "environment: LLMSEC_PORT: expected a port number, found string 'x'"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: (file): expected a readable file, found no such file"]


def test_header_limit_cannot_go_below_aiohttp_default(tmp_path: Path) -> None:
    [problem] = problems(write(tmp_path, "server: {max_header_size: 1024}\n"))
    assert "server.max_header_size: expected bytes from 8190 to 1048576" in problem


def test_a_duplicate_key_does_not_hide_other_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: eighty\nleeway: 5\nbogus: 1\nleeway: 6\n")
    assert problems(path) == [
        f"{path}:2: server.port: expected a port from 0 to 65535, found string 'eighty'",
        f"{path}:4: bogus: expected a known key, found an unknown key",
        f"{path}:5: leeway: expected a key written once, found a duplicate",
    ]
