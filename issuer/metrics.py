"""Prometheus metrics of the issuer, in a registry of its own per app."""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from issuer.keys.ring import KeyRing
from servicekit.observability import request_histogram


class IssuerMetrics:
    """The counters the issuer's code increments, and the request-latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tokens_issued = Counter(
            "issuer_tokens_issued",
            "Access tokens issued, by grant type",
            ["grant"],
            registry=self.registry,
        )
        self.login_failures = Counter(
            "issuer_login_failures",
            "Failed password logins, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "issuer_token_requests_rejected",
            "Token requests turned away before any work: rate limits and the hashing bound",
            ["reason"],
            registry=self.registry,
        )
        self.jwks_requests = Counter(
            "issuer_jwks_requests",
            "JWKS requests, by response status",
            ["status"],
            registry=self.registry,
        )
        self.requests = request_histogram(self.registry, "issuer")

    def watch_keyring(self, keyring: KeyRing) -> None:
        self.registry.register(_KeyRingCollector(keyring))


class _KeyRingCollector(Collector):
    def __init__(self, keyring: KeyRing):
        self._keyring = keyring

    def collect(self) -> Iterator[CounterMetricFamily]:
        reloads = CounterMetricFamily("issuer_key_set_reloads", "Key-set changes picked up")
        reloads.add_metric([], self._keyring.generation)
        yield reloads
