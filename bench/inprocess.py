"""Measurements inside one Python process: TokenService.verify against PyJWT, the /validate
handler's own time, and quantiles from the gateway's Prometheus histogram."""

from __future__ import annotations

import functools
import math
import re
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from llmsec_aio.app import create_app
from llmsec_aio.config import load_config

from .stack import token_service
from .wrk import BenchError

HISTOGRAM = "llmsec_request_duration_seconds_bucket"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---- first sight: TokenService.verify against PyJWT's bare decode ----------------------

def verify_against_pyjwt(config_path: Path, alg: str, tokens: list[str], repeat: int = 5) -> dict[str, Any]:
    """µs per validation over `tokens` (all distinct), best of `repeat` passes, both verifiers."""
    service = token_service(config_path, alg)
    key = service.keyring.signing.public
    issuer, audience = service.issuer, service.audience

    def ours() -> None:
        for token in tokens:
            service.verify(token)

    def pyjwt() -> None:
        for token in tokens:
            jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer)

    ours()  # both must accept every token before anything is timed
    pyjwt()
    best: dict[str, float] = {"verify": math.inf, "pyjwt": math.inf}
    for _ in range(repeat):  # interleaved, so drift in machine load hits both alike
        best["verify"] = min(best["verify"], timeit.timeit(ours, number=1))
        best["pyjwt"] = min(best["pyjwt"], timeit.timeit(pyjwt, number=1))
    verify_us, pyjwt_us = (best[k] / len(tokens) * 1e6 for k in ("verify", "pyjwt"))
    return {"alg": alg, "tokens": len(tokens), "repeat": repeat,
            "verify_us": round(verify_us, 2), "pyjwt_us": round(pyjwt_us, 2),
            "ratio": round(verify_us / pyjwt_us, 3)}


# ---- the /validate handler, timed in-process --------------------------------------------

def _chain(app: web.Application, handler: Handler) -> Handler:
    """The handler wrapped in the app's middlewares, as aiohttp builds it."""
    for middleware in reversed(app.middlewares):
        handler = functools.partial(middleware, handler=handler)
    return handler


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def handler_times(config_path: Path, tokens: list[str], calls: int = 20_000) -> dict[str, Any]:
    """p50/p99 of the real app's /validate (with its middlewares), cached tokens, NGINX's headers."""
    app = create_app(load_config(config_path, env={}))
    route = next(r for r in app.router.routes() if r.resource and r.resource.canonical == "/validate")
    handler = _chain(app, route.handler)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the app's startup: shared state, bcrypt executor
    try:
        async def request(token: str) -> web.Request:
            req = make_mocked_request("GET", "/validate", app=app, headers={
                "Authorization": f"Bearer {token}", "X-Original-URI": "/llm/models",
                "X-Original-Method": "GET", "X-Real-IP": "127.0.0.1"})
            # What aiohttp's Application._handle does: the real route, so middlewares that read
            # the route name (metrics) see what they see in production, not a mock.
            match = await app.router.resolve(req)
            match.add_app(app)
            match.freeze()
            req._match_info = match
            return req

        for token in tokens:  # fill the validation cache
            if (await handler(await request(token))).status != 200:
                raise BenchError("in-process /validate refused a valid token")
        samples: list[float] = []
        for i in range(calls):
            req = await request(tokens[i % len(tokens)])
            start = time.perf_counter_ns()
            resp = await handler(req)
            samples.append((time.perf_counter_ns() - start) / 1000)
            if resp.status != 200:
                raise BenchError(f"in-process /validate answered {resp.status}")
    finally:
        await runner.cleanup()
    samples.sort()
    return {"calls": calls, "tokens": len(tokens), "p50_us": round(_percentile(samples, 0.50), 2),
            "p99_us": round(_percentile(samples, 0.99), 2),
            "mean_us": round(statistics.fmean(samples), 2)}


# ---- the gateway's own histogram --------------------------------------------------------

def parse_buckets(text: str, endpoint: str = "validate") -> dict[float, float]:
    """Cumulative bucket counts by upper bound of the request-duration histogram for `endpoint`."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != HISTOGRAM:
            continue
        labels = dict(_LABEL.findall(match["labels"] or ""))
        if labels.get("endpoint") != endpoint or "le" not in labels:
            continue
        le = float(labels["le"])
        buckets[le] = buckets.get(le, 0.0) + float(match["value"])
    return buckets


def bucket_delta(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style: linear interpolation inside the bucket holding the q-th observation.
    Seconds; None without observations; the last finite bound if it falls in +Inf."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    target = q * buckets[bounds[-1]]
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= target:
            if math.isinf(bound):
                return previous_bound
            share = (target - previous_count) / (count - previous_count) if count > previous_count else 0.0
            return previous_bound + share * (bound - previous_bound)
        previous_bound, previous_count = bound, count
    return previous_bound


async def scrape(url: str) -> dict[float, float]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        if resp.status != 200:
            raise BenchError(f"{url} answered {resp.status}")
        buckets = parse_buckets(await resp.text())
    if not buckets:
        raise BenchError(f"{url} has no {HISTOGRAM}{{endpoint=\"validate\"}}")
    return buckets
