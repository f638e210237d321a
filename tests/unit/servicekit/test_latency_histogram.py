"""The request-latency histogram: the exposition prometheus_client's own Histogram gives."""

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from servicekit.observability import BUCKETS, RequestContext, request_histogram

OBSERVATIONS = [0.0004, 0.001, 0.0011, 0.0025, 0.07, 0.1, 4.9, 5.0, 7.5, 0.0, 0.02]


def exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return sorted(line for line in lines if not line.startswith("#") and "_created" not in line)


def test_buckets_counts_and_sums_are_prometheus_clients_own():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = request_histogram(ours, "t")
    reference = Histogram(
        "t_request_duration_seconds",
        "doc",
        ["method", "route", "status"],
        registry=theirs,
        buckets=BUCKETS,
    )
    for seconds in OBSERVATIONS:  # bounds themselves included: `le` means "at most"
        histogram.observe("GET", "/users/me", "2xx", seconds)
        reference.labels("GET", "/users/me", "2xx").observe(seconds)
    histogram.observe("POST", "/token", "4xx", 0.003)
    reference.labels("POST", "/token", "4xx").observe(0.003)
    assert exposition(ours) == exposition(theirs)


async def test_a_client_choosing_methods_cannot_choose_series():
    registry = CollectorRegistry()
    histogram = request_histogram(registry, "t")

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    context = RequestContext(app, histogram)
    for number in range(500):
        scope = {"type": "http", "method": f"M{number}", "headers": [], "path": "/"}
        await context(scope, receive, send)
    text = generate_latest(registry).decode()
    assert (
        't_request_duration_seconds_count{method="other",route="unmatched",status="4xx"} 500.0'
        in text
    )
    assert text.count("_count{") == 1
