"""Prometheus metrics with one registry per app: counters and a latency histogram updated on the
request path, and gauges read from the running state at scrape time (nothing to keep in sync)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .runtime import Runtime
    from .shared import SharedState

# Fine at the low end: a cached validation takes tens of microseconds.
LATENCY_BUCKETS = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
)


class Metrics:
    def __init__(self, runtime: Runtime, shared: Callable[[], SharedState | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("llmsec_http_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("llmsec_request_duration_seconds", "Time to answer, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("llmsec_validate_decisions", "/validate answers by outcome and reason",
                                 ["outcome", "reason"], registry=r)
        self.logins = Counter("llmsec_logins", "Login attempts by method and outcome",
                              ["method", "outcome"], registry=r)
        self.bans = Counter("llmsec_login_bans", "Login bans started", registry=r)
        self.reloads = Counter("llmsec_reloads", "Reloads by outcome", ["outcome"], registry=r)
        r.register(_StateCollector(runtime, shared))
        # Children bound once: a labelled lookup per request costs more than the increment.
        self.valid = self.decisions.labels("allowed", "valid")
        self._children: dict[tuple[str, int], tuple[Histogram, Counter]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        children = self._children.get((endpoint, status))
        if children is None:  # a few dozen pairs at most: endpoints x statuses
            children = (self.latency.labels(endpoint), self.requests.labels(endpoint, str(status)))
            self._children[endpoint, status] = children
        children[0].observe(seconds)
        children[1].inc()


class _StateCollector(Collector):
    """Gauges computed from the current snapshot when Prometheus scrapes."""

    def __init__(self, runtime: Runtime, shared: Callable[[], SharedState | None]) -> None:
        self.runtime = runtime
        self.shared = shared

    def collect(self) -> Iterator[Metric]:
        snap, now = self.runtime.current, self.runtime.clock()
        signing = snap.keyring.signing
        info = GaugeMetricFamily("llmsec_signing_key_info", "The key that signs new tokens",
                                 labels=["kid", "alg"])
        info.add_metric([signing.kid, signing.alg], 1)
        yield info
        yield GaugeMetricFamily("llmsec_signing_key_age_seconds", "Age of the signing key",
                                value=max(0.0, now - signing.since))
        states = GaugeMetricFamily("llmsec_keys", "Keys by state", labels=["state"])
        counts = {"next": 0, "active": 0, "retired": 0}
        for key in snap.keyring.keys.values():
            counts[key.state.value] = counts.get(key.state.value, 0) + 1
        counts["compromised"] = len(snap.keyring.compromised)
        for state, count in counts.items():
            states.add_metric([state], count)
        yield states
        last = self.runtime.reloads[-1] if self.runtime.reloads else None
        yield GaugeMetricFamily("llmsec_last_reload_success",
                                "1 if the last reload worked (also 1 before any reload)",
                                value=1 if last is None or last.ok else 0)
        yield GaugeMetricFamily("llmsec_last_reload_timestamp_seconds",
                                "When the last reload was tried (0: none yet)",
                                value=last.at if last else 0)
        cache = self.runtime.cache
        lookups = CounterMetricFamily("llmsec_validation_cache_lookups", "Validation cache lookups",
                                      labels=["result"])
        lookups.add_metric(["hit"], cache.hits)
        lookups.add_metric(["miss"], cache.misses)
        yield lookups
        yield GaugeMetricFamily("llmsec_validation_cache_entries", "Tokens in the validation cache",
                                value=len(cache))
        shared = self.shared()
        if shared is not None:
            yield GaugeMetricFamily("llmsec_revocations", "Revocations in force on this instance",
                                    value=len(shared.revoked))
            if shared.redis_up is not None:
                yield GaugeMetricFamily("llmsec_redis_up", "1 while Redis is reachable",
                                        value=1 if shared.redis_up else 0)
