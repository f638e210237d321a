"""Prometheus metrics of the issuer, in a registry of its own per app."""

from collections.abc import Iterator
from dataclasses import dataclass

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
            "Requests turned away before any work: rate limits, the hashing bound, the database",
            ["reason"],
            registry=self.registry,
        )
        # Every known reason from the start, so that a rate of them reads 0, not "no data".
        self.login_failures.labels("bad_credentials")
        for reason in ("rate_limited", "overloaded", "database_unavailable"):
            self.rejections.labels(reason)
        self.jwks_requests = JwksRequests()
        self.registry.register(_JwksCollector(self.jwks_requests))
        self.requests = request_histogram(self.registry, "issuer")

    def watch_keyring(self, keyring: KeyRing) -> None:
        self.registry.register(_KeyRingCollector(keyring))


@dataclass
class JwksRequests:
    """JWKS answers by status, counted on the event loop and read at scrape time: the JWKS
    is the issuer's busiest route, and a prometheus_client counter costs 0.6 us a request
    (a lock), two thirds of what the route adds to the cheapest one."""

    ok: int = 0
    not_modified: int = 0


class _JwksCollector(Collector):
    def __init__(self, requests: JwksRequests):
        self._requests = requests

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "issuer_jwks_requests", "JWKS requests, by response status", labels=["status"]
        )
        family.add_metric(["200"], self._requests.ok)
        family.add_metric(["304"], self._requests.not_modified)
        yield family


class _KeyRingCollector(Collector):
    def __init__(self, keyring: KeyRing):
        self._keyring = keyring

    def collect(self) -> Iterator[CounterMetricFamily]:
        reloads = CounterMetricFamily("issuer_key_set_reloads", "Key-set changes picked up")
        reloads.add_metric([], self._keyring.generation)
        yield reloads
