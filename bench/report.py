"""Targets of the issue checked against the figures; bench/RESULTS.md and bench/results.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Figures = dict[str, Any]

MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"


@dataclass(frozen=True)
class Target:
    figure: str
    value: str
    target: str
    status: str
    note: str = ""


def _status(ok: bool) -> str:
    return MET if ok else MISSED


def _ok(figures: Figures, *names: str) -> str | None:
    """Why a target cannot be computed (a figure not run or failed), else None."""
    for name in names:
        data = figures.get(name)
        if data is None:
            return f"{name} not run"
        if "error" in data:
            return f"{name} failed"
    return None


def _run(figures: Figures, name: str, connections: str) -> dict[str, Any]:
    run: dict[str, Any] = figures[name]["runs"][connections]
    return run


def _missing(figure: str, target: str, why: str) -> Target:
    return Target(figure, "-", target, NOT_MEASURED, why)


def cached_vs_floor(f: Figures) -> Target:
    name, goal = "Cached validation through nginx, c=64", ">= 0.95x Floor A"
    if why := _ok(f, "cached", "floor_a"):
        return _missing(name, goal, why)
    rps, floor = _run(f, "cached", "64")["rps"], _run(f, "floor_a", "64")["rps"]
    return Target(name, f"{rps:,.0f} req/s = {rps / floor:.2f}x Floor A ({floor:,.0f} req/s)", goal,
                  _status(rps >= 0.95 * floor))


def p99_single_connection(f: Figures) -> Target:
    name, goal = "Cached validation through nginx, p99 at c=1", "<= 0.3 ms"
    if why := _ok(f, "cached"):
        return _missing(name, goal, why)
    run = _run(f, "cached", "1")
    return Target(name, f"{run['p99_ms']:.3f} ms (p50 {run['p50_ms']:.3f} ms)", goal,
                  _status(run["p99_ms"] <= 0.3))


def handler_p99(f: Figures) -> Target:
    name, goal = "In-process /validate handler time p99 (cached)", "<= 50 µs"
    if why := _ok(f, "handler_time"):
        return _missing(name, goal, why)
    data = f["handler_time"]
    local = data["in_process"]
    local_text = f"in-process timing: p50 {local['p50_us']} µs, p99 {local['p99_us']} µs"
    runs = data.get("histogram", {}).get("runs")
    if not runs:
        return Target(name, f"{local['p99_us']} µs (p50 {local['p50_us']} µs)", goal,
                      _status(local["p99_us"] <= 50), "in-process timing (no histogram available)")
    worst = max(r["p99_us"] for r in runs.values())
    value = ", ".join(f"c={c}: p50 {r['p50_us']} µs, p99 {r['p99_us']} µs" for c, r in runs.items())
    return Target(name, value, goal, _status(worst <= 50),
                  f"the gateway's histogram through nginx; {local_text}")


def first_sight(alg: str) -> Callable[[Figures], Target]:
    def check(f: Figures) -> Target:
        name, goal = f"First sight in-process, {alg}: TokenService.verify vs PyJWT", "<= 1.0x PyJWT"
        if why := _ok(f, "first_sight"):
            return _missing(name, goal, why)
        data = f["first_sight"]["algs"][alg]
        local, run = data["in_process"], data["nginx_c16"]
        return Target(name, f"{local['verify_us']} µs vs {local['pyjwt_us']} µs = {local['ratio']:.2f}x",
                      goal, _status(local["ratio"] <= 1.0),
                      f"through nginx, c=16: {run['rps']:,.0f} req/s, p99 {run['p99_ms']:.2f} ms")
    return check


def saturated(f: Figures) -> Target:
    name, goal = "Cached /validate p99 at c=4 while logins saturate", "<= 2x idle p99"
    if why := _ok(f, "logins"):
        return _missing(name, goal, why)
    data = f["logins"]
    idle, loaded = data["idle_c4"]["p99_ms"], data["during_logins_c4"]["p99_ms"]
    rounds = "; ".join(f"{r['during_logins_c4']['p99_ms']:.3f} vs {r['idle_c4']['p99_ms']:.3f} ms"
                       for r in data["rounds"])
    return Target(name, f"{loaded:.3f} ms vs idle {idle:.3f} ms = {loaded / idle:.2f}x", goal,
                  _status(loaded <= 2 * idle),
                  f"median of {len(data['rounds'])} alternating rounds: {rounds}")


def memory(f: Figures) -> Target:
    name, goal = "Memory per cached token (100,000 tokens)", "<= 1 KB"
    if why := _ok(f, "memory"):
        return _missing(name, goal, why)
    data = f["memory"]
    grown = (data["rss_after"] - data["rss_before"]) / 2**20
    return Target(name, f"{data['bytes_per_token']:,.0f} B/token (RSS +{grown:.1f} MiB)", goal,
                  _status(data["bytes_per_token"] <= 1024))


def workers(f: Figures) -> Target:
    name, goal = "2 workers vs 1, direct /validate, c=64", ">= 1.6x"
    if why := _ok(f, "workers"):
        return _missing(name, goal, why)
    data = f["workers"]
    one = data["1"]
    cpu = f"CPU/request: 1 worker {one['cpu_us_per_request']} µs"
    if "2" not in data:
        return _missing(name, goal,
                        f"--workers not accepted; 1 worker: {one['wrk']['rps']:,.0f} req/s; {cpu}")
    two = data["2"]
    ratio = two["wrk"]["rps"] / one["wrk"]["rps"]
    note = (f"{cpu}, 2 workers {two['cpu_us_per_request']} µs; the gateway got {one['cores_used']} and "
            f"{two['cores_used']} of {data['cores']} cores, wrk and the rest of the machine the others")
    return Target(name, f"{two['wrk']['rps']:,.0f} vs {one['wrk']['rps']:,.0f} req/s = {ratio:.2f}x", goal,
                  _status(ratio >= 1.6), note)


def repeat_logins(f: Figures) -> Target:
    name, goal = "Repeat agent logins at cost 12 (verified-credential cache on)", ">= 500/s"
    if why := _ok(f, "repeat_logins"):
        return _missing(name, goal, why)
    data = f["repeat_logins"]
    off = data["off"]["wrk"]["rps"]
    if "wrk" not in data["on"]:
        return _missing(name, goal, f"cache unavailable; off: {off:,.1f}/s")
    on = data["on"]["wrk"]["rps"]
    return Target(name, f"{on:,.0f}/s (cache off: {off:,.1f}/s)", goal, _status(on >= 500))


def microcache(f: Figures) -> Target:
    name, goal = "NGINX decision micro-cache, c=64", ">= 3x Floor A"
    if why := _ok(f, "microcache", "floor_a"):
        return _missing(name, goal, why)
    rps, floor = _run(f, "microcache", "64")["rps"], _run(f, "floor_a", "64")["rps"]
    return Target(name, f"{rps:,.0f} req/s = {rps / floor:.2f}x Floor A", goal, _status(rps >= 3 * floor))


TARGETS: list[Callable[[Figures], Target]] = [
    cached_vs_floor, p99_single_connection, handler_p99, first_sight("EdDSA"), first_sight("RS256"),
    saturated, memory, workers, repeat_logins, microcache,
]


def evaluate(figures: Figures) -> list[Target]:
    return [check(figures) for check in TARGETS]


# ---- RESULTS.md --------------------------------------------------------------------------

def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _runs_table(title: str, runs: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"**{title}**", "", _row(["connections", "req/s", "p50 ms", "p99 ms", "requests"]),
             _row(["---:"] * 5)]
    for connections, run in runs.items():
        lines.append(_row([connections, f"{run['rps']:,.0f}", f"{run['p50_ms']:.3f}",
                           f"{run['p99_ms']:.3f}", f"{run['requests']:,}"]))
    return [*lines, ""]


def _details(figures: Figures) -> list[str]:
    lines: list[str] = []
    labels = {"floor_a": "Floor A: auth_request to a trivial aiohttp app",
              "floor_b": "Floor B: nginx answers the subrequest (return 204)",
              "cached": "Cached validation through nginx (100 rotating tokens)",
              "microcache": "NGINX decision micro-cache"}
    for name, title in labels.items():
        data = figures.get(name)
        if data and "runs" in data:
            lines += _runs_table(title, data["runs"])
    first = figures.get("first_sight")
    if first and "error" not in first:
        lines += ["**First sight** (every token new, fresh gateway)", "",
                  _row(["alg", "nginx c=16 req/s", "p50 ms", "p99 ms", "verify µs", "PyJWT µs", "ratio"]),
                  _row(["---"] + ["---:"] * 6)]
        for alg, d in first["algs"].items():
            run, local = d["nginx_c16"], d["in_process"]
            lines.append(_row([alg, f"{run['rps']:,.0f}", f"{run['p50_ms']:.3f}", f"{run['p99_ms']:.3f}",
                               local["verify_us"], local["pyjwt_us"], f"{local['ratio']:.2f}"]))
        lines.append("")
    log = figures.get("logins")
    if log and "error" not in log:
        lines += ["**Logins** (bcrypt cost 12, verified-credential cache off)", "",
                  f"- /llm/login through nginx, c=8: {log['logins']['rps']:,.1f}/s "
                  f"(p50 {log['logins']['p50_ms']:.0f} ms)"]
        for i, r in enumerate(log["rounds"], 1):
            idle, loaded, flood = r["idle_c4"], r["during_logins_c4"], r["concurrent_logins"]
            lines.append(f"- round {i}: cached /validate at c=4 idle p99 {idle['p99_ms']:.3f} ms "
                         f"({idle['rps']:,.0f} req/s); while 8 connections flood /llm/login p99 "
                         f"{loaded['p99_ms']:.3f} ms ({loaded['rps']:,.0f} req/s, "
                         f"{flood['rps']:,.1f} logins/s meanwhile)")
        lines.append("")
    work = figures.get("workers")
    if work and "error" not in work:
        lines += ["**Workers** (wrk straight at /validate, c=64)", "",
                  _row(["workers", "req/s", "p99 ms", "CPU µs/request", "cores used", "processes"]),
                  _row(["---:"] * 6)]
        for count in ("1", "2"):
            if count in work:
                d = work[count]
                lines.append(_row([count, f"{d['wrk']['rps']:,.0f}", f"{d['wrk']['p99_ms']:.3f}",
                                   d["cpu_us_per_request"], d["cores_used"], d["processes"]]))
        lines.append("")
    handler = figures.get("handler_time")
    if handler and "error" not in handler:
        local = handler["in_process"]
        lines += ["**Handler time**", "",
                  f"- in-process (real app and middlewares, mocked transport), {local['calls']:,} calls: "
                  f"p50 {local['p50_us']} µs, p99 {local['p99_us']} µs, mean {local['mean_us']} µs"]
        for c, run in handler.get("histogram", {}).get("runs", {}).items():
            lines.append(f"- gateway histogram during a c={c} run through nginx "
                         f"({run['observations']:,.0f} observations): p50 {run['p50_us']} µs, "
                         f"p99 {run['p99_us']} µs")
        lines.append("")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# llmsec-aio benchmark results", "",
        f"Generated {results['generated_at']} by `make bench` (`python -m bench.run`); raw numbers, "
        "every command and the machine in `bench/results.json`.", "",
        f"Machine: {machine['cores']} cores, {machine['cpu']}; {machine['nginx']}, {machine['wrk']}, "
        f"Python {machine['python']}, event loop {machine['event_loop']} (gateway and Floor A alike), "
        f"llmsec-aio at {machine['git']}"
        f"{' plus uncommitted changes' if machine['llmsec_aio_uncommitted'] else ''}. "
        "wrk, nginx and the gateway share these cores. Load average "
        f"{machine['loadavg_start']} at the start, {machine['loadavg_end']} at the end.", "",
        _row(["figure", "measured", "target", "status"]), _row(["---", "---", "---", "---"]),
    ]
    for t in results["targets"]:
        status = f"**{t['status']}**" if t["status"] == MISSED else t["status"]
        note = f" ({t['note']})" if t["note"] else ""
        lines.append(_row([t["figure"], t["value"] + note, t["target"], status]))
    lines += ["", "## Details", "", *_details(results["figures"])]
    failed = {k: v["error"] for k, v in results["figures"].items() if "error" in v}
    if failed:
        lines += ["## Failed figures", ""] + [f"- {k}: {v.splitlines()[0]}" for k, v in failed.items()] + [""]
    lines += ["## Other load on the machine", "",
              "CPU used by processes outside the bench while each figure ran (all cores together; "
              "the machine has " f"{machine['cores']} cores):", "",
              _row(["figure", "seconds", "foreign CPU-seconds", "share of the machine"]),
              _row(["---", "---:", "---:", "---:"])]
    for name, data in results["figures"].items():
        meta = data.get("meta", {})
        if "foreign_cpu_s" in meta:
            lines.append(_row([name, meta["elapsed_s"], meta["foreign_cpu_s"],
                               f"{meta['foreign_cpu_share']:.0%}"]))
    lines.append("")
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path) -> None:
    results["targets"] = [asdict(t) for t in evaluate(results["figures"])]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "RESULTS.md").write_text(render_markdown(results))
