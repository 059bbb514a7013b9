"""bcrypt hashing and checking, off the event loop, with equal cost for unknown users."""

from __future__ import annotations

import asyncio
import functools
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
