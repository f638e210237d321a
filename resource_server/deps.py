"""FastAPI wiring: `BearerClaims`, `require_scopes`, and the lifespan that runs a verifier.

verifier = Verifier.for_issuer("https://issuer.example", audience="api")
app = FastAPI(lifespan=bearer_lifespan(verifier), exception_handlers=AUTH_ERROR_HANDLERS)

@app.get("/orders")
async def orders(claims: BearerClaims): ...
"""

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from resource_server.errors import AuthError, InsufficientScope, InvalidToken, MissingToken
from resource_server.jwks import RemoteKeySet
from resource_server.verify import Claims, Verifier

# RFC 6750 section 2.1: b64token; the scheme name is case-insensitive (RFC 9110 11.1).
_BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *$")
MAX_HEADER_CHARS = 16 * 1024


def bearer_lifespan(
    verifier: Verifier,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Mapping[str, Any]]]:
    """A lifespan that keeps the verifier's keys fresh and hands it to `BearerClaims`."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[Mapping[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(verifier.key_set, RemoteKeySet):
                await stack.enter_async_context(verifier.key_set)
            yield {"verifier": verifier}

    return lifespan


async def auth_error_response(_: Request, exc: Exception) -> JSONResponse:
    """The RFC 6750 answer: status, `WWW-Authenticate` and a JSON error body."""
    assert isinstance(exc, AuthError)
    return JSONResponse(exc.body(), exc.status_code, headers=exc.headers)


AUTH_ERROR_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Any]] = {
    AuthError: auth_error_response
}


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
    verifier: Verifier = request.state.verifier
    try:
        token = bearer_token(request)
    except InvalidToken as exc:
        verifier.stats.rejections[exc.reason] += 1
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
