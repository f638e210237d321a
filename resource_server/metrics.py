"""Prometheus metrics of the resource server, in a registry of its own per app.

The counters are the verifier's `VerifierStats`, read at scrape time, so the hot path does
no extra bookkeeping.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from resource_server.stats import VerifierStats


class VerifierCollector(Collector):
    def __init__(self, stats: VerifierStats):
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        fetches = CounterMetricFamily(
            "rs_jwks_fetches",
            "JWKS fetches started, by cause and outcome",
            labels=["reason", "outcome"],
        )
        for (reason, outcome), count in sorted(self._stats.fetches.items()):
            fetches.add_metric([reason, outcome], count)
        yield fetches
        refresh_failures = CounterMetricFamily(
            "rs_jwks_refresh_failures", "JWKS fetches that failed (issuer down or garbage)"
        )
        refresh_failures.add_metric(
            [], sum(n for (_, outcome), n in self._stats.fetches.items() if outcome == "error")
        )
        yield refresh_failures
        failures = CounterMetricFamily(
            "rs_verification_failures", "Rejected tokens, by reason", labels=["reason"]
        )
        for reason, count in sorted(self._stats.rejections.items()):
            failures.add_metric([reason], count)
        yield failures
        cache = CounterMetricFamily(
            "rs_token_cache_lookups", "Verified-token cache lookups", labels=["result"]
        )
        cache.add_metric(["hit"], self._stats.cache_hits)
        cache.add_metric(["miss"], self._stats.cache_misses)
        yield cache


def make_registry(stats: VerifierStats) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(VerifierCollector(stats))
    return registry
