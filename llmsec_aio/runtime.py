"""The running state: one immutable Snapshot (config, keys, users, tokens) in one mutable holder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .cache import ValidationCache
from .config import Config, load_config
from .keys import KeyRing, load_keyring
from .passwords import dummy_hash
from .tokens import Clock, TokenService
from .users import UserStore, load_users

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Everything a request needs, built whole before it is swapped in."""

    config: Config
    keyring: KeyRing
    users: UserStore
    tokens: TokenService
    dummy_hash: bytes


def build_snapshot(config: Config, clock: Clock) -> Snapshot:
    """Load keys and users for `config`; raises ConfigError listing what is wrong."""
    keyring = load_keyring(config.keys.dir, config.keys.algorithm)
    users = load_users(config.credentials.file, config.roles)
    tokens = TokenService(keyring, issuer=config.issuer, audience=config.audience,
                          roles=config.roles, leeway=config.leeway, clock=clock)
    return Snapshot(config, keyring, users, tokens, dummy_hash(users.max_cost))


class Runtime:
    """The one mutable holder: handlers read `runtime.current`, a reload replaces it whole."""

    def __init__(self, snapshot: Snapshot, clock: Clock) -> None:
        self.current = snapshot
        self.clock = clock
        cache = snapshot.config.cache
        self.cache = ValidationCache(cache.max_entries, cache.ttl, clock)

    @classmethod
    def from_config(cls, config: Config, clock: Clock) -> Runtime:
        return cls(build_snapshot(config, clock), clock)

    async def reload(self, config_path: Path | None = None) -> Snapshot:
        """Build a new snapshot from the files; on any error the old one keeps serving."""
        config = load_config(config_path or self.current.config.path)
        snapshot = build_snapshot(config, self.clock)
        self.current = snapshot
        # Cached verdicts may name a removed key, user or role: re-verify from scratch.
        await self.cache.clear()
        log.info("reloaded: %d keys, %d users, signing kid %s", len(snapshot.keyring.keys),
                 len(snapshot.users.users), snapshot.keyring.signing.kid)
        return snapshot
