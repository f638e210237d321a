"""The issuer's ASGI app: `create_app(settings)` for tests, `app` for uvicorn."""

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from issuer.metrics import IssuerMetrics
from issuer.services import open_services
from issuer.settings import Settings
from issuer.web import discovery, health, hot, oauth, sign_in, userinfo
from issuer.web.client_address import ClientAddresses, parse_networks
from issuer.web.discovery import JwksAnswers
from issuer.web.errors import error_handlers
from issuer.web.openapi import install_security_schemes
from issuer.web.pages import STATIC_DIRECTORY, BrowserCookies
from resource_server.deps import AUTH_ERROR_HANDLERS
from servicekit.configuration import load_settings
from servicekit.cors import EXPOSED_HEADERS
from servicekit.docs import install_docs, mount_static
from servicekit.front import FrontedFastAPI
from servicekit.http_errors import HTTP_ERROR_HANDLERS
from servicekit.observability import RequestContext, configure_logging
from servicekit.runtime import frozen_heap


def create_app(
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the issuer app; its services are opened by the lifespan, not here. `clock` dates
    what is shared (tokens, sessions, codes); `timer` measures this process's rate-limit
    windows and backoffs, which a step of the wall clock must not stretch."""
    settings = settings or Settings()
    metrics = IssuerMetrics()
    addresses = ClientAddresses(parse_networks(settings.trusted_proxies), settings.forwarded_header)
    cookies = BrowserCookies(settings.url, settings.session_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        configure_logging(settings.log_format)
        async with open_services(settings, metrics, clock, timer) as services:
            with frozen_heap():
                yield {
                    "services": services,
                    "client_addresses": addresses,
                    "cookies": cookies,
                    "jwks": JwksAnswers(services, clock),
                }

    handlers = error_handlers(metrics, sign_in.error_pages(settings.service_name))
    app = FrontedFastAPI(
        title="OAuth 2.0 token issuer",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by install_docs
        exception_handlers={**handlers, **AUTH_ERROR_HANDLERS, **HTTP_ERROR_HANDLERS},
    )
    install_docs(app)
    install_security_schemes(app)
    mount_static(app, "/static", str(STATIC_DIRECTORY), "static")
    for router in (oauth.router, sign_in.router, userinfo.router, discovery.router, health.router):
        app.include_router(router)
    app.in_context(lambda inner: RequestContext(inner, histogram=metrics.requests))
    # The hot routes skip the framework (see servicekit.front and issuer.web.hot).
    app.front("GET", "/.well-known/jwks.json", hot.jwks)
    app.front("POST", "/token", hot.token(handlers[Exception]))
    app.front("GET", "/healthz", hot.healthz)
    app.answer_head(
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    )
    if settings.cors_origins:
        # Narrow CORS: only the listed origins (browser apps exchanging codes, calling
        # /userinfo; Swagger UI), never credentials (cookies) across origins.
        app.allow_cors(
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-Requested-With"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    return app


# Built at import for `uvicorn issuer.app:app`: a bad ISSUER_* value ends the process (exit 2).
app = create_app(load_settings(Settings))
