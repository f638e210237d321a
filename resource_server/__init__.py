"""Resource server and a reusable, async verifier for the issuer's RS256 access tokens."""

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
