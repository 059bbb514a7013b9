"""The figures of `make bench`, one small async function each, returning raw numbers."""

from __future__ import annotations

import asyncio
import base64
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.deployment import Deployment
from tests.support.gateway import GatewayProcess
from tests.support.net import free_port

from . import inprocess
from .nginxconf import CACHE_DIR, OK_BODY, PROTECTED_PATH, Variant, bench_nginx
from .stack import (
    AGENT,
    AGENT_PASSWORD,
    LOGIN_COST,
    Keys,
    config_check,
    cpu_seconds,
    deploy,
    floor_app,
    gateway,
    mint_tokens,
    process_tree,
    rss_bytes,
    serve_accepts,
)
from .wrk import MAX_DURATION, BenchError, WrkResult, run_wrk

CONNECTIONS = (1, 16, 64)
ROTATING_TOKENS = 100
FIRST_SIGHT_EDDSA = 200_000
FIRST_SIGHT_RS256_PER_SECOND = 8_000  # RS256 signing is slow: mint what one run can use, not 200k
MEMORY_TOKENS = 100_000
MEMORY_MAX_SECONDS = 60.0  # 100,000 first-sight validations take longer than 10 s here
INPROCESS_TOKENS = 5_000
WARMUP_SECONDS = 1.0
VERIFIED_CACHE_ON = 300
LOGIN_CONNECTIONS = 8
SATURATION_ROUNDS = 3
BCRYPT_DRAIN_SECONDS = 3.0  # bcrypt jobs queued by a flood keep a core busy after wrk stops


