"""The issuer's one error handler: every refusal becomes an RFC 6749 section 5.2 body.

Domain refusals (a throttle, the full hashing pool) are mapped to their OAuth error here;
anything unexpected is a bare `server_error`, its details in the log only.
"""

import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from issuer.accounts.passwords import HashingBusy
from issuer.limits.throttle import Throttled
from issuer.metrics import IssuerMetrics
from issuer.oauth.errors import OAuthError, RateLimited, ServerError, TemporarilyUnavailable
from issuer.web.responses import no_store_json
from servicekit.http_errors import log_unexpected

log = logging.getLogger(__name__)


# Seconds a client is asked to wait while the database cannot be reached.
DATABASE_RETRY_AFTER = 5
# SQLSTATE 25006: the server takes no writes (a standby after a failover, which a pooler or a
# DNS name may still point at for a while): passing, as an outage is, and nothing was written.
_READ_ONLY = "25006"


def as_oauth_error(exc: Exception) -> OAuthError:
    """The OAuth error a refusal is answered with."""
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, Throttled):
        return RateLimited(exc.retry_seconds, exc.description)
    if isinstance(exc, HashingBusy):
        return TemporarilyUnavailable(str(exc))
    if _database_unreachable(exc):
        # Nothing was consumed: the transaction that failed rolled back with the connection.
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return TemporarilyUnavailable(
            "the service cannot reach its database; retry later", DATABASE_RETRY_AFTER
        )
    log_unexpected(exc)
    return ServerError()


def is_outage(exc: Exception) -> bool:
    """Whether `exc` is passing (the database out of reach, the hashing pool full): answered
    `503 temporarily_unavailable`, and the same request may succeed a moment later."""
    return isinstance(exc, TemporarilyUnavailable | HashingBusy) or _database_unreachable(exc)


def _database_unreachable(exc: Exception) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) == _READ_ONLY


def _rejection(exc: Exception, error: OAuthError) -> str | None:
    """Why a request was turned away before any work, for the rejections counter."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(exc, HashingBusy):
        return "overloaded"
    if isinstance(error, TemporarilyUnavailable):
        return "database_unavailable" if _database_unreachable(exc) else "overloaded"
    return None


def error_handlers(
    metrics: IssuerMetrics,
    page_for: Callable[[Request, OAuthError], Response | None],
) -> dict[int | type[Exception], Callable[[Request, Any], Any]]:
    """The `exception_handlers` of the issuer app. `page_for` answers a browser page's
    refusals (the database down under the sign-in page) with a page of its own."""

    async def answer(request: Request, exc: Exception) -> Response:
        error = as_oauth_error(exc)
        reason = _rejection(exc, error)
        if reason is not None:
            metrics.rejections.labels(reason).inc()
        shown = page_for(request, error)
        if shown is not None:
            return shown
        return no_store_json(error.body(), error.status_code, error.headers)

    # SQLAlchemyError here too: handled inside the app, so the server logs no traceback for an
    # outage that the answer already explains.
    return {
        OAuthError: answer,
        Throttled: answer,
        HashingBusy: answer,
        SQLAlchemyError: answer,
        Exception: answer,
    }
