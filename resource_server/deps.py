"""FastAPI dependencies: `BearerClaims` and `require_scopes`, plus `install_verifier`.

app = FastAPI()
install_verifier(app, Verifier.for_issuer("https://issuer.example", audience="api"))

@app.get("/orders")
async def orders(claims: BearerClaims): ...
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from resource_server.errors import AuthError, InsufficientScope, InvalidToken, MissingToken
from resource_server.jwks import RemoteKeySet
from resource_server.verify import Claims, Verifier

# RFC 6750 section 2.1: b64token; the scheme name is case-insensitive (RFC 9110 11.1).
_BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *$")
MAX_HEADER_CHARS = 16 * 1024


def install_verifier(app: FastAPI, verifier: Verifier) -> None:
    """Make `BearerClaims` work in `app`: holds the verifier, closes it, answers its errors."""
    app.state.verifier = verifier
    app.add_exception_handler(AuthError, auth_error_response)  # type: ignore[arg-type]
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        # Fetch keys in the background: start-up never waits for (or fails on) the issuer.
        key_set = verifier.key_set
        keeper = asyncio.create_task(key_set.run()) if isinstance(key_set, RemoteKeySet) else None
        try:
            async with inner(app_) as state:
                yield state
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            await verifier.aclose()

    app.router.lifespan_context = lifespan


async def auth_error_response(_: Request, exc: AuthError) -> JSONResponse:
    """The RFC 6750 answer: status, `WWW-Authenticate` and a JSON error body."""
    return JSONResponse(exc.body(), exc.status_code, headers=exc.headers)


def bearer_token(request: Request) -> str:
    """The token from `Authorization: Bearer ...`."""
    header = request.headers.get("authorization")
    if header is None:
        raise MissingToken("the request has no Authorization header")
    if len(header) > MAX_HEADER_CHARS:
        raise InvalidToken("the Authorization header is too large", reason="header")
    match = _BEARER.match(header)
    if match is None:
        raise InvalidToken("the Authorization header must be 'Bearer <token>'", reason="header")
    return match.group(1)


async def bearer_claims(request: Request) -> Claims:
    """The verified claims of the request's bearer token."""
    # One async dependency: a sync one would cost a thread hop on every request.
    verifier: Verifier = request.app.state.verifier
    try:
        token = bearer_token(request)
    except InvalidToken as exc:
        verifier.failures[exc.reason] += 1
        raise
    return await verifier.verify(token)


BearerClaims = Annotated[Claims, Depends(bearer_claims)]


def require_scopes(*scopes: str) -> Callable[..., Awaitable[Claims]]:
    """A dependency that also demands every one of `scopes` (403 insufficient_scope)."""
    required = tuple(scopes)

    async def dependency(claims: BearerClaims) -> Claims:
        if not claims.scope.issuperset(required):
            raise InsufficientScope(required)
        return claims

    return dependency
