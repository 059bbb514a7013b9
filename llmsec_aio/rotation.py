"""Carry out key lifecycle changes on disk: generate, rotate, compromise (CLI and scheduler)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import audit
from .config import Config
from .keys import Key, generate_key, load_key, load_keyring
from .keystate import KeyEntry, KeyState, load_manifest, plan_rotation, write_manifest

log = logging.getLogger(__name__)


def key_overlap(config: Config) -> int:
    """How long a retired key stays published and accepted: a token it signed just before
    retirement lives for the longest role TTL plus the leeway; verifiers may cache the JWKS
    for `jwks_max_age` more."""
    return config.max_ttl + config.leeway + config.keys.jwks_max_age


@dataclass
class Outcome:
    """What a lifecycle command changed, as lines for the operator."""

    lines: list[str] = field(default_factory=list)
    changed: bool = False
    promoted: bool = False

    def say(self, line: str) -> None:
        self.lines.append(line)
        audit.event("key_state", change=line)


def _entries(folder: Path, algorithm: str) -> tuple[list[KeyEntry], dict[str, Key]]:
    """The manifest entries (adopting a folder without one) and every listed key by file."""
    ring = load_keyring(folder, algorithm)  # refuses to act on a broken folder
    names = {p.name for p in folder.glob("*.pem")}
    entries = load_manifest(folder, names)
    if entries is None:
        entries = [KeyEntry(k.file, k.state, k.since) for k in ring.keys.values()]
    by_file = {e.file: load_key(folder / e.file) for e in entries}
    return sorted(entries, key=lambda e: e.file), by_file


def add_next_key(config: Config, alg: str, now: float) -> Key:
    """Generate a key and publish it as `next` (creating the manifest if needed)."""
    folder = config.keys.dir
    entries, _ = _entries(folder, config.keys.algorithm)
    key = generate_key(folder, alg)
    write_manifest(folder, [*entries, KeyEntry(key.file, KeyState.NEXT, now)])
    return key


def rotate(config: Config, alg: str, now: float, *, force: bool = False) -> Outcome:
    """Promote a `next` key of `alg` (made now if absent), retire the active key, drop retired
    keys past their overlap, and publish a fresh `next` key for the following rotation."""
    folder, out = config.keys.dir, Outcome()
    entries, by_file = _entries(folder, config.keys.algorithm)
    algorithms = {f: k.alg for f, k in by_file.items()}
    publish_for, overlap = config.keys.jwks_max_age, key_overlap(config)
    plan = plan_rotation(entries, algorithms, alg, now, publish_for=publish_for, overlap=overlap,
                         force=force)
    if plan.generate:
        key = generate_key(folder, alg)
        out.say(f"created {key.kid} ({alg}) as next")
        entries = [*entries, KeyEntry(key.file, KeyState.NEXT, now)]
        algorithms[key.file] = alg
        plan = plan_rotation(entries, algorithms, alg, now, publish_for=publish_for,
                             overlap=overlap, force=force)
    new_entries = plan.entries
    if plan.promoted:
        out.promoted = True
        out.say(f"{load_key(folder / plan.promoted).kid} ({alg}) is now active")
        # Publish the successor now, so the next rotation needs no waiting.
        successor = generate_key(folder, alg)
        new_entries = [*new_entries, KeyEntry(successor.file, KeyState.NEXT, now)]
        out.say(f"created {successor.kid} ({alg}) as next")
    elif plan.waiting_until is not None:
        wait = math.ceil(plan.waiting_until - now)
        out.say(f"the next {alg} key has been published for less than keys.jwks_max_age; "
                f"rotate again in {wait} s (or use --force: verifiers that cached the JWKS "
                "may reject new tokens until they refresh)")
    write_manifest(folder, new_entries)
    for file in plan.removed:
        (folder / file).unlink(missing_ok=True)
        out.say(f"removed retired key {by_file[file].kid} ({file})")
    out.changed = True
    return out


def compromise(config: Config, kid: str, now: float) -> Outcome:
    """Mark `kid` compromised: it leaves the JWKS and its tokens are refused at the next reload.
    If it was signing, another key of its algorithm takes over at once."""
    folder, out = config.keys.dir, Outcome()
    entries, by_file = _entries(folder, config.keys.algorithm)
    target = next((e for e in entries if by_file[e.file].kid == kid), None)
    if target is None:
        raise LookupError(f"no key with kid {kid!r} in {folder}")
    entries = [replace(e, state=KeyState.COMPROMISED, since=now) if e is target else e
               for e in entries]
    out.say(f"{kid} marked compromised")
    if target.state is KeyState.ACTIVE:
        alg = by_file[target.file].alg
        plan = plan_rotation(entries, {f: k.alg for f, k in by_file.items()}, alg, now,
                             publish_for=0, overlap=key_overlap(config), force=True)
        if plan.promoted:
            entries = plan.entries
            out.say(f"{by_file[plan.promoted].kid} ({alg}) is now active")
            for file in plan.removed:
                (folder / file).unlink(missing_ok=True)
        else:
            key = generate_key(folder, alg)
            entries = [*entries, KeyEntry(key.file, KeyState.ACTIVE, now)]
            out.say(f"created {key.kid} ({alg}) as the new active key")
    write_manifest(folder, entries)
    out.changed = True
    return out
