"""cache.py: verified claims only, by sha256(token), bounded, never served past exp."""

from __future__ import annotations

from llmsec_aio.cache import ValidationCache, cache_key
from llmsec_aio.tokens import Claims
from tests.support.deployment import FakeClock


def claims(exp: float, sub: str = "a") -> Claims:
    return Claims(sub=sub, role="user", jti="j", client_id=sub, kid="k", iat=exp - 60, exp=exp)


async def test_hit_until_exp_then_miss(clock: FakeClock) -> None:
    cache = ValidationCache(10, 300, clock)
    c = claims(clock.now + 60)
    await cache.put("tok", c)
    assert await cache.get("tok") == c
    clock.advance(59.9)
    assert await cache.get("tok") == c
    clock.advance(0.1)
    assert await cache.get("tok") is None
    assert (cache.hits, cache.misses) == (2, 1)


async def test_expired_claims_are_not_stored(clock: FakeClock) -> None:
    cache = ValidationCache(10, 300, clock)
    await cache.put("tok", claims(clock.now))
    assert len(cache) == 0 and await cache.get("tok") is None


async def test_bound_evicts_the_oldest_entry(clock: FakeClock) -> None:
    cache = ValidationCache(3, 300, clock)
    for i in range(4):
        await cache.put(f"t{i}", claims(clock.now + 60, sub=str(i)))
    assert len(cache) == 3
    assert await cache.get("t0") is None
    assert [(await cache.get(f"t{i}")) is not None for i in (1, 2, 3)] == [True, True, True]


async def test_keys_are_hashes_not_tokens() -> None:
    assert cache_key("abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


async def test_entries_behind_the_front_are_still_found(clock: FakeClock) -> None:
    cache = ValidationCache(10, 300, clock, front_size=2)
    for i in range(5):
        await cache.put(f"t{i}", claims(clock.now + 60, sub=str(i)))
    assert len(cache._front) == 2 and len(cache) == 5
    assert [(await cache.get(f"t{i}")) is not None for i in range(5)] == [True] * 5


async def test_the_ttl_cap_ends_an_entry_before_exp(clock: FakeClock) -> None:
    cache = ValidationCache(10, 30, clock)
    await cache.put("t", claims(clock.now + 60))
    clock.advance(29)
    assert await cache.get("t") is not None
    clock.advance(1)
    assert await cache.get("t") is None


async def test_clear_forgets_everything(clock: FakeClock) -> None:
    cache = ValidationCache(3, 300, clock)
    await cache.put("t", claims(clock.now + 60))
    await cache.clear()
    assert len(cache) == 0 and await cache.get("t") is None
