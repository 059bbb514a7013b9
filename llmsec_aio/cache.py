"""The validation cache: verified claims by sha256(token), bounded, never kept past `exp`.

aiocache's memory backend holds the entries; a small dict in front of it answers the hot ones,
because an awaited aiocache `get` costs 4-10 µs against 0.1 µs for a dict lookup (measured for
issue 6), and /validate is on the path of every LLM request.
"""

from __future__ import annotations

import hashlib

from aiocache import SimpleMemoryCache

from .tokens import Claims, Clock

Entry = tuple[Claims, float]  # the claims, and when this entry stops being usable


def cache_key(token: str) -> bytes:
    # The raw token never becomes a key: a memory dump of the cache yields no credentials.
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


class ValidationCache:
    """Only successful verifications are stored, so junk tokens cannot evict anything, and a
    rejection never sticks (C15). Eviction (oldest first) costs one signature check, never a
    rejection. Entries carry their own deadline, min(exp, stored + ttl cap), checked on every
    read, so aiocache needs no per-entry timer (a timer costs ~200 bytes per token)."""

    def __init__(self, max_entries: int, ttl_cap: int, clock: Clock, front_size: int = 4096) -> None:
        self._store = SimpleMemoryCache(timeout=None)  # timeout=None: no asyncio.wait_for per call
        self._order: dict[bytes, None] = {}  # insertion order, for the entry bound
        self._front: dict[bytes, Entry] = {}
        self.front_size = min(front_size, max_entries)
        self.max_entries = max_entries
        self.ttl_cap = ttl_cap
        self.clock = clock
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._order)

    async def get(self, token: str) -> Claims | None:
        key = cache_key(token)
        entry = self._front.get(key)
        if entry is None:
            entry = await self._store.get(key)
            if entry is not None:
                self._to_front(key, entry)
        if entry is not None and entry[1] > self.clock():
            self.hits += 1
            return entry[0]
        self.misses += 1
        return None

    async def put(self, token: str, claims: Claims) -> None:
        now = self.clock()
        if claims.exp <= now:
            return
        key = cache_key(token)
        if key not in self._order and len(self._order) >= self.max_entries:
            oldest = next(iter(self._order))
            del self._order[oldest]
            self._front.pop(oldest, None)
            await self._store.delete(oldest)
        entry = (claims, min(claims.exp, now + self.ttl_cap))
        self._order[key] = None
        await self._store.set(key, entry)
        self._to_front(key, entry)

    def _to_front(self, key: bytes, entry: Entry) -> None:
        if key not in self._front and len(self._front) >= self.front_size:
            del self._front[next(iter(self._front))]
        self._front[key] = entry

    async def clear(self) -> None:
        self._order.clear()
        self._front.clear()
        await self._store.clear()
