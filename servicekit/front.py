"""`FrontedFastAPI`: FastAPI with a front desk for the few routes on every request's path.

A hot route (exact method and path) is answered by a plain ASGI handler before FastAPI's
middleware stack, its walk over every route and its dependency solving, which cost more than
the work those routes do. The route stays registered in FastAPI as well (for the OpenAPI
document, and for every request the front does not take), and both call the same functions,
so the answers are the same: status, headers and body.

The front takes only plain requests: a request with an `Origin` header goes the full way, so
CORS stays in one place (CORSMiddleware, installed by `allow_cors`, which makes the front's
answers say `Vary: Origin`); other methods and other paths go the full way too.
`HEAD` on the routes `answer_head` names is answered as `GET`, without the body. The app's
request context (`in_context`: request id in and out, the latency histogram by route
template) wraps both ways, outside everything else: CORS preflights and the answer to an
unexpected error carry the request id too.

On the full way, when the `Cookie` header holds more than `MAX_COOKIE_ESCAPES` backslashes,
the cookies holding one are left out before the framework reads them (which it does for
every request it routes): Python before 3.11.10 and 3.12.6 unquotes a cookie in time
quadratic in its escapes (CVE-2024-7592), and one 40 KB header held the event loop for 5 s
(80 KB: 21 s). No cookie of either service holds one, and another app's on the same host
is not refused with the request.
"""

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.cors import CorsMiddleware
from servicekit.observability import COUNTED_METHOD

# Each service's `/healthz` answer, pre-serialized: the cheapest possible route, the honest
# ceiling for `make bench`. Shared by every request: never modified.
HEALTHY = Response(b'{"status":"ok"}', media_type="application/json")
MAX_COOKIE_ESCAPES = 64


class FrontedFastAPI(FastAPI):
    """FastAPI whose `front(method, path, handler)` routes skip the framework."""

    def __init__(self, **options: Any):
        # No redirect from `/path/` to `/path`: the framework builds its Location from the
        # Host header the client sent and echoes the query (an `access_token` too) into it.
        options.setdefault("redirect_slashes", False)
        super().__init__(**options)
        self._front: dict[tuple[str, str], ASGIApp] = {}
        self._context: Callable[[ASGIApp], ASGIApp] = lambda app: app
        self._full: ASGIApp = self._framework
        self._head: set[str] = set()
        self._vary_origin = False

    def in_context(self, context: Callable[[ASGIApp], ASGIApp]) -> None:
        """Run every request, front or full way, inside `context` (the app's
        `RequestContext`), outermost; before `front` registers its routes."""
        self._context = context
        self._full = context(self._framework)

    def answer_head(self, *paths: str) -> None:
        """Answer `HEAD` on these `GET` routes as `GET`, without the body (RFC 9110 9.3.2):
        uptime probes and caches ask with it. Only routes without side effects: a `HEAD`
        the user never meant must not, say, end a session."""
        self._head.update(paths)

    def allowed_methods(self, path: str) -> list[str]:
        """The methods `path` takes, for the `Allow` of a 405 (RFC 9110 15.5.6): those of every
        documented route for it (the routing names only its first route's), and `GET` and
        `HEAD` where `answer_head` answers it; none for any other path."""
        methods: set[str] = set()
        for route in _leaf_routes(self.routes):
            if getattr(route, "path", None) == path and getattr(route, "include_in_schema", False):
                methods |= getattr(route, "methods", None) or set()
        if path in self._head:
            # A GET route, documented or not (`/metrics` is not): `answer_head` names no other.
            methods |= {"GET", "HEAD"}
        return sorted(methods)

    def allow_cors(self, **options: Any) -> None:
        """CORS (`CorsMiddleware` with `options`) for every route. Requests with an `Origin`
        go the full way, through it; the front's answers to the others then say
        `Vary: Origin`, as the middleware's do, so that no cache hands an answer without the
        CORS headers to a browser app (the JWKS is cacheable for minutes)."""
        self.add_middleware(CorsMiddleware, **options)
        self._vary_origin = True

    def front(self, method: str, path: str, handler: ASGIApp) -> None:
        """Answer plain `method path` requests with `handler`; the route registered for
        `path` must answer alike."""
        route = _route(self.routes, path)

        async def routed(scope: Scope, receive: Receive, send: Send) -> None:
            scope["app"] = self
            scope["route"] = route  # the metrics' route template, as the router sets it
            try:
                await handler(scope, receive, send)
            except Exception as exc:
                # Answered as the full way answers it, by the app's handler for the
                # unexpected (the front is outside the framework's error middleware).
                fallback = self.exception_handlers.get(Exception)
                if fallback is None:
                    raise
                response = fallback(Request(scope, receive), exc)
                if inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, send)

        # Wrapped here, once: the hot path is this handler and the context, no more frames.
        self._front[(method, path)] = self._context(routed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self._front.get((scope["method"], scope["path"]))
            if handler is not None and not _has_origin(scope["headers"]):
                await handler(
                    scope, receive, _varying_on_origin(send) if self._vary_origin else send
                )
                return
            if scope["method"] == "HEAD" and scope["path"] in self._head:
                answered_as_get = {**scope, "method": "GET", COUNTED_METHOD: "HEAD"}
                await self(answered_as_get, receive, _without_body(send))
                return
        await self._full(scope, receive, send)

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _cookie_escapes(scope["headers"]) > MAX_COOKIE_ESCAPES:
            # In place, not on a copy: the routing writes the route into this scope, where the
            # request context reads it for the metrics (a copy's route counted as `unmatched`).
            scope["headers"] = _without_escaped_cookies(scope["headers"])
        await super().__call__(scope, receive, send)


def _route(routes: list[BaseRoute], path: str) -> BaseRoute:
    found = _find(routes, path)
    if found is None:
        raise ValueError(f"no route is registered for {path}")
    return found


def _find(routes: list[BaseRoute], path: str) -> BaseRoute | None:
    return next(
        (route for route in _leaf_routes(routes) if getattr(route, "path", None) == path), None
    )


def _leaf_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes, in order, with those of included routers in their place (FastAPI keeps an
    included router whole, with no prefix here)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _leaf_routes(included.routes)
        else:
            yield route


def _without_body(send: Send) -> Send:
    """`send`, with the body left out (the headers, `Content-Length` included, as for GET)."""

    async def headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return headers_only


def _varying_on_origin(send: Send) -> Send:
    """`send`, with `Origin` added to the response's `Vary` (its other values kept)."""

    async def varied(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            vary = [value for name, value in headers if name == b"vary"]
            kept = [(name, value) for name, value in headers if name != b"vary"]
            message = {**message, "headers": [*kept, (b"vary", b", ".join([*vary, b"Origin"]))]}
        await send(message)

    return varied


def _cookie_escapes(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(value.count(b"\\") for name, value in headers if name == b"cookie")


def _without_escaped_cookies(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with every cookie that holds a backslash left out (split as the framework's
    parser splits them, on `;`)."""
    kept = [
        pair
        for name, value in headers
        if name == b"cookie"
        for pair in value.split(b";")
        if b"\\" not in pair
    ]
    others = [(name, value) for name, value in headers if name != b"cookie"]
    return [*others, (b"cookie", b";".join(kept))] if kept else others


def _has_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, _ in headers:  # noqa: SIM110 - a plain loop: any() over a generator is slower
        if name == b"origin":
            return True
    return False
