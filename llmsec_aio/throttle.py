"""Brute-force regulation for the logins: failures counted per (username, client) and per client
within a window; past the limit, a ban answered with 429 and Retry-After, without running bcrypt.

The counters live in an aiocache cache: the in-process memory backend by default, Redis when
instances share state. If Redis fails, counting falls back to this process's memory: logins keep
working, and regulation continues per instance until Redis returns.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiocache import SimpleMemoryCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimitConfig:
    window: int = 300  # seconds over which failures count
    max_failures: int = 5  # per username from one client address
    max_failures_per_client: int = 20  # per client address, any usernames
    ban: int = 300  # seconds a ban lasts


def _key(kind: str, *parts: str) -> str:
    # Hashed: usernames and addresses are attacker-chosen, and must not shape Redis key names.
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]
    return f"llmsec:login:{kind}:{digest}"


class LoginThrottle:
    def __init__(self, limits: LimitConfig, shared: Any | None, clock: Callable[[], float],
                 on_state: Callable[[bool], None] | None = None) -> None:
        self.limits = limits
        self.local = SimpleMemoryCache(timeout=None)
        self.shared = shared or self.local  # an aiocache cache: Redis when instances share
        self.clock = clock
        self.on_state = on_state

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run on the shared cache; on failure, on the local one (and say so once)."""
        if self.shared is not self.local:
            try:
                result = await getattr(self.shared, method)(*args, **kwargs)
            except Exception as exc:  # redis down, timeout, ...
                if self.on_state:
                    self.on_state(False)
                log.debug("login counters: shared cache failed (%s); counting locally", exc)
            else:
                if self.on_state:
                    self.on_state(True)
                return result
        return await getattr(self.local, method)(*args, **kwargs)

    def _keys(self, username: str, client: str) -> tuple[str, str]:
        return _key("user", username, client), _key("client", client)

    async def retry_after(self, username: str, client: str) -> int | None:
        """Seconds until a ban on this (username, client) or this client ends; None if not banned."""
        now = self.clock()
        for key in self._keys(username, client):
            until = await self._call("get", f"{key}:ban")
            if until is not None and float(until) > now:
                return max(1, math.ceil(float(until) - now))
        return None

    async def failed(self, username: str, client: str) -> bool:
        """Count a failure; True when it started a ban."""
        limits = self.limits
        banned = False
        pair, per_client = self._keys(username, client)
        for key, limit in ((pair, limits.max_failures), (per_client, limits.max_failures_per_client)):
            count = await self._call("increment", key, 1)
            if count == 1:
                await self._call("expire", key, limits.window)
            if count >= limit:
                await self._call("set", f"{key}:ban", self.clock() + limits.ban, ttl=limits.ban)
                await self._call("delete", key)
                banned = True
                log.warning("login ban for %d s after %d failures (%s)", limits.ban, count,
                            "username and client" if key == pair else "client")
        return banned

    async def succeeded(self, username: str, client: str) -> None:
        # Only the pair: one valid account must not wash out the client's guesses at others.
        await self._call("delete", self._keys(username, client)[0])
