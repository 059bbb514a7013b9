"""The validation cache: verified claims by sha256(token), bounded, never kept past `exp`."""

from __future__ import annotations

import hashlib
import math

from aiocache import SimpleMemoryCache

from .tokens import Claims, Clock


def cache_key(token: str) -> str:
    # The raw token never becomes a key: a memory dump of the cache yields no credentials.
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class ValidationCache:
    """aiocache's memory backend plus an insertion-ordered index that bounds the entry count.

    Only successful verifications are stored, so junk tokens cannot evict anything, and a
    rejection never sticks (C15). Eviction costs one signature check, never a rejection.
    """

    def __init__(self, max_entries: int, ttl_cap: int, clock: Clock) -> None:
        # timeout=None: aiocache otherwise wraps every call in asyncio.wait_for (~20 µs).
        self._store = SimpleMemoryCache(timeout=None)
        self._order: dict[str, None] = {}
        self.max_entries = max_entries
        self.ttl_cap = ttl_cap
        self.clock = clock
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._order)

    async def get(self, token: str) -> Claims | None:
        key = cache_key(token)
        claims: Claims | None = await self._store.get(key)
        if claims is not None and claims.exp > self.clock():
            self.hits += 1
            return claims
        self.misses += 1
        return None

    async def put(self, token: str, claims: Claims) -> None:
        remaining = claims.exp - self.clock()
        if remaining <= 0:
            return
        key = cache_key(token)
        if key not in self._order and len(self._order) >= self.max_entries:
            oldest = next(iter(self._order))
            del self._order[oldest]
            await self._store.delete(oldest)
        self._order[key] = None
        await self._store.set(key, claims, ttl=max(1, math.floor(min(self.ttl_cap, remaining))))

    async def clear(self) -> None:
        self._order.clear()
        await self._store.clear()
