"""Run wrk with bench/lua/bench.lua and parse the JSON line its done() prints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "bench.lua"
MARKER = "BENCH_JSON "
MAX_DURATION = 10.0  # the bound for one measurement
STOP_POLL = 0.05


class BenchError(RuntimeError):
    """A sanity check failed or a tool misbehaved: the bench stops with a non-zero exit."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: what was sent, how much got through, and how long it took."""

    command: list[str]
    connections: int
    threads: int
    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_us: dict[str, float]
    exhausted_threads: int = 0
    overrun_requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return self.latency_us["p50"] / 1000

    @property
    def p99_ms(self) -> float:
        return self.latency_us["p99"] / 1000

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": " ".join(self.command), "connections": self.connections,
            "threads": self.threads, "requests": self.requests,
            "duration_s": round(self.duration_s, 3), "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3),
            "latency_us": self.latency_us, "errors": self.errors,
            "exhausted_threads": self.exhausted_threads,
            "overrun_requests": self.overrun_requests, **self.extra,
        }


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk not found: `make bench` installs it (apt-get install wrk)")
    return found


def threads_for(connections: int) -> int:
    """One wrk thread for a single connection, two otherwise (the machine is small)."""
    return 1 if connections < 4 else 2


def _lua_args(mode: str, options: dict[str, str]) -> list[str]:
    return [f"mode={mode}", *(f"{k}={v}" for k, v in options.items())]


def build_command(url: str, *, connections: int, duration: float, mode: str,
                  options: dict[str, str], threads: int) -> list[str]:
    seconds = max(1, round(duration))
    return [wrk_binary(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--latency", "--timeout", "10s", "-s", str(LUA_SCRIPT), url, "--",
            *_lua_args(mode, options)]


def parse_output(stdout: str, command: list[str], connections: int, threads: int) -> WrkResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise BenchError(f"wrk printed no {MARKER.strip()} line:\n{stdout}")
    data = json.loads(line[len(MARKER):])
    return WrkResult(
        command=command, connections=connections, threads=threads,
        requests=int(data["requests"]), duration_s=data["duration_us"] / 1e6,
        errors={k: int(v) for k, v in data["errors"].items()}, latency_us=data["latency_us"],
        exhausted_threads=int(data["exhausted_threads"]),
        overrun_requests=int(data["overrun_requests"]),
    )


async def _stop_when_markers(process: asyncio.subprocess.Process, stopdir: Path, threads: int) -> None:
    """SIGINT wrk (it then reports normally) once every thread has used up its tokens."""
    while process.returncode is None:
        if sum(name.startswith("done-") for name in os.listdir(stopdir)) >= threads:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            return
        await asyncio.sleep(STOP_POLL)


async def run_wrk(url: str, *, connections: int, duration: float, mode: str,
                  options: dict[str, str] | None = None, threads: int | None = None,
                  log: list[str] | None = None, allow_status_errors: bool = False,
                  cap: float = MAX_DURATION) -> WrkResult:
    """Run one wrk measurement (at most `cap` seconds; a walk ends early when its tokens are used
    up); fail unless every request got an answer below 400."""
    threads = threads or threads_for(connections)
    duration = min(duration, cap)
    options = dict(options or {})
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        if mode == "walk":
            options.setdefault("stride", str(threads))
            options["stopdir"] = tmp
        command = build_command(url, connections=connections, duration=duration, mode=mode,
                                options=options, threads=threads)
        if log is not None:
            log.append(" ".join(command))
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        watcher = asyncio.ensure_future(_stop_when_markers(process, Path(tmp), threads))
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout=duration + 30)
        finally:
            watcher.cancel()
            if process.returncode is None:
                process.kill()
                await process.wait()
    stdout = out.decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"wrk exited with {process.returncode}:\n{stdout}")
    result = parse_output(stdout, command, connections, threads)
    if result.requests == 0:
        raise BenchError(f"wrk completed no request:\n{stdout}")
    bad = {k: v for k, v in result.errors.items() if v and not (k == "status" and allow_status_errors)}
    if bad:
        raise BenchError(f"wrk saw errors {bad} on {url}:\n{stdout}")
    return result
