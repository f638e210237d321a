"""Resource server and a reusable, async verifier for the issuer's RS256 access tokens.

The names below load on first use (PEP 562), so a program that needs one small piece, such
as the issuer's scripts checking a URL with `resource_server.urls`, does not pay for
FastAPI and httpx at start.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resource_server.deps import (
        AUTH_ERROR_HANDLERS,
        BearerClaims,
        bearer_lifespan,
        require_scopes,
    )
    from resource_server.errors import (
        AuthError,
        InsufficientScope,
        InvalidRequest,
        InvalidToken,
        KeySetUnavailable,
    )
    from resource_server.jwks import CachePolicy, RemoteKeySet
    from resource_server.verify import Claims, Verifier

_HOMES = {
    "AUTH_ERROR_HANDLERS": "deps",
    "BearerClaims": "deps",
    "bearer_lifespan": "deps",
    "require_scopes": "deps",
    "AuthError": "errors",
    "InsufficientScope": "errors",
    "InvalidRequest": "errors",
    "InvalidToken": "errors",
    "KeySetUnavailable": "errors",
    "CachePolicy": "jwks",
    "RemoteKeySet": "jwks",
    "Claims": "verify",
    "Verifier": "verify",
}

__all__ = [
    "AUTH_ERROR_HANDLERS",
    "AuthError",
    "BearerClaims",
    "CachePolicy",
    "Claims",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "KeySetUnavailable",
    "RemoteKeySet",
    "Verifier",
    "bearer_lifespan",
    "require_scopes",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
