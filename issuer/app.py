"""The issuer's ASGI app: `create_app(settings)` for tests, `app` for uvicorn."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from issuer import key_events
from issuer.accounts import refuse_demo_account
from issuer.clients import CachedClients, ClientRepository
from issuer.counters import connect_redis, make_store
from issuer.db import make_engine, make_sessions
from issuer.errors import OAuthError, RateLimited, TemporarilyUnavailable
from issuer.forms import read_form
from issuer.grants import GrantContext, token_response
from issuer.introspection import introspect
from issuer.keystore import KeyRing
from issuer.metadata import MetadataCache
from issuer.metrics import IssuerMetrics
from issuer.openapi import INTROSPECT_DOCS, JWKS_DOCS, REVOKE_DOCS, TOKEN_DOCS
from issuer.passwords import PasswordHasher
from issuer.refresh_tokens import RefreshTokenStore
from issuer.revocation import revoke
from issuer.revocations import RevocationList
from issuer.schema import prepare
from issuer.settings import Settings
from issuer.throttle import LoginThrottle
from issuer.tokens import TokenSigner
from issuer.users import UserRepository
from resource_server.observability import RequestContext, configure_logging
from resource_server.openapi import install_docs
from resource_server.verify import Verifier

log = logging.getLogger(__name__)

# RFC 6749 section 5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON_MEDIA_TYPE = "application/json"


def create_app(settings: Settings | None = None, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the issuer app; resources are opened by the lifespan, not here."""
    settings = settings or Settings()
    metrics = IssuerMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format)
        # Everything opened is closed again, also when start-up fails half way.
        async with contextlib.AsyncExitStack() as resources:
            engine = make_engine(settings.database_url)
            resources.callback(engine.dispose)
            await run_in_threadpool(prepare, engine)
            sessions = make_sessions(engine)
            app.state.engine = engine
            keyring = KeyRing(settings.key_store(engine))
            hasher = PasswordHasher(
                settings.bcrypt_rounds, settings.hash_workers, settings.hash_queue
            )
            resources.callback(hasher.close)
            users = UserRepository(sessions)
            if settings.url.startswith("https://"):
                await run_in_threadpool(refuse_demo_account, users, hasher)
            redis_client = connect_redis(settings.redis_url)
            if redis_client is not None:
                resources.push_async_callback(redis_client.aclose)
            counters = make_store(redis_client, settings.redis_prefix, clock)
            resources.push_async_callback(counters.aclose)
            app.state.keyring = keyring
            metrics.watch_keyring(keyring)
            app.state.grants = GrantContext(
                settings=settings,
                users=users,
                clients=CachedClients(ClientRepository(sessions)),
                hasher=hasher,
                signer=TokenSigner(keyring, settings.url, settings.access_token_ttl, clock),
                refresh_tokens=RefreshTokenStore(
                    sessions, settings.refresh_token_ttl, settings.refresh_token_idle_ttl
                ),
                revocations=RevocationList(sessions, redis_client, settings.redis_prefix),
                throttle=LoginThrottle(counters, settings.throttle_policy()),
                metrics=metrics,
                clock=clock,
            )
            # Our own tokens are checked by the same Verifier the resource server uses.
            app.state.verifier = Verifier(
                keyring, settings.url, audience=None, leeway=0, clock=clock
            )
            app.state.metadata = MetadataCache(settings, sessions)
            wake = asyncio.Event()
            watcher = asyncio.create_task(keyring.watch(settings.keys_poll_interval, wake))
            resources.push_async_callback(_cancel, watcher)
            if redis_client is not None:
                listener = asyncio.create_task(
                    key_events.listen(redis_client, settings.redis_prefix, wake)
                )
                resources.push_async_callback(_cancel, listener)
            yield

    app = FastAPI(title="OAuth 2.0 token issuer", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app)
    app.state.metrics = metrics
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
    jwks_cache_control = f"public, max-age={settings.jwks_max_age}"

    @app.exception_handler(OAuthError)
    async def oauth_error(_: Request, exc: OAuthError) -> JSONResponse:
        if isinstance(exc, RateLimited | TemporarilyUnavailable):
            reason = "rate_limited" if isinstance(exc, RateLimited) else "overloaded"
            metrics.rejections.labels(reason).inc()
        return JSONResponse(exc.body(), exc.status_code, headers={**NO_STORE, **exc.headers})

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        # Only errors under 500 are described; internals go to the log.
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": "server_error"}, 500, headers=NO_STORE)

    @app.post("/token", summary="OAuth 2.0 token endpoint (RFC 6749)", openapi_extra=TOKEN_DOCS)
    async def token(request: Request) -> JSONResponse:
        form = await read_form(request)
        authorization = request.headers.get("authorization")
        ip = request.client.host if request.client else "unknown"
        body = await token_response(form, authorization, ip, request.app.state.grants)
        return JSONResponse(body, headers=NO_STORE)

    @app.post("/revoke", summary="Token revocation (RFC 7009)", openapi_extra=REVOKE_DOCS)
    async def revoke_token(request: Request) -> Response:
        form = await read_form(request)
        state = request.app.state
        await revoke(form, request.headers.get("authorization"), state.grants, state.verifier)
        return Response(status_code=200, headers=NO_STORE)

    @app.post(
        "/introspect", summary="Token introspection (RFC 7662)", openapi_extra=INTROSPECT_DOCS
    )
    async def introspect_token(request: Request) -> JSONResponse:
        form = await read_form(request)
        state = request.app.state
        authorization = request.headers.get("authorization")
        body = await introspect(form, authorization, state.grants, state.verifier)
        return JSONResponse(body, headers=NO_STORE)

    @app.get(
        "/.well-known/jwks.json", summary="The public signing keys (RFC 7517)", responses=JWKS_DOCS
    )
    async def jwks(request: Request) -> Response:
        document = request.app.state.keyring.current.jwks
        headers = {"Cache-Control": jwks_cache_control, "ETag": document.etag}
        if document.matches(request.headers.get("if-none-match")):
            metrics.jwks_requests.labels("304").inc()
            return Response(status_code=304, headers=headers)
        metrics.jwks_requests.labels("200").inc()
        return Response(document.body, media_type=JSON_MEDIA_TYPE, headers=headers)

    @app.get("/.well-known/oauth-authorization-server", summary="Server metadata (RFC 8414)")
    @app.get("/.well-known/openid-configuration", summary="Server metadata (OpenID Discovery path)")
    async def metadata(request: Request) -> Response:
        cache: MetadataCache = request.app.state.metadata
        body = await run_in_threadpool(cache.rebuild) if cache.stale else cache.body()
        return Response(
            body,
            media_type=JSON_MEDIA_TYPE,
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Response:
        # Pre-serialized: the cheapest possible route, the honest ceiling for `make bench`.
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", summary="Readiness: database and keys usable")
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the database answers and a usable key set is loaded."""
        checks = {"database": await run_in_threadpool(_database_answers, request.app.state.engine)}
        checks["keys"] = request.app.state.keyring.current.signing_key is not None
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    return app


def _database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


async def _cancel(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


app = create_app()
