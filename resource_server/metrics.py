"""Prometheus metrics of the resource server, kept in a registry of its own per app."""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from resource_server.jwks import RemoteKeySet


class KeySetCollector(Collector):
    """Reads the key set's own counters at scrape time (no double bookkeeping)."""

    def __init__(self, key_set: RemoteKeySet):
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


def make_registry(key_set: RemoteKeySet) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(KeySetCollector(key_set))
    return registry
