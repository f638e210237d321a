"""The answer to a request the routing refuses (no such path, a method the path does not
take): an OAuth-style error body (RFC 6749 5.2, RFC 6750 3), as every other refusal of both
services, instead of the framework's `{"detail": ...}`. The status and `Allow` are kept.
And the answer to an unexpected error: `500 {"error": "server_error"}`, its details in the
log only (the issuer maps its own errors first, in `issuer.web.errors`). No cache keeps any
of them, as none keeps the token endpoint's own errors (RFC 6749 5.1)."""

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)
# RFC 6749 section 5.1: token responses (and their errors) must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_DESCRIPTIONS = {404: "there is no such endpoint", 405: "this endpoint does not take this method"}


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    description = _DESCRIPTIONS.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        {"error": "invalid_request", "error_description": description},
        exc.status_code,
        {**NO_STORE, **(exc.headers or {}), **allow_header(request, exc.status_code)},
    )


def allow_header(request: Request, status: int) -> dict[str, str]:
    """A 405's `Allow`, naming every method of the path where the app knows them all
    (`FrontedFastAPI.allowed_methods`); else none, and the routing's own stands."""
    allowed = getattr(request.app, "allowed_methods", None) if status == 405 else None
    methods = allowed(request.scope["path"]) if allowed is not None else None
    return {"Allow": ", ".join(methods)} if methods else {}


HTTP_ERROR_HANDLERS = {HTTPException: http_error}


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log_unexpected(exc)
    return JSONResponse({"error": "server_error"}, 500, NO_STORE)


_LOGGED = "_servicekit_logged"


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected error once, with its request's id, and mark it so: the framework
    raises it again after answering, and the request context keeps it from the server, which
    would log it a second time, without the id (see `RequestContext`)."""
    log.error("unhandled error", exc_info=exc)
    setattr(exc, _LOGGED, True)


def was_logged(exc: BaseException) -> bool:
    return bool(getattr(exc, _LOGGED, False))
