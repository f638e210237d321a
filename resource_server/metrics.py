"""Prometheus metrics of the resource server, in a registry of its own per app.

Counters live where the events happen (`RemoteKeySet.fetches`, `Verifier.failures`, cache
hits and misses) and are read at scrape time, so the hot path does no extra bookkeeping.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from resource_server.jwks import RemoteKeySet
from resource_server.verify import Verifier


class VerifierCollector(Collector):
    def __init__(self, verifier: Verifier, key_set: RemoteKeySet):
        self._verifier = verifier
        self._key_set = key_set

    def collect(self) -> Iterator[CounterMetricFamily]:
        fetches = CounterMetricFamily(
            "rs_jwks_fetches",
            "JWKS fetches started, by cause and outcome",
            labels=["reason", "outcome"],
        )
        for (reason, outcome), count in sorted(self._key_set.fetches.items()):
            fetches.add_metric([reason, outcome], count)
        yield fetches
        refresh_failures = CounterMetricFamily(
            "rs_jwks_refresh_failures", "JWKS fetches that failed (issuer down or garbage)"
        )
        refresh_failures.add_metric(
            [], sum(n for (_, outcome), n in self._key_set.fetches.items() if outcome == "error")
        )
        yield refresh_failures
        failures = CounterMetricFamily(
            "rs_verification_failures", "Rejected tokens, by reason", labels=["reason"]
        )
        for reason, count in sorted(self._verifier.failures.items()):
            failures.add_metric([reason], count)
        yield failures
        cache = CounterMetricFamily(
            "rs_token_cache_lookups", "Verified-token cache lookups", labels=["result"]
        )
        cache.add_metric(["hit"], self._verifier.cache_hits)
        cache.add_metric(["miss"], self._verifier.cache_misses)
        yield cache


def make_registry(verifier: Verifier, key_set: RemoteKeySet) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(VerifierCollector(verifier, key_set))
    return registry
