"""State that outlives a request and may be shared between instances: revocations and login
counters. `cache.backend: memory` keeps them in this process (revocations also in a local file);
`cache.backend: redis` keeps them in Redis through aiocache's Redis backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiocache import Cache

from .config import Config
from .revocation import Revocation, RevocationList
from .revocation_store import POLL_SECONDS, FileRevocationStore, RedisRevocationStore, StoreUnavailable
from .throttle import LoginThrottle
from .tokens import Claims, Clock

log = logging.getLogger(__name__)

REVOCATIONS_FILE = "revocations.jsonl"
# Redis calls must fail fast during an outage: a login waits at most this long for a counter.
REDIS_TIMEOUT = 0.5


@dataclass
class SharedState:
    revoked: RevocationList
    throttle: LoginThrottle
    clock: Clock
    file_store: FileRevocationStore | None = None
    redis_store: RedisRevocationStore | None = None
    redis_up: bool | None = None  # None: no Redis configured
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def is_revoked(self, claims: Claims) -> bool:
        return self.revoked.is_revoked(claims)

    async def revoke(self, record: Revocation) -> None:
        """Apply at once in this process, then make durable and shared; raises StoreUnavailable
        (the revocation still holds here) when that last step fails."""
        self.revoked.add(record)
        if self.redis_store is not None:
            await self.redis_store.append(record)
        elif self.file_store is not None:
            await asyncio.to_thread(self.file_store.append, record)

    def revoke_token(self, claims: Claims) -> Revocation:
        return Revocation("jti", claims.jti, self.clock(), claims.exp)

    def revoke_subject(self, subject: str, keep_for: float) -> Revocation:
        now = self.clock()
        return Revocation("sub", subject, now, now + keep_for)

    def _redis_state(self, up: bool) -> None:
        if up != self.redis_up:
            (log.info if up else log.error)("redis is %s", "reachable" if up else "unreachable")
        self.redis_up = up


async def _poll_file(store: FileRevocationStore, revoked: RevocationList, clock: Clock) -> None:
    while True:
        await asyncio.sleep(POLL_SECONDS)
        try:
            await asyncio.to_thread(store.poll)
        except OSError as exc:
            log.warning("cannot read %s: %s", store.path, exc)
        revoked.prune(clock())


def redis_cache(url: str) -> Any:
    cache = Cache.from_url(url)
    cache.timeout = REDIS_TIMEOUT
    return cache


async def store_revocation(config: Config, record: Revocation) -> None:
    """Write one revocation where running servers pick it up (the CLI's path): the local file,
    which they poll, or Redis, where they are subscribed."""
    if config.cache.backend == "redis":
        cache = redis_cache(config.cache.redis_url)
        try:
            store = RedisRevocationStore(cache.client, RevocationList(), time.time, lambda up: None)
            # Unlike a server, the CLI cannot keep a revocation for later: fail loudly instead.
            try:
                await store.write(record)
            except Exception as exc:
                raise StoreUnavailable(f"redis at {config.cache.redis_url}: {type(exc).__name__}") from None
        finally:
            await cache.close()
    else:
        path = config.server.state_dir / REVOCATIONS_FILE
        await asyncio.to_thread(FileRevocationStore(path, RevocationList()).append, record)


@asynccontextmanager
async def open_shared_state(config: Config, clock: Clock) -> AsyncIterator[SharedState]:
    """Load what is known, start following changes, and stop cleanly."""
    revoked = RevocationList()
    if config.cache.backend == "redis":
        cache = redis_cache(config.cache.redis_url)
        state = SharedState(revoked, LoginThrottle(config.logins, cache, clock), clock, redis_up=False)
        state.throttle.on_state = state._redis_state
        state.redis_store = RedisRevocationStore(cache.client, revoked, clock, state._redis_state)
        # Revocations made while this instance used the embedded store must not come back to
        # life when it moves to Redis: they go out with the first connection.
        legacy = config.server.state_dir / REVOCATIONS_FILE
        if legacy.exists():
            earlier = RevocationList()
            await asyncio.to_thread(FileRevocationStore(legacy, earlier).load, clock())
            for record in earlier.records():
                revoked.add(record)
                state.redis_store.pending.append(record)
        state.tasks.append(asyncio.create_task(state.redis_store.run()))
    else:
        state = SharedState(revoked, LoginThrottle(config.logins, None, clock), clock)
        cache = state.throttle.local
        path = config.server.state_dir / REVOCATIONS_FILE
        state.file_store = FileRevocationStore(path, revoked)
        await asyncio.to_thread(state.file_store.load, clock())
        state.tasks.append(asyncio.create_task(_poll_file(state.file_store, revoked, clock)))
    try:
        yield state
    finally:
        for task in state.tasks:
            task.cancel()
        for task in state.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await cache.close()
