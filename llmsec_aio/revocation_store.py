"""Where revocations live: an append-only local file (the embedded default) or Redis.

Both feed the in-memory RevocationList that /validate consults, so a lookup never waits on
disk or network. The file is shared by every process on the host (CLI, workers) by polling its
size; Redis is shared by every instance by publish/subscribe, with a full resync after an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .revocation import Revocation, RevocationList

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25


class StoreUnavailable(Exception):
    """A revocation could not be made durable (disk full, Redis down); it is applied locally."""


class FileRevocationStore:
    """JSON lines, one per revocation, appended with O_APPEND and fsync'd before we answer, so a
    kill -9 loses nothing acknowledged. A torn last line (crash mid-write) is skipped."""

    def __init__(self, path: Path, revoked: RevocationList) -> None:
        self.path = path
        self.revoked = revoked
        self._offset = 0
        self._inode: int | None = None

    def load(self, now: float) -> None:
        """Read the whole file; rewrite it without expired entries when they dominate."""
        self._offset, self._inode = 0, None
        lines = self._read_new()
        self.revoked.prune(now)
        if lines > 2 * max(len(self.revoked), 50):
            self._compact()

    def append(self, record: Revocation) -> None:
        """Durably add `record` (blocking: run it in a thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (record.to_json() + "\n").encode()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                # A torn line from an earlier crash or full disk must not swallow this record.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                if os.write(fd, data) != len(data):
                    raise OSError("short write")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.revoked.add(record)

    def poll(self) -> int:
        """Pick up records appended by other processes; returns how many lines were read."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return 0
        if st.st_ino != self._inode or st.st_size < self._offset:  # replaced or compacted
            self._offset = 0
        if st.st_size == self._offset:
            return 0
        return self._read_new()

    def _read_new(self) -> int:
        try:
            with self.path.open("rb") as fh:
                self._inode = os.fstat(fh.fileno()).st_ino
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return 0
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        self._offset += len(complete)
        count = 0
        for line in complete.splitlines():
            if not line.strip():
                continue
            count += 1
            try:
                self.revoked.add(Revocation.from_json(line))
            except ValueError:
                log.warning("%s: skipped a damaged line", self.path)
        return count

    def _compact(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for record in self.revoked.records():
                fh.write(record.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._offset, self._inode = self.path.stat().st_size, self.path.stat().st_ino


class RedisRevocationStore:
    """Revocations as Redis keys with a TTL until they can be forgotten, announced on a channel.

    Every instance mirrors them in memory. While Redis is down, /validate keeps using what it
    knows, new revocations apply locally and wait in `pending`; on reconnect they are written,
    and a full scan brings in what others revoked meanwhile.
    """

    CHANNEL = "llmsec:revocations"
    PREFIX = "llmsec:revoked:"

    def __init__(self, client: Any, revoked: RevocationList, clock: Callable[[], float],
                 on_state: Callable[[bool], None]) -> None:
        self.client = client  # redis.asyncio.Redis (shared with aiocache's RedisCache)
        self.revoked = revoked
        self.clock = clock
        self.on_state = on_state
        self.pending: list[Revocation] = []
        self.connected = False

    def _key(self, record: Revocation) -> str:
        return f"{self.PREFIX}{record.kind}:{record.value}"

    async def append(self, record: Revocation) -> None:
        """Apply here at once; share through Redis now, or as soon as it is back (no error:
        an outage must not turn a logout into a 5xx)."""
        self.revoked.add(record)
        try:
            await self.write(record)
        except Exception as exc:  # any redis/connection error: keep it for the reconnect
            self.pending.append(record)
            self._set_state(False)
            log.warning("redis unreachable (%s): revocation applied here, shared when it returns",
                        type(exc).__name__)

    async def write(self, record: Revocation) -> None:
        """Store and announce `record`; raises when Redis cannot be reached."""
        ttl_ms = max(1, int((record.until - self.clock()) * 1000))
        await self.client.set(self._key(record), record.to_json(), px=ttl_ms)
        await self.client.publish(self.CHANNEL, record.to_json())

    async def _resync(self) -> None:
        for record in self.pending[:]:
            await self.write(record)
            self.pending.remove(record)
        async for key in self.client.scan_iter(match=f"{self.PREFIX}*", count=500):
            value = await self.client.get(key)
            if value is not None:
                with contextlib.suppress(ValueError):
                    self.revoked.add(Revocation.from_json(value))

    def _set_state(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self.on_state(connected)

    async def run(self) -> None:
        """Subscribe, resync, and follow the channel; reconnect with backoff forever."""
        delay = 0.1
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.CHANNEL)
                await self._resync()  # after subscribing, so nothing slips between the two
                self._set_state(True)
                delay = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        with contextlib.suppress(ValueError):
                            self.revoked.add(Revocation.from_json(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.error("redis connection lost (%s); revocations known so far stay in force",
                              type(exc).__name__)
                self._set_state(False)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
