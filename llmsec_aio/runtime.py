"""The running state: one immutable Snapshot (config, keys, users, tokens) in one mutable holder."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cache import ValidationCache
from .config import Config, load_config
from .errors import ConfigError
from .keys import KeyRing, load_keyring, unsafe_removals
from .passwords import VerifiedCredentials, dummy_hash
from .rotation import key_overlap
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


@dataclass(frozen=True)
class ReloadOutcome:
    at: float
    ok: bool
    trigger: str
    message: str


def build_snapshot(config: Config, clock: Clock) -> Snapshot:
    """Load keys and users for `config`; raises one ConfigError listing what is wrong."""
    problems: list[str] = []
    keyring = users = None
    try:
        keyring = load_keyring(config.keys.dir, config.keys.algorithm)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        users = load_users(config.credentials.file, config.roles)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if keyring is None or users is None:
        raise ConfigError(problems)
    for file in keyring.ignored:
        log.warning("%s is not listed in %s/keyring.yaml and is ignored", file, config.keys.dir)
    tokens = TokenService(keyring, issuer=config.issuer, audience=config.audience,
                          roles=config.roles, leeway=config.leeway, clock=clock)
    return Snapshot(config, keyring, users, tokens, dummy_hash(users.max_cost))


class Runtime:
    """The one mutable holder: handlers read `runtime.current`, a reload replaces it whole."""

    def __init__(self, snapshot: Snapshot, clock: Clock) -> None:
        self.current = snapshot
        self.clock = clock
        self.started = clock()
        cache = snapshot.config.cache
        self.cache = ValidationCache(cache.max_entries, cache.ttl, clock)
        self.verified = VerifiedCredentials()
        self.reloads: deque[ReloadOutcome] = deque(maxlen=20)
        self.on_reload: list[Callable[[ReloadOutcome], None]] = []  # metrics, audit

    @classmethod
    def from_config(cls, config: Config, clock: Clock) -> Runtime:
        return cls(build_snapshot(config, clock), clock)

    async def reload(self, trigger: str = "manual", config_path: Path | None = None) -> Snapshot:
        """Build a new snapshot from the files and swap it in whole; on any problem the old one
        keeps serving and ConfigError lists every problem."""
        old = self.current
        try:
            config = load_config(config_path or old.config.path)
            snapshot = build_snapshot(config, self.clock)
            overlap = max(key_overlap(config), key_overlap(old.config))
            refused = unsafe_removals(old.keyring, snapshot.keyring, self.clock(), overlap)
            if refused:
                raise ConfigError(refused)
        except ConfigError as exc:
            self._record(ReloadOutcome(self.clock(), False, trigger, str(exc)))
            log.error("reload (%s) failed, still serving the previous state:\n%s", trigger, exc)
            raise
        self.current = snapshot
        # Cached verdicts may name a removed key, user or role: re-verify from scratch.
        await self.cache.clear()
        message = (f"{len(snapshot.keyring.keys)} keys, {len(snapshot.users.users)} users, "
                   f"signing kid {snapshot.keyring.signing.kid}")
        if config.server != old.config.server:
            message += "; server.* changed and applies only after a restart"
            log.warning("server.* changed in %s: the listening address, limits, state folder and "
                        "watch interval apply only after a restart", config.path)
        self._record(ReloadOutcome(self.clock(), True, trigger, message))
        log.info("reload (%s) done: %s", trigger, message)
        return snapshot

    def _record(self, outcome: ReloadOutcome) -> None:
        self.reloads.append(outcome)
        for hook in self.on_reload:
            hook(outcome)
