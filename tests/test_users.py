"""users.py and passwords.py: hashes only, precise errors, constant-cost checks."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest

from llmsec_aio.errors import ConfigError
from llmsec_aio.passwords import check_password, dummy_hash, hash_password
from llmsec_aio.users import load_users, read_entries, write_entries
from tests.support.deployment import hash_pw

ROLES = {"user", "admin"}


def test_load_users(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write_entries(path, {"alice": {"role": "user", "hash": hash_pw("pw")},
                         "bob": {"role": "admin", "hash": hash_pw("pw"), "disabled": True}})
    store = load_users(path, ROLES)
    alice, bob = store.get("alice"), store.get("bob")
    assert alice is not None and alice.role == "user" and not alice.disabled
    assert bob is not None and bob.disabled
    assert (path.stat().st_mode & 0o777) == 0o600


def test_every_problem_is_reported_and_no_secret_is_echoed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("users:\n  alice:\n    role: user\n    hash: hunter2\n"
                    "  'a:b':\n    role: user\n    hash: x\n"
                    "  carol:\n    role: pilot\n    hash: " + hash_pw("pw") + "\n    extra: 1\n")
    with pytest.raises(ConfigError) as info:
        load_users(path, ROLES)
    text = str(info.value)
    assert f"{path}:4: users.alice.hash: expected a bcrypt hash ($2b$...), found a value that is not" in text
    assert f"{path}:5: users.a:b: expected a username of letters, digits and ._@+-" in text
    assert f"{path}:9: users.carol.role: expected one of admin, user, found string 'pilot'" in text
    assert f"{path}:11: users.carol.extra: expected role, hash or disabled" in text
    assert "hunter2" not in text


def test_missing_users_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("people: {}\n")
    with pytest.raises(ConfigError, match="users: expected a mapping of usernames, found no users"):
        load_users(path, ROLES)


def test_read_entries_of_absent_file_is_empty(tmp_path: Path) -> None:
    assert read_entries(tmp_path / "none.yaml") == {}


def test_password_checks() -> None:
    hashed = hash_password("s3c:r3t:pw", 4).encode()
    assert check_password("s3c:r3t:pw", hashed)
    assert not check_password("s3c:r3t:pX", hashed)
    # bcrypt only reads 72 bytes; a longer password is answered like a wrong one, never an error.
    long_hashed = bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4))
    assert not check_password("a" * 73, long_hashed)
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("a" * 73, 4)


def test_dummy_hash_has_the_requested_cost() -> None:
    assert dummy_hash(5).startswith(b"$2b$05$")
    assert not check_password("", dummy_hash(4))


def test_verified_credentials_keep_no_secret_and_follow_the_hash() -> None:
    from llmsec_aio.passwords import VerifiedCredentials

    cache = VerifiedCredentials(max_entries=2)
    hashed = hash_password("pw-one", 4).encode()
    cache.remember("alice", "pw-one", hashed, until=100.0)
    assert cache.check("alice", "pw-one", hashed, now=99.0)
    assert not cache.check("alice", "pw-one", hashed, now=100.0)  # expired
    assert not cache.check("alice", "pw-two", hashed, now=50.0)
    assert not cache.check("alice", "pw-one", hash_password("pw-one", 4).encode(), now=50.0)  # new hash
    stored = repr(cache._seen)  # what a memory dump would show
    assert "pw-one" not in stored and hashed.decode() not in stored
    cache.remember("bob", "x", hashed, 100.0)
    cache.remember("carol", "y", hashed, 100.0)
    assert not cache.check("alice", "pw-one", hashed, now=50.0)  # bounded: the oldest went
