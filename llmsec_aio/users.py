"""The credentials store: usernames, roles and bcrypt hashes, loaded and saved as YAML."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import ConfigError, Problem
from .passwords import cost_of, is_bcrypt_hash
from .yamlsource import describe, load_yaml

# No ':' (Basic auth splits at the first one), no whitespace or control characters.
USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
HEADER = "# llmsec-aio credentials: usernames, roles and bcrypt hashes only. Keep this file 0600.\n"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: bytes
    disabled: bool = False


@dataclass(frozen=True)
class UserStore:
    users: Mapping[str, User]

    def get(self, name: str) -> User | None:
        return self.users.get(name)

    @property
    def max_cost(self) -> int:
        return max((cost_of(u.password_hash) for u in self.users.values()), default=12)


def load_users(path: Path, roles: Collection[str]) -> UserStore:
    """Load and check the credentials file; every problem is reported at once."""
    src = load_yaml(path)
    problems: list[Problem] = list(src.duplicates)
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        found = "no users mapping" if isinstance(data, dict) else describe(data)
        raise ConfigError([src.problem("users", "a mapping of usernames", found)])
    for extra in data.keys() - {"users"}:
        problems.append(src.problem(str(extra), "only the key users", "an unknown key"))
    users: dict[str, User] = {}
    for name, entry in data["users"].items():
        key = f"users.{name}"
        if not isinstance(name, str) or not USERNAME.fullmatch(name):
            problems.append(src.problem(key, "a username of letters, digits and ._@+-", "an invalid name"))
            continue
        if not isinstance(entry, dict):
            problems.append(src.problem(key, "a mapping with role and hash", describe(entry)))
            continue
        for extra in entry.keys() - {"role", "hash", "disabled"}:
            problems.append(src.problem(f"{key}.{extra}", "role, hash or disabled", "an unknown key"))
        role, hashed, disabled = entry.get("role"), entry.get("hash"), entry.get("disabled", False)
        ok = True
        if role not in roles:
            problems.append(src.problem(f"{key}.role", "one of " + ", ".join(sorted(roles)),
                                        describe(role)))
            ok = False
        if not isinstance(hashed, str) or not is_bcrypt_hash(hashed):
            # Never echo the value: it may be a plaintext password.
            found = "a value that is not a bcrypt hash" if hashed is not None else "nothing"
            problems.append(src.problem(f"{key}.hash", "a bcrypt hash ($2b$...)", found))
            ok = False
        if not isinstance(disabled, bool):
            problems.append(src.problem(f"{key}.disabled", "true or false", describe(disabled)))
            ok = False
        if ok:
            users[name] = User(name, str(role), str(hashed).encode("ascii"), disabled)
    if problems:
        raise ConfigError(problems)
    return UserStore(MappingProxyType(users))


def read_entries(path: Path) -> dict[str, dict[str, Any]]:
    """The raw entries of a credentials file, for the CLI to extend (empty if absent)."""
    if not path.exists():
        return {}
    data = load_yaml(path).data or {}
    users = data.get("users") if isinstance(data, dict) else None
    return dict(users) if isinstance(users, dict) else {}


def write_entries(path: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write atomically with mode 0600, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = HEADER + yaml.safe_dump({"users": {k: dict(v) for k, v in entries.items()}},
                                   sort_keys=True, allow_unicode=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
