"""The issuer's ASGI app: `create_app(settings)` for tests, `app` for uvicorn."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from issuer.db import create_schema, make_engine, make_sessions
from issuer.errors import OAuthError
from issuer.forms import read_form
from issuer.grants import GrantContext, token_response
from issuer.keystore import KeyRing
from issuer.passwords import PasswordHasher
from issuer.settings import Settings
from issuer.tokens import TokenSigner
from issuer.users import UserRepository

log = logging.getLogger(__name__)

# RFC 6749 section 5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON_MEDIA_TYPE = "application/json"


def metadata_document(settings: Settings) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    return {
        "issuer": settings.url,
        "token_endpoint": f"{settings.url}/token",
        "jwks_uri": f"{settings.url}/.well-known/jwks.json",
        "grant_types_supported": ["password"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the issuer app; resources are opened by the lifespan, not here."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        create_schema(engine)
        keyring = KeyRing(settings.key_store())
        hasher = PasswordHasher(settings.bcrypt_rounds)
        app.state.keyring = keyring
        app.state.grants = GrantContext(
            settings=settings,
            users=UserRepository(make_sessions(engine)),
            hasher=hasher,
            signer=TokenSigner(keyring, settings.url, settings.access_token_ttl),
        )
        watcher = asyncio.create_task(keyring.watch(settings.keys_poll_interval))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            hasher.close()
            engine.dispose()

    app = FastAPI(title="OAuth 2.0 token issuer", lifespan=lifespan)
    metadata_body = json.dumps(metadata_document(settings)).encode()
    jwks_cache_control = f"public, max-age={settings.jwks_max_age}"

    @app.exception_handler(OAuthError)
    async def oauth_error(_: Request, exc: OAuthError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status_code, headers={**NO_STORE, **exc.headers})

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        # Only errors under 500 are described; internals go to the log.
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": "server_error"}, 500, headers=NO_STORE)

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = await read_form(request)
        body = await token_response(form, request.app.state.grants)
        return JSONResponse(body, headers=NO_STORE)

    @app.get("/.well-known/jwks.json")
    async def jwks(request: Request) -> Response:
        document = request.app.state.keyring.current.jwks
        headers = {"Cache-Control": jwks_cache_control, "ETag": document.etag}
        if document.matches(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(document.body, media_type=JSON_MEDIA_TYPE, headers=headers)

    @app.get("/.well-known/oauth-authorization-server")
    @app.get("/.well-known/openid-configuration")
    async def metadata() -> Response:
        return Response(
            metadata_body,
            media_type=JSON_MEDIA_TYPE,
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
