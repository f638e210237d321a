"""Request ids, logs and request-latency metrics, shared by both services.

One pure ASGI middleware (cheap on the hot path) gives every request an id, taken from a
well-formed `X-Request-ID` or made up, returned in the response and attached to every log
record; it also times the request into a Prometheus histogram by route template. Logs are
JSON lines by default, or human-readable text (`make run`). Uvicorn's access lines are logged
without their query string, so a credential sent in a URL never reaches a log.
"""

import bisect
import contextvars
import itertools
import json
import logging
import random
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.http_errors import was_logged

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
_HANDLER_MARK = "_oauth_service_handler"
_MAX_LOGGED_PATH = 256
_STATUS_CLASSES = tuple(f"{n}xx" for n in range(10))


BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Other methods are counted as one: a client choosing methods must not choose series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The method a request is counted under when it is answered as another (a HEAD as a GET).
COUNTED_METHOD = "servicekit.counted_method"


class LatencyHistogram(Collector):
    """Request latency by method, route template and status class: a Prometheus histogram.

    Counted in plain integers by the event loop and made cumulative at scrape time:
    prometheus_client's `Histogram.observe` takes a lock and costs 1.3 us, on every request.
    Observations and scrapes both run on the event loop, so nothing here needs a lock.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...] = BUCKETS):
        self._name, self._documentation = name, documentation
        self._bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, str, str], _Series] = {}  # (method, route, status class)

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series[(method, route, status)] = _Series(len(self._bounds))
        series.counts[bisect.bisect_left(self._bounds, seconds)] += 1  # le: bound >= seconds
        series.total += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            self._name, self._documentation, labels=["method", "route", "status"]
        )
        for labels, series in sorted(self._series.items()):
            cumulative = list(itertools.accumulate(series.counts))
            buckets = [(_bound(b), n) for b, n in zip(self._bounds, cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric(list(labels), buckets, sum_value=series.total)
        yield family


class _Series:
    """One label set's observations: a count per bucket (the last: above every bound) and
    their sum in seconds."""

    __slots__ = ("counts", "total")

    def __init__(self, bounds: int):
        self.counts = [0] * (bounds + 1)
        self.total = 0.0


def _bound(value: float) -> str:
    return str(float(value))


def request_histogram(registry: CollectorRegistry, prefix: str) -> LatencyHistogram:
    histogram = LatencyHistogram(
        f"{prefix}_request_duration_seconds",
        "Time to answer a request, by method, route template and status class",
    )
    registry.register(histogram)
    return histogram


class RequestContext:
    """ASGI middleware: request id in, request id out, latency observed.

    On every request's path, so kept to a few microseconds: a made-up id is 128 random bits
    in hex from the process's PRNG (an id needs to be unique, not secret: no UUID object, no
    system call), and the latency goes into a histogram of plain counters.
    """

    def __init__(self, app: ASGIApp, histogram: LatencyHistogram):
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or f"{random.getrandbits(128):032x}"
        token = REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status = 500
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answered with a 500 and logged with this id already: raised again only so that
            # the server would log it, a second time and without the id, and drop the
            # connection. Anything else goes on to the server.
            if not (status == 500 and was_logged(exc)):
                raise
        finally:
            self._observe(scope, status, time.perf_counter() - start)
            REQUEST_ID.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        # Bounded series: route templates, known methods and status classes are finite.
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope.get(COUNTED_METHOD) or scope["method"]
        self.histogram.observe(
            method if method in METHODS else "other",
            route,
            _STATUS_CLASSES[status // 100 % 10],
            seconds,
        )


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            # Only a short, plain id is echoed into logs and headers: no log injection.
            # fullmatch: "$" would also let a trailing newline through.
            return value.decode() if _SAFE_ID.fullmatch(value) else None
    return None


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


class DropQueryString(logging.Filter):
    """Cut the query string from uvicorn's access lines: it may carry a token or a secret;
    and cut a long path short: the client chooses it, and its length.

    Uvicorn logs `'%s - "%s %s HTTP/%s" %d'` with the arguments (client address, method,
    path with query string, HTTP version, status); only the path can hold a `?`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) for a in args):
            record.args = tuple(_loggable_path(a) if isinstance(a, str) else a for a in args)
        return True


def _loggable_path(value: str) -> str:
    value = value.split("?", 1)[0]
    return value if len(value) <= _MAX_LOGGED_PATH else value[:_MAX_LOGGED_PATH] + "..."


def configure_logging(fmt: str, level: str = "INFO") -> None:
    """Send our logs, and uvicorn's, to stderr as JSON or text; idempotent (replaces its own
    handler, and takes uvicorn's loggers over: handlers on them, an operator's from
    `--log-config` included, are removed, so every line has one format and the request id)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(_RequestIdFilter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level)
    # Uvicorn's own lines (start-up, errors, access) through this handler too: one format,
    # and the request id on each access line (logged while the request's context is set).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        # `uvicorn --no-access-log` leaves its access logger with no handler and not
        # propagating; made to propagate, it had a handler again (ours), and uvicorn, which
        # asks `hasHandlers()` for each connection, wrote the access lines it was told not to.
        switched_off = name == "uvicorn.access" and not logger.handlers and not logger.propagate
        for own in list(logger.handlers):
            logger.removeHandler(own)
        logger.propagate = not switched_off
    # On the logger, not a handler, so that it holds whatever handles the lines.
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, DropQueryString) for f in access.filters):
        access.addFilter(DropQueryString())
    # httpx logs every request's URL at INFO, user information (a password) included.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
