"""`python -m bench.run [--only NAME ...]`: run the figures, write bench/RESULTS.md and results.json."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report
from .figures import CONNECTIONS, FIGURES, Bench, loadavg
from .floor_app import uvloop_available
from .stack import CLK_TCK
from .wrk import wrk_binary

OUT = Path(__file__).resolve().parent
DEFAULT_DURATION = 5.0


def _first_line(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _uncommitted(folder: str) -> bool:
    result = subprocess.run(["git", "-C", str(OUT.parent), "status", "--porcelain", "--", folder],
                            capture_output=True, text=True, check=False)
    return bool(result.stdout.strip())


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine() -> dict[str, Any]:
    from tests.support.nginx import nginx_binary

    return {"cores": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release(),
            "python": platform.python_version(), "nginx": _first_line([nginx_binary(), "-v"]),
            "wrk": _first_line([wrk_binary(), "-v"]).split(" Copyright")[0],
            "git": _first_line(["git", "-C", str(OUT.parent), "rev-parse", "--short", "HEAD"]),
            "llmsec_aio_uncommitted": _uncommitted("llmsec_aio"),
            "event_loop": "uvloop" if uvloop_available() else "asyncio",
            "loadavg_start": loadavg()}


def busy_cpu_seconds() -> float:
    """Non-idle CPU time of the whole machine since boot (/proc/stat), all cores together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    """This process and its waited-for children (gateways, nginx, wrk, the token minters)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


async def run_figures(bench: Bench, names: list[str]) -> tuple[dict[str, Any], bool]:
    """Every figure in turn; a failure is recorded and the others still run."""
    figures: dict[str, Any] = {}
    ok = True
    for name in names:
        print(f"== {name}", flush=True)
        started, load = time.monotonic(), loadavg()
        busy, own = busy_cpu_seconds(), own_cpu_seconds()
        try:
            data = await FIGURES[name](bench)
        except Exception as exc:  # recorded and reported; the exit code says so
            ok = False
            data = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            print(f"!! {name} failed: {data['error']}", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - started
        # Every process a figure starts is stopped and reaped by its end, so its CPU time is in
        # RUSAGE_CHILDREN by now; the rest of the machine's busy time is someone else's.
        foreign = max(0.0, (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own))
        data["meta"] = {"elapsed_s": round(elapsed, 1), "loadavg_before": load, "loadavg_after": loadavg(),
                        "foreign_cpu_s": round(foreign, 1),
                        "foreign_cpu_share": round(foreign / (elapsed * (os.cpu_count() or 1)), 3)}
        figures[name] = data
    return figures, ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(FIGURES), metavar="NAME",
                        help=f"run only this figure (repeatable): {', '.join(FIGURES)}")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                        help="seconds per wrk measurement (at most 10)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for RESULTS.md and results.json")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 10:
        parser.error("--duration must be from 1 to 10 seconds")
    return args


async def main_async(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM unwinds like Ctrl-C: every figure stops what it started
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    names = args.only or list(FIGURES)
    workdir = Path(tempfile.mkdtemp(prefix="llmsec-bench-"))
    info = machine()
    bench = Bench(workdir=workdir, duration=args.duration)
    try:
        figures, ok = await run_figures(bench, names)
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info["loadavg_end"] = loadavg()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": info,
        "invocation": " ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
        "settings": {"duration_s": args.duration, "connections": list(CONNECTIONS), "figures": names},
        "figures": figures, "notes": bench.notes, "commands": bench.commands,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    report.write(results, args.out)
    print(report.render_markdown(results).split("## Details")[0])
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results.json'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: the processes started were stopped; no results written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
