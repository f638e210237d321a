"""The issuer's ASGI app: `create_app(settings)` for tests, `app` for uvicorn."""

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from issuer.metrics import IssuerMetrics
from issuer.services import open_services
from issuer.settings import Settings
from issuer.web import discovery, health, oauth
from issuer.web.client_address import ClientAddresses, parse_networks
from issuer.web.errors import error_handlers
from servicekit.docs import install_docs
from servicekit.observability import RequestContext, configure_logging


def create_app(settings: Settings | None = None, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the issuer app; its services are opened by the lifespan, not here."""
    settings = settings or Settings()
    metrics = IssuerMetrics()
    addresses = ClientAddresses(parse_networks(settings.trusted_proxies), settings.forwarded_header)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        configure_logging(settings.log_format)
        async with open_services(settings, metrics, clock) as services:
            yield {"services": services, "client_addresses": addresses}

    app = FastAPI(
        title="OAuth 2.0 token issuer",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        exception_handlers=error_handlers(metrics),
    )
    install_docs(app)
    for router in (oauth.router, discovery.router, health.router):
        app.include_router(router)
    app.add_middleware(RequestContext, histogram=metrics.requests)
    if settings.cors_origins:
        # Narrow CORS: only the listed origins, only for POSTing forms (Swagger's password flow).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-Requested-With"],
            max_age=600,
        )
    return app


app = create_app()
