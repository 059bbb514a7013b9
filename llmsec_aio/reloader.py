"""Reload triggers and the state folder: file watching, the pid file, the status file, and
scheduled key rotation. Runs inside `serve`; the HTTP layer knows nothing of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError
from .keystate import MANIFEST
from .rotation import rotate
from .runtime import Runtime

log = logging.getLogger(__name__)

PID_FILE = "llmsec-aio.pid"
STATUS_FILE = "status.json"


def live_pid(pid_file: Path) -> int | None:
    """The pid written in `pid_file` if that process is alive."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def watched_files(config: Config) -> list[Path]:
    keys = config.keys.dir
    listing = [*sorted(keys.glob("*.pem")), keys / MANIFEST] if keys.is_dir() else []
    return [config.path, config.credentials.file, keys, *listing]


def fingerprint(config: Config) -> tuple[tuple[str, int, int], ...]:
    """What changes when an operator edits, adds or removes a watched file."""
    out = []
    for path in watched_files(config):
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


async def reload_quietly(runtime: Runtime, trigger: str) -> None:
    """Reload; a broken config is logged and reported by the runtime and leaves the old state."""
    with contextlib.suppress(ConfigError):
        await runtime.reload(trigger)


async def watch(runtime: Runtime, interval: float) -> None:
    """Poll the watched files; reload once per change. Polling (not inotify) also sees files
    swapped by rename, on bind mounts and in Kubernetes ConfigMaps."""
    seen = fingerprint(runtime.current.config)
    while True:
        await asyncio.sleep(interval)
        current = fingerprint(runtime.current.config)
        if current != seen:
            # A change made while this reload runs differs from `seen` and triggers the next one.
            seen = current
            await reload_quietly(runtime, "file change")


async def rotate_if_due(runtime: Runtime) -> bool:
    """Rotate (and reload) when the active key is older than `keys.rotate_every`."""
    config = runtime.current.config
    active = runtime.current.keyring.signing
    every = config.keys.rotate_every
    if not every or runtime.clock() - active.since < every:
        return False
    try:
        outcome = await asyncio.to_thread(rotate, config, active.alg, runtime.clock())
    except (ConfigError, OSError) as exc:
        log.error("scheduled key rotation failed: %s", exc)
        return False
    log.info("scheduled key rotation: %s", "; ".join(outcome.lines))
    await reload_quietly(runtime, "scheduled rotation")
    return True


async def rotate_on_schedule(runtime: Runtime) -> None:
    """`keys.rotate_every`: check a tenth as often as it asks (at most once a minute)."""
    while True:
        every = runtime.current.config.keys.rotate_every
        await asyncio.sleep(min(60.0, every / 10) if every else 60.0)
        await rotate_if_due(runtime)


def status_document(runtime: Runtime, host: str, port: int) -> dict[str, Any]:
    snap = runtime.current
    return {
        "pid": os.getpid(),
        "listening": f"http://{host}:{port}",
        "config": str(snap.config.path),
        "started": runtime.started,
        "keys": [{"kid": k.kid, "alg": k.alg, "state": k.state.value, "since": k.since, "file": k.file}
                 for k in sorted(snap.keyring.keys.values(), key=lambda k: k.file)],
        "compromised": sorted(snap.keyring.compromised),
        "users": len(snap.users.users),
        "reloads": [{"at": r.at, "ok": r.ok, "trigger": r.trigger, "message": r.message}
                    for r in runtime.reloads],
    }


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
