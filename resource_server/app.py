"""The resource server's ASGI app: `create_app(settings)` for tests, `app` for uvicorn."""

import contextlib
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from resource_server.deps import (
    AUTH_ERROR_HANDLERS,
    asgi_bearer_claims,
    auth_error_response,
    bearer_claims,
)
from resource_server.errors import AuthError
from resource_server.jwks import RemoteKeySet
from resource_server.metrics import make_registry
from resource_server.openapi import (
    DOCS_SCOPES,
    ERROR_RESPONSES,
    ME_EXAMPLE,
    NOT_READY_EXAMPLE,
    READY_EXAMPLE,
    SCHEME,
    install_openapi,
)
from resource_server.settings import Settings
from resource_server.stats import VerifierStats
from resource_server.verify import Claims, Verifier
from servicekit.configuration import load_settings
from servicekit.cors import EXPOSED_HEADERS
from servicekit.docs import install_docs
from servicekit.front import HEALTHY, FrontedFastAPI
from servicekit.http_errors import HTTP_ERROR_HANDLERS, unexpected_error
from servicekit.observability import RequestContext, configure_logging, request_histogram
from servicekit.runtime import frozen_heap


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the resource server; its key set and HTTP client are opened by the lifespan."""
    settings = settings or Settings()
    stats = VerifierStats()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        configure_logging(settings.log_format)
        key_set = RemoteKeySet(
            settings.issuer_url,
            settings.jwks_url,
            settings.cache_policy(),
            allow_insecure_http=settings.allow_insecure_http,
            stats=stats,
        )
        verifier = Verifier(
            key_set,
            settings.issuer_url,
            settings.audience,
            leeway=settings.leeway,
            max_token_bytes=settings.max_token_bytes,
            cache_size=settings.token_cache_size,
            stats=stats,
        )
        async with key_set:
            with frozen_heap():
                yield {"verifier": verifier, "key_set": key_set}

    app = FrontedFastAPI(
        title="Resource server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by install_docs
        exception_handlers={
            **AUTH_ERROR_HANDLERS,
            **HTTP_ERROR_HANDLERS,
            Exception: unexpected_error,
        },
    )
    # Swagger UI signs in as a public client with PKCE (make run registers it).
    install_docs(
        app,
        init_oauth={
            "clientId": settings.docs_client_id,
            "usePkceWithAuthorizationCodeGrant": True,
            "scopes": " ".join(DOCS_SCOPES),
        },
    )
    install_openapi(app, settings.issuer_url)

    @app.get(
        "/users/me",
        summary="The caller's identity",
        openapi_extra={"security": [{SCHEME: []}]},
        responses={
            200: {"content": {"application/json": {"example": ME_EXAMPLE}}},
            **ERROR_RESPONSES,
        },
    )
    async def users_me(request: Request) -> Response:
        """The caller's identity from the access token."""
        # The dependency awaited directly and orjson: this route sits on every request path,
        # where FastAPI's dependency solving and generic encoder cost more than the check.
        return me_response(await bearer_claims(request))

    registry = make_registry(stats)
    histogram = request_histogram(registry, "rs")
    app.in_context(lambda inner: RequestContext(inner, histogram=histogram))
    if settings.cors_origins:
        # Browser apps call the API with a bearer token, never with cookies. Requests with an
        # Origin go through this stack, not the front, so the CORS answers stay complete.
        app.allow_cors(
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Response:
        return HEALTHY

    @app.get(
        "/readyz",
        summary="Readiness: a usable key set is held",
        responses={
            200: {"content": {"application/json": {"example": READY_EXAMPLE}}},
            503: {
                "description": "no usable key set",
                "content": {"application/json": {"example": NOT_READY_EXAMPLE}},
            },
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        """Ready while usable keys are held; says whether they are fresh and how fetching goes."""
        key_set: RemoteKeySet = request.state.key_set
        status = key_set.status()
        body = {
            "ready": status.usable,
            # "fresh": within the JWKS max-age; "stale": past it, served under stale-if-error
            # while the issuer fails; "none": nothing usable held.
            "keys": ("fresh" if status.fresh else "stale") if status.usable else "none",
            "last_fetch_failed": status.last_fetch_failed,
            "consecutive_fetch_failures": status.consecutive_failures,
        }
        return JSONResponse(body, status_code=200 if status.usable else 503)

    # The hot routes skip the framework (servicekit.front): same functions, same answers.
    app.front("GET", "/users/me", users_me_front())
    app.front("GET", "/healthz", HEALTHY)
    app.answer_head("/healthz", "/readyz", "/metrics")
    return app


def me_response(claims: Claims) -> Response:
    """The answer to `GET /users/me` (orjson: FastAPI's generic encoder costs more)."""
    return Response(me_body(claims), media_type=JSON)


def me_body(claims: Claims) -> bytes:
    body = {
        "sub": claims.sub,
        "username": claims.username,
        "scope": " ".join(sorted(claims.scope)),
        "client_id": claims.client_id,
        "exp": claims.exp,
    }
    return orjson.dumps(body)


def users_me_front() -> ASGIApp:
    """`GET /users/me` without the framework: the route's own steps (`asgi_bearer_claims`,
    `me_body`), AuthError answered by the app's handler for it, `me_response`'s headers.

    A token seen again in the same plain header (no query string, no body type, one
    Authorization line) skips re-parsing the header, a pure function of those bytes, and
    re-serializing its body: the verifier still answers for the token every time (expiry,
    key set), and the remembered body is used only if it returns the very same claims.
    Bounded (4,096 headers), per app. Found by the header's last bytes (the signature's),
    then compared whole: hashing all ~700 bytes was most of the lookup.
    """
    # header tail -> header value, token, claims, response headers, body
    answers: dict[bytes, tuple[bytes, str, Claims, _Headers, bytes]] = {}

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        raw = _plain_authorization(scope)
        known = answers.get(raw[-_TAIL:]) if raw is not None else None
        state = scope.get("state")
        try:
            if known is not None and known[0] == raw and state and "verifier" in state:
                _, token, remembered, headers, body = known
                verifier = state["verifier"]
                claims = verifier.remembered(token) or await verifier.verify(token)
                if claims is not remembered:
                    body = me_body(claims)
                    headers = _json_headers(body)
                    answers[raw[-_TAIL:]] = (raw, token, claims, headers, body)
            else:
                verifier = state.get("verifier") if state else None
                hits = verifier.stats.cache_hits if verifier is not None else -1
                claims = await asgi_bearer_claims(scope, receive)
                body = me_body(claims)
                headers = _json_headers(body)
                # Remembered from the second sight on (a verified-token cache hit), so a
                # stream of new tokens pays nothing for it.
                if raw is not None and verifier is not None and verifier.stats.cache_hits != hits:
                    if len(answers) >= 4096:
                        answers.clear()
                    # The header passed bearer_token: "<scheme> <b64token>", spaces around.
                    token = raw.partition(b" ")[2].strip(b" ").decode("ascii")
                    answers[raw[-_TAIL:]] = (raw, token, claims, headers, body)
        except AuthError as exc:
            response = await auth_error_response(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        # A tuple, shared by every answer of this token (RequestContext adds its id to a copy).
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return handler


_Headers = tuple[tuple[bytes, bytes], ...]


def _json_headers(body: bytes) -> _Headers:
    return ((b"content-length", b"%d" % len(body)), _JSON_CONTENT_TYPE)


def _plain_authorization(scope: Scope) -> bytes | None:
    """The one Authorization value of a request with no query string and no Content-Type."""
    if scope.get("query_string"):
        return None
    found = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if found is not None:
                return None
            found = value
        elif name == b"content-type":
            return None
    return found


JSON = "application/json"
_JSON_CONTENT_TYPE = (b"content-type", JSON.encode())
# Bytes of the Authorization value that find its remembered answer: the end of the
# signature, as good as random across tokens (a shared tail only shares a slot).
_TAIL = 32


# Built at import for `uvicorn resource_server.app:app`: a bad RS_* value ends the process.
app = create_app(load_settings(Settings))
