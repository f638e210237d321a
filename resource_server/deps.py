"""FastAPI wiring: `BearerClaims`, `require_scopes`, and the lifespan that runs a verifier.

verifier = Verifier.for_issuer("https://issuer.example", audience="api")
app = FastAPI(lifespan=bearer_lifespan(verifier), exception_handlers=AUTH_ERROR_HANDLERS)

@app.get("/orders")
async def orders(claims: BearerClaims): ...
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from resource_server.content_length import BODY_DEADLINE, declared_length
from resource_server.errors import (
    AuthError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
)
from resource_server.jwks import RemoteKeySet
from resource_server.verify import Claims, Verifier

# RFC 9110 section 11.1: the scheme is a token, compared case-insensitively.
_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
# RFC 6750 section 2.1: `credentials = "Bearer" 1*SP b64token`, where
# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
_B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
MAX_HEADER_CHARS = 16 * 1024
# The largest form body read (for an `access_token` in it) before the token is judged.
MAX_CHECKED_FORM_BYTES = 64 * 1024
_FORM = "application/x-www-form-urlencoded"


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
    """The RFC 6750 answer: status, `WWW-Authenticate` (if any) and a JSON body."""
    assert isinstance(exc, AuthError)
    return JSONResponse(exc.body(), exc.status_code, headers=exc.headers)


AUTH_ERROR_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Any]] = {
    AuthError: auth_error_response
}


def bearer_token(request: Request) -> str:
    """The token from `Authorization: Bearer ...`; tokens anywhere else are refused."""
    return _token_of(request.scope)


def _token_of(scope: Scope) -> str:
    # RFC 6750 section 2.3 is optional and RFC 9700 section 4.3.2 advises against it: a token
    # in the URI ends up in logs and Referer headers, so it is refused, not ignored.
    query = scope.get("query_string", b"")
    if query and _names_access_token(query):
        raise InvalidRequest(
            "access tokens are accepted only in the Authorization header, not in the URI",
            reason="token_in_query",
        )
    # The raw header lines (bytes; latin-1, one character a byte, as Starlette reads them).
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    values = [value for name, value in headers if name == b"authorization"]
    if not values:
        # RFC 6750 section 3.1: a request without credentials gets no error code.
        raise MissingToken("the request carries no bearer token")
    if len(values) > 1:
        raise InvalidRequest("the request has more than one Authorization header")
    scheme, _, credentials = values[0].partition(b" ")
    if not _SCHEME.fullmatch(scheme.decode("latin-1")):
        raise InvalidRequest("the Authorization header must be 'Bearer <token>'")
    if scheme.lower() != b"bearer":
        # Section 3.1: an unsupported authentication method is answered like no credentials.
        raise MissingToken("this resource accepts only Bearer tokens")
    token = credentials.strip(b" ")
    if len(token) > MAX_HEADER_CHARS:
        raise InvalidToken("the token is too large", reason="too_large")
    # b64token, checked in C: every byte before the trailing "=" run is one of its characters
    # (a regular expression over a ~700-character token costs twice as much).
    core = token.rstrip(b"=")
    if not core or core.translate(None, _B64TOKEN_CHARS):
        raise InvalidRequest("the Authorization header must be 'Bearer <token>'")
    return token.decode("ascii")


async def refuse_token_in_body(request: Request) -> None:
    """Refuse a form body that carries `access_token` (RFC 6750 section 2.2 is not offered).

    This runs before the token is judged, so it reads only a body that declares a length of
    at most `MAX_CHECKED_FORM_BYTES`: anyone could send a larger one. A larger or unmeasured
    body is left to the route, and a token in it is ignored like the rest of the body.
    """
    if not _is_form(request.scope) or not _small_declared_body(request.scope):
        return
    try:
        # Starlette caches the body on the request, so the route can still read it.
        async with asyncio.timeout(BODY_DEADLINE):
            found = _names_access_token(await request.body())
    except ClientDisconnect:
        # Nobody will read the answer; a truncated body is a bad request, not a server error.
        raise InvalidRequest(
            "the client went away before sending the whole body", reason="body"
        ) from None
    except TimeoutError:
        raise InvalidRequest(
            f"the request body did not arrive within {BODY_DEADLINE:g} seconds", reason="body"
        ) from None
    except RuntimeError:
        # The stream is consumed: FastAPI parsed the form already (a route with `Form()`
        # parameters), and `form()` returns that parsed, cached form.
        found = "access_token" in await request.form()
    if found:
        raise InvalidRequest(
            "access tokens are accepted only in the Authorization header, not in the body",
            reason="token_in_body",
        )


def _is_form(scope: Scope) -> bool:
    """Whether the body is declared a form (the first Content-Type, as Starlette reads it)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower() == _FORM
    return False


def _small_declared_body(scope: Scope) -> bool:
    """Whether the body's length is declared, once, and at most `MAX_CHECKED_FORM_BYTES`: the
    server then delivers no more than that (HTTP framing), so reading it is bounded."""
    declared = None
    for key, value in scope["headers"]:
        if key == b"transfer-encoding" or (key == b"content-length" and declared is not None):
            return False
        if key == b"content-length":
            declared = value
    length = declared_length(declared) if declared is not None else None
    return length is not None and length <= MAX_CHECKED_FORM_BYTES


def _names_access_token(urlencoded: bytes) -> bool:
    # latin-1 decodes any bytes; names are compared after percent-decoding (access%5Ftoken).
    pairs = parse_qsl(urlencoded.decode("latin-1"), keep_blank_values=True)
    return any(name == "access_token" for name, _ in pairs)


async def bearer_claims(request: Request) -> Claims:
    """The verified claims of the request's bearer token."""
    # One async dependency: a sync one would cost a thread hop on every request.
    return await _claims(request.scope, lambda: request)


async def asgi_bearer_claims(scope: Scope, receive: Receive) -> Claims:
    """`bearer_claims` for a plain ASGI handler: a Request is built only to read a form."""
    return await _claims(scope, lambda: Request(scope, receive))


_NO_VERIFIER = (
    "BearerClaims found no verifier: the app's lifespan did not run, or is not "
    "bearer_lifespan(verifier) or one yielding {'verifier': verifier} (in tests: "
    "`with TestClient(app) as client`; a mounted app's own lifespan does not run)"
)


async def _claims(scope: Scope, request: Callable[[], Request]) -> Claims:
    state = scope.get("state")
    # `request.state.verifier`, read from the dict it wraps (no State object per request).
    verifier: Verifier | None = state.get("verifier") if state else None
    if verifier is None:
        # A setup mistake, not a bad request: named where its 500's traceback is read.
        raise RuntimeError(_NO_VERIFIER)
    try:
        if _is_form(scope):
            await refuse_token_in_body(request())
        token = _token_of(scope)
    except AuthError as exc:
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
