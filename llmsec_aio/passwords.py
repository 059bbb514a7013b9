"""bcrypt hashing and checking, off the event loop, with equal cost for unknown users."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
from concurrent.futures import Executor

import bcrypt

BCRYPT_MAX_BYTES = 72
BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def is_bcrypt_hash(value: str) -> bool:
    return BCRYPT_HASH.fullmatch(value) is not None


def cost_of(hashed: bytes) -> int:
    return int(hashed[4:6])


def hash_password(password: str, cost: int) -> str:
    data = password.encode("utf-8")
    if len(data) > BCRYPT_MAX_BYTES:
        raise ValueError(f"passwords are limited to {BCRYPT_MAX_BYTES} bytes (bcrypt)")
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds=cost)).decode("ascii")


@functools.lru_cache(maxsize=8)
def dummy_hash(cost: int) -> bytes:
    """A hash of a random secret, checked for unknown users so they cost as much as known ones."""
    return bcrypt.hashpw(secrets.token_bytes(16).hex().encode(), bcrypt.gensalt(rounds=cost))


def check_password(password: str, hashed: bytes) -> bool:
    """Constant work per call: an over-long password still runs one bcrypt round and fails."""
    data = password.encode("utf-8", "replace")
    if len(data) > BCRYPT_MAX_BYTES:
        bcrypt.checkpw(b"\0", hashed)
        return False
    return bcrypt.checkpw(data, hashed)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


async def check_password_async(executor: Executor | None, password: str, hashed: bytes) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, check_password, password, hashed)


class VerifiedCredentials:
    """Recently verified logins, so an agent that logs in every minute costs one HMAC instead
    of one bcrypt. It keeps no password and no password hash: only HMAC-SHA256 under a key made
    at random by this process, over the username, the password and the user's current bcrypt
    hash; so a changed password or a removed user never matches, and nothing in it helps an
    attacker who reads the process memory offline without the key. Off when `ttl` is 0."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: dict[str, tuple[bytes, float]] = {}  # username -> (digest, valid until)
        self.max_entries = max_entries

    def _digest(self, username: str, password: str, hashed: bytes) -> bytes:
        message = b"\0".join((username.encode(), password.encode("utf-8", "replace"), hashed))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def check(self, username: str, password: str, hashed: bytes, now: float) -> bool:
        entry = self._seen.get(username)
        if entry is None or entry[1] <= now:
            return False
        return hmac.compare_digest(entry[0], self._digest(username, password, hashed))

    def remember(self, username: str, password: str, hashed: bytes, until: float) -> None:
        self._seen.pop(username, None)
        if len(self._seen) >= self.max_entries:
            del self._seen[next(iter(self._seen))]
        self._seen[username] = (self._digest(username, password, hashed), until)
