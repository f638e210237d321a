"""Access tokens: RFC 9068 claims, signed RS256 with the active key."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from joserfc import jwt

from issuer.keys.ring import KeyRing
from issuer.oauth.scopes import format_scope

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    expires_at: int
    scope: tuple[str, ...]
    jti: str


class TokenSigner:
    """Builds and signs access tokens; the only place token claims are assembled."""

    def __init__(
        self,
        keyring: KeyRing,
        issuer: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ):
        self._keyring = keyring
        self._issuer = issuer
        self._ttl = ttl
        self._clock = clock

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        audience: str | list[str],
        scope: tuple[str, ...],
        username: str | None = None,
        ttl: int | None = None,
    ) -> IssuedToken:
        """Sign a new access token for `subject`."""
        keys = self._keyring.current
        now = int(self._clock())
        lifetime = ttl or self._ttl
        jti = secrets.token_urlsafe(16)
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + lifetime,
            "iat": now,
            "jti": jti,
            "client_id": client_id,
        }
        if scope:
            claims["scope"] = format_scope(scope)
        if username is not None:
            claims["preferred_username"] = username
        header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": keys.signing_kid}
        token = jwt.encode(header, claims, keys.signing_key, algorithms=[ALGORITHM])
        return IssuedToken(
            access_token=token, expires_in=lifetime, expires_at=now + lifetime, scope=scope, jti=jti
        )
