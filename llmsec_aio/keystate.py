"""Key lifecycle: the `keyring.yaml` manifest of key states, and rotation planning (pure).

next ──▶ active ──▶ retired ──▶ removed        (any state) ──▶ compromised
published   signs    published,     gone          dropped from the JWKS at once,
only                 verifies                      its tokens refused
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import yaml

from .errors import ConfigError, Problem
from .yamlsource import describe, load_yaml

MANIFEST = "keyring.yaml"
HEADER = (
    "# llmsec-aio key states, edited by `llmsec-aio keys rotate|compromise` (or by hand, then reload).\n"
    "# state: next (published, not signing) | active (signs; exactly one) | retired (published,\n"
    "# verifies until its tokens expire) | compromised (refused at once). `since`: when it entered it.\n"
)


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"
    COMPROMISED = "compromised"


@dataclass(frozen=True)
class KeyEntry:
    file: str
    state: KeyState
    since: float  # epoch seconds

    def to_yaml(self) -> dict[str, str]:
        stamp = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"file": self.file, "state": self.state.value, "since": stamp}


def _parse_time(value: object) -> float | None:
    if isinstance(value, datetime):  # YAML turns unquoted timestamps into datetimes
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def load_manifest(folder: Path, existing: set[str]) -> list[KeyEntry] | None:
    """The entries of `folder/keyring.yaml`, or None when there is no manifest.

    `existing` names the PEM files present, so a listed file that is missing is reported
    with its line.
    """
    path = folder / MANIFEST
    if not path.exists():
        return None
    src = load_yaml(path)
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ConfigError([src.problem("keys", "a list of key entries", describe(data))])
    problems: list[Problem] = list(src.duplicates)
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(data["keys"]):
        key = f"keys[{i}]"
        if not isinstance(item, dict):
            problems.append(src.problem(key, "a mapping with file, state and since", describe(item)))
            continue
        for extra in item.keys() - {"file", "state", "since"}:
            problems.append(src.problem(f"{key}.{extra}", "file, state or since", "an unknown key"))
        file, state, since = item.get("file"), item.get("state"), _parse_time(item.get("since"))
        ok = True
        if not isinstance(file, str) or "/" in file or not file.endswith(".pem"):
            problems.append(src.problem(f"{key}.file", "a .pem file name in the keys folder",
                                        describe(file)))
            ok = False
        elif file in seen:
            problems.append(src.problem(f"{key}.file", "each file listed once", "a repeat"))
            ok = False
        elif file not in existing:
            problems.append(src.problem(f"{key}.file", "an existing key file", f"no file {file!r}"))
            ok = False
        if state not in set(KeyState):
            problems.append(src.problem(f"{key}.state", "next, active, retired or compromised",
                                        describe(state)))
            ok = False
        if since is None:
            problems.append(src.problem(f"{key}.since", "a UTC timestamp like 2026-01-31T12:00:00Z",
                                        describe(item.get("since"))))
            ok = False
        if ok:
            assert isinstance(file, str) and isinstance(state, str) and since is not None
            seen.add(file)
            entries.append(KeyEntry(file, KeyState(state), since))
    active = [e for e in entries if e.state is KeyState.ACTIVE]
    if not problems and len(active) != 1:
        problems.append(src.problem("keys", "exactly one key in state active", f"{len(active)}"))
    if problems:
        raise ConfigError(problems)
    return entries


def write_manifest(folder: Path, entries: Sequence[KeyEntry]) -> None:
    """Atomic replace, so the file watcher never reads half a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    body = HEADER + yaml.safe_dump({"keys": [e.to_yaml() for e in entries]}, sort_keys=False)
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


@dataclass(frozen=True)
class Rotation:
    """What `keys rotate` will do: the new manifest and the files to create and delete."""

    entries: list[KeyEntry]
    generate: str | None  # algorithm of a key to create as `next` (its entry is added by the caller)
    promoted: str | None  # file that became active
    removed: list[str]
    waiting_until: float | None  # a next key published too recently to sign yet


def plan_rotation(entries: Sequence[KeyEntry], algorithms: dict[str, str], alg: str, now: float,
                  *, publish_for: float, overlap: float, force: bool = False) -> Rotation:
    """Move states along: drop retired keys past `overlap`, promote a `next` key of `alg`
    that has been published for `publish_for` seconds (the JWKS max-age), retire the active one.

    `algorithms` maps file -> algorithm. When no `next` key of `alg` exists, one must be
    generated first; it is promoted at once only with `force` (caching verifiers may miss it).
    """
    kept = [e for e in entries if not (e.state is KeyState.RETIRED and e.since + overlap <= now)]
    removed = [e.file for e in entries if e not in kept]
    candidates = [e for e in kept if e.state is KeyState.NEXT and algorithms.get(e.file) == alg]
    if not candidates:
        return Rotation(kept, generate=alg, promoted=None, removed=removed, waiting_until=None)
    chosen = min(candidates, key=lambda e: e.since)
    ready_at = chosen.since + publish_for
    if ready_at > now and not force:
        return Rotation(kept, generate=None, promoted=None, removed=removed, waiting_until=ready_at)
    rotated = []
    for e in kept:
        if e is chosen:
            rotated.append(replace(e, state=KeyState.ACTIVE, since=now))
        elif e.state is KeyState.ACTIVE:
            rotated.append(replace(e, state=KeyState.RETIRED, since=now))
        else:
            rotated.append(e)
    return Rotation(rotated, generate=None, promoted=chosen.file, removed=removed, waiting_until=None)