@dataclass
class Bench:
    """What every figure shares: the work folder, the keys, the minted tokens and the log."""

    workdir: Path
    duration: float
    keys: Keys = field(default_factory=Keys.generate)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _token_files: dict[str, Path] = field(default_factory=dict)
    _template: Deployment | None = None
    _counter: int = 0

    def folder(self, name: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{self._counter:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def deployment(self, name: str, **options: Any) -> Deployment:
        return deploy(self.folder(name), self.keys, **options)

    @property
    def template(self) -> Deployment:
        """A deployment used only to mint tokens (same keys, issuer and audience as all others)."""
        if self._template is None:
            self._template = self.deployment("mint")
        return self._template

    def tokens(self, name: str) -> Path:
        """Token files, minted on first use: rotate, first-EdDSA, first-RS256, memory."""
        if name not in self._token_files:
            self._token_files[name] = self._mint(name)
        return self._token_files[name]

    def _mint(self, name: str) -> Path:
        path = self.workdir / f"tokens-{name}.txt"
        if name == "memory":
            lines = self.tokens("first-EdDSA").read_text().splitlines()[:MEMORY_TOKENS]
            path.write_text("\n".join(lines) + "\n")
            return path
        alg, count = {
            "rotate": ("EdDSA", ROTATING_TOKENS),
            "first-EdDSA": ("EdDSA", FIRST_SIGHT_EDDSA),
            "first-RS256": ("RS256", int(FIRST_SIGHT_RS256_PER_SECOND * self.duration)),
        }[name]
        return mint_tokens(self.template, alg, count, path)

    def token_list(self, name: str) -> list[str]:
        return self.tokens(name).read_text().split()

    def logs(self, folder: Path, name: str) -> Path:
        return folder / f"{name}.log"

    async def wrk(self, url: str, connections: int, mode: str, **options: Any) -> WrkResult:
        duration = options.pop("duration", self.duration)
        cap = options.pop("cap", MAX_DURATION)
        return await run_wrk(url, connections=connections, duration=duration, mode=mode,
                             options={k: str(v) for k, v in options.items()},
                             log=self.commands, cap=cap)

    async def rotate(self, url: str, connections: int, **options: Any) -> WrkResult:
        return await self.wrk(url, connections, "rotate", tokens=self.tokens("rotate"), **options)

    async def warm(self, url: str, connections: int = 16) -> None:
        await run_wrk(url, connections=connections, duration=WARMUP_SECONDS, mode="rotate",
                      options={"tokens": str(self.tokens("rotate"))})


# ---- sanity checks ---------------------------------------------------------------------

async def expect(url: str, status: int, headers: dict[str, str] | None = None, *,
                 method: str = "GET", body: str | None = None) -> str:
    """One request that must get `status` (and `body`, when given); fails the bench otherwise."""
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, headers=headers or {}, allow_redirects=False) as resp:
        text = await resp.text()
    if resp.status != status or (body is not None and text != body):
        raise BenchError(f"sanity check failed: {method} {url} with {sorted(headers or {})} answered "
                         f"{resp.status} {text[:200]!r}, expected {status}"
                         + (f" {body!r}" if body is not None else ""))
    return text


def forged(good: str, other: str) -> str:
    """`good`'s header and signature over `other`'s payload: well-formed, known kid, bad signature."""
    header, _, signature = good.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


async def check_auth_is_enforced(b: Bench, base_url: str) -> None:
    """Through the bench config, a bad or missing token gets 401 and a good one the answer."""
    good, other = b.token_list("rotate")[:2]
    url = base_url + PROTECTED_PATH
    await expect(url, 401)
    await expect(url, 401, {"Authorization": "Bearer not-a-token"})
    await expect(url, 401, {"Authorization": f"Bearer {forged(good, other)}"})
    await expect(url, 200, {"Authorization": f"Bearer {good}"}, body=OK_BODY)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def check_login(base_url: str) -> None:
    url = base_url + "/llm/login"
    await expect(url, 401, {"Authorization": basic(AGENT, "wrong-password")}, method="POST")
    await expect(url, 200, {"Authorization": basic(AGENT, AGENT_PASSWORD)}, method="POST")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ---- stacks ----------------------------------------------------------------------------

@contextmanager
def gateway_stack(b: Bench, name: str, variant: Variant = Variant.GATEWAY,
                  **options: Any) -> Iterator[tuple[GatewayProcess, str, Deployment]]:
    """A fresh gateway for a new deployment, behind the bench nginx variant; yields its URL."""
    dep = b.deployment(name, **options)
    folder = dep.root
    with ExitStack() as stack:
        gw = stack.enter_context(gateway(dep, b.logs(folder, "gateway"), b.commands))
        nginx = stack.enter_context(bench_nginx(folder, variant, gw.port))
        b.commands.append(f"nginx -p {nginx.prefix}/ -c {nginx.conf_path}")
        try:
            yield gw, nginx.base_url, dep
        except BenchError as exc:
            raise BenchError(f"{exc}\n{diagnostics(nginx.access_log_text(), gw.log_text())}") from exc


def diagnostics(access_log: str, gateway_log: str) -> str:
    """Statuses NGINX answered (from its access log) and the end of the gateway's log."""
    statuses = Counter(line.split('"')[2].split()[0] for line in access_log.splitlines()
                       if line.count('"') >= 3 and line.split('"')[2].split())
    tail = "\n".join(gateway_log.splitlines()[-15:])
    return f"nginx statuses: {dict(statuses)}\ngateway log (end):\n{tail}"


async def sweep(b: Bench, url: str) -> dict[str, Any]:
    await b.warm(url)
    return {str(c): (await b.rotate(url, c)).as_dict() for c in CONNECTIONS}


# ---- figures ---------------------------------------------------------------------------

async def floor_a(b: Bench) -> dict[str, Any]:
    """The same nginx config, auth_request answered by a trivial aiohttp app (one aiohttp hop)."""
    folder = b.folder("floor_a")
    with floor_app(b.logs(folder, "floor_app"), b.commands) as port, \
            bench_nginx(folder, Variant.GATEWAY, port) as nginx:
        url = nginx.base_url + PROTECTED_PATH
        await expect(url, 200, {"Authorization": "Bearer anything"}, body=OK_BODY)
        await expect(url, 401, {"X-Bench-Deny": "1"})  # proves the subrequest is really made
        return {"runs": await sweep(b, url)}


async def floor_b(b: Bench) -> dict[str, Any]:
    """nginx answering the auth subrequest itself (`return 204`): nginx alone."""
    folder = b.folder("floor_b")
    with bench_nginx(folder, Variant.FLOOR_B, free_port()) as nginx:
        url = nginx.base_url + PROTECTED_PATH
        await expect(url, 200, {"Authorization": "Bearer anything"}, body=OK_BODY)
        return {"runs": await sweep(b, url)}


async def cached(b: Bench) -> dict[str, Any]:
    """Valid tokens (100, rotating) through nginx at 1, 16 and 64 connections, warm cache."""
    with gateway_stack(b, "cached") as (_, base_url, _dep):
        await check_auth_is_enforced(b, base_url)
        return {"runs": await sweep(b, base_url + PROTECTED_PATH)}


async def first_sight(b: Bench) -> dict[str, Any]:
    """Every request a token never seen before, fresh gateway per algorithm; and in-process."""
    algs: dict[str, Any] = {}
    for alg in ("EdDSA", "RS256"):
        tokens = b.tokens(f"first-{alg}")
        with gateway_stack(b, f"first_sight_{alg}") as (_, base_url, _dep):
            await check_auth_is_enforced(b, base_url)  # caches 1 rotate token, none of `tokens`
            run = await b.wrk(base_url + PROTECTED_PATH, 16, "walk", tokens=tokens)
        sample = tokens.read_text().split()[:INPROCESS_TOKENS]
        algs[alg] = {"nginx_c16": run.as_dict(), "tokens_minted": len(tokens.read_text().split()),
                     "in_process": inprocess.verify_against_pyjwt(b.template.config_path, alg, sample)}
    return {"algs": algs}


async def handler_time(b: Bench) -> dict[str, Any]:
    """/validate time as the gateway's own histogram sees it (cached tokens), and in-process."""
    result: dict[str, Any] = {"in_process": await inprocess.handler_times(
        b.template.config_path, b.token_list("rotate"))}
    metrics_port = free_port()
    probe = b.deployment("metrics_probe", metrics_port=metrics_port)
    accepted, message = config_check(probe)
    if not accepted:
        result["histogram"] = {"unavailable": f"config with metrics.port refused: {message}"}
        return result
    with gateway_stack(b, "handler_time", metrics_port=metrics_port) as (_, base_url, _dep):
        await check_auth_is_enforced(b, base_url)
        url, metrics_url = base_url + PROTECTED_PATH, f"http://127.0.0.1:{metrics_port}/metrics"
        await b.warm(url)
        runs = {}
        for connections in (1, 64):
            before = await inprocess.scrape(metrics_url)
            run = await b.rotate(url, connections)
            delta = inprocess.bucket_delta(before, await inprocess.scrape(metrics_url))
            runs[str(connections)] = {"wrk": run.as_dict(), **histogram_summary(delta)}
    result["histogram"] = {"metrics_url": metrics_url, "runs": runs}
    return result


def histogram_summary(buckets: dict[float, float]) -> dict[str, Any]:
    p50, p99 = (inprocess.histogram_quantile(buckets, q) for q in (0.5, 0.99))
    return {"observations": buckets.get(float("inf"), 0.0),
            "p50_us": None if p50 is None else round(p50 * 1e6, 1),
            "p99_us": None if p99 is None else round(p99 * 1e6, 1),
            "buckets": {("+Inf" if b == float("inf") else f"{b:g}"): c for b, c in sorted(buckets.items())}}


async def logins(b: Bench) -> dict[str, Any]:
    """/llm/login per second at bcrypt cost 12 (verified-credential cache off), and the cached
    /validate p99 at 4 connections while logins saturate the gateway, against idle (rounds
    alternate and the median of each is kept, so one burst of load from elsewhere on the machine
    does not decide the ratio)."""
    options = verified_cache_option(b, 0)
    rounds: list[dict[str, Any]] = []
    with gateway_stack(b, "logins", cost=LOGIN_COST, **options) as (_, base_url, _dep):
        await check_auth_is_enforced(b, base_url)
        await check_login(base_url)
        login_url, url = base_url + "/llm/login", base_url + PROTECTED_PATH
        await b.warm(url)
        for _ in range(SATURATION_ROUNDS):
            idle = await b.rotate(url, 4)
            loaded, flood = await during_login_flood(b, login_url, b.rotate(url, 4))
            rounds.append({"idle_c4": idle.as_dict(), "during_logins_c4": loaded.as_dict(),
                           "concurrent_logins": flood.as_dict()})
            await asyncio.sleep(BCRYPT_DRAIN_SECONDS)
        rate = await login_flood(b, login_url, LOGIN_CONNECTIONS)
    medians = {key: median_run([r[key] for r in rounds]) for key in ("idle_c4", "during_logins_c4")}
    return {"cost": LOGIN_COST, "config": options, "logins": rate.as_dict(), **medians, "rounds": rounds}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median p99 (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run["p99_ms"])[(len(runs) - 1) // 2]


async def during_login_flood(b: Bench, login_url: str,
                             measurement: Awaitable[WrkResult]) -> tuple[WrkResult, WrkResult]:
    """Run `measurement` while LOGIN_CONNECTIONS connections keep /llm/login busy throughout."""
    flood = asyncio.ensure_future(login_flood(b, login_url, LOGIN_CONNECTIONS, b.duration + 2))
    try:
        await asyncio.sleep(1.0)
        measured = await measurement
    finally:
        flood_run = await flood
    return measured, flood_run


def login_flood(b: Bench, url: str, connections: int, duration: float | None = None) -> Awaitable[WrkResult]:
    return b.wrk(url, connections, "static", method="POST", auth=basic(AGENT, AGENT_PASSWORD),
                  duration=duration or b.duration)


def verified_cache_option(b: Bench, ttl: int) -> dict[str, Any]:
    """{"verified_cache_ttl": ttl} when this gateway knows the key, else {} and a note."""
    accepted, message = config_check(b.deployment("probe_verified_cache", verified_cache_ttl=ttl))
    if accepted:
        return {"verified_cache_ttl": ttl}
    b.notes.append(f"credentials.verified_cache_ttl not accepted by this gateway: {message}")
    return {}


async def memory(b: Bench) -> dict[str, Any]:
    """RSS growth of a fresh gateway after 100,000 distinct valid tokens, per token."""
    dep = b.deployment("memory")
    tokens = b.tokens("memory")
    with gateway(dep, b.logs(dep.root, "gateway"), b.commands) as gw:
        url = f"{gw.base_url}/validate"
        await b.warm(url)  # code paths and connection buffers, with 100 other tokens
        before = rss_bytes(gw.process.pid)
        run = await b.wrk(url, 32, "walk", tokens=tokens, duration=MEMORY_MAX_SECONDS,
                          cap=MEMORY_MAX_SECONDS)
        await asyncio.sleep(0.5)
        after = rss_bytes(gw.process.pid)
    if run.exhausted_threads != run.threads:
        raise BenchError(f"memory: only part of the {MEMORY_TOKENS} tokens were sent in "
                         f"{MEMORY_MAX_SECONDS} s ({run.requests} requests)")
    return {"tokens": MEMORY_TOKENS, "cache_max_entries": dep.settings["cache"]["max_entries"],
            "rss_before": before, "rss_after": after,
            "bytes_per_token": round((after - before) / MEMORY_TOKENS, 1), "wrk": run.as_dict()}


async def workers(b: Bench) -> dict[str, Any]:
    """1 against 2 gateway workers, wrk straight at /validate, 64 connections; CPU per request."""
    supported = serve_accepts("--workers")
    result: dict[str, Any] = {"workers_option": supported, "cores": os.cpu_count()}
    for count in (1, 2) if supported else (1,):
        dep = b.deployment(f"workers_{count}")
        args = ["--workers", str(count)] if count > 1 else None
        with gateway(dep, b.logs(dep.root, "gateway"), b.commands, args) as gw:
            await asyncio.sleep(1.0 if count > 1 else 0)  # let every worker bind
            url = f"{gw.base_url}/validate"
            await expect(url, 401, {"Authorization": "Bearer not-a-token"})
            await b.warm(url, 64)
            pids = process_tree(gw.process.pid)
            cpu_before = cpu_seconds(pids)
            run = await b.rotate(url, 64)
            cpu = cpu_seconds(pids) - cpu_before
        result[str(count)] = {"wrk": run.as_dict(), "processes": len(pids), "cpu_seconds": round(cpu, 3),
                              "cores_used": round(cpu / run.duration_s, 2),
                              "cpu_us_per_request": round(cpu / run.requests * 1e6, 1)}
    if not supported:
        b.notes.append("`llmsec-aio serve --workers` not accepted: only 1 worker measured")
    return result


async def repeat_logins(b: Bench) -> dict[str, Any]:
    """The same agent logging in again and again at cost 12, verified-credential cache on and off."""
    result: dict[str, Any] = {"cost": LOGIN_COST}
    for label, ttl in (("off", 0), ("on", VERIFIED_CACHE_ON)):
        options = verified_cache_option(b, ttl)
        if not options and label == "on":
            result[label] = {"unavailable": "credentials.verified_cache_ttl not accepted"}
            continue
        with gateway_stack(b, f"repeat_logins_{label}", cost=LOGIN_COST, **options) as (_, base_url, _dep):
            await check_login(base_url)  # with the cache on, this login fills it
            run = await login_flood(b, base_url + "/llm/login", 16)
        result[label] = {"config": options, "wrk": run.as_dict()}
    return result


async def microcache(b: Bench) -> dict[str, Any]:
    """The opt-in NGINX decision micro-cache (proxy_cache on the validate location, 1 s)."""
    with gateway_stack(b, "microcache", Variant.MICROCACHE) as (_, base_url, dep):
        await check_auth_is_enforced(b, base_url)
        cache_dir = dep.root / "nginx" / CACHE_DIR
        stored = cached_files(cache_dir)
        if stored < 1:
            raise BenchError(f"micro-cache: nothing stored in {cache_dir} after a valid request")
        await check_auth_is_enforced(b, base_url)  # the 401s again: they must not come from a cache
        if cached_files(cache_dir) != stored:
            raise BenchError("micro-cache: a refused request was stored")
        url = base_url + PROTECTED_PATH
        await b.warm(url)
        run = await b.rotate(url, 64)
    return {"runs": {"64": run.as_dict()}}


def cached_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


FIGURES: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {
    "floor_a": floor_a,
    "floor_b": floor_b,
    "cached": cached,
    "handler_time": handler_time,
    "first_sight": first_sight,
    "logins": logins,
    "memory": memory,
    "workers": workers,
    "repeat_logins": repeat_logins,
    "microcache": microcache,
}
