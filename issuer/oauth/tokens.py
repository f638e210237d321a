"""The tokens we sign with the active key (RS256): RFC 9068 access tokens and OpenID Connect
ID tokens. The only place their claims are assembled.

The two differ in `typ` (`at+jwt` against `JWT`), so neither can pass for the other: our
verifier accepts only `at+jwt` as an access token (RFC 8725 section 3.11).
"""

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from joserfc import jwt

from issuer.keys.ring import KeyRing
from issuer.oauth.scopes import format_scope

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1
ID_TOKEN_TYPE = "JWT"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    expires_at: int
    scope: tuple[str, ...]
    jti: str


class TokenSigner:
    """Builds and signs access tokens and ID tokens."""

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
        token = self._sign(TOKEN_TYPE, claims)
        return IssuedToken(
            access_token=token, expires_in=lifetime, expires_at=now + lifetime, scope=scope, jti=jti
        )

    def id_token(
        self,
        *,
        subject: str,
        client_id: str,
        auth_time: int,
        nonce: str | None,
        access_token: str,
        ttl: int | None = None,
    ) -> str:
        """An OpenID Connect ID token (Core 3.1.3.6) for the client that logged the user in."""
        now = int(self._clock())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": client_id,
            "exp": now + (ttl or self._ttl),
            "iat": now,
            "auth_time": auth_time,
            "at_hash": at_hash(access_token),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self._sign(ID_TOKEN_TYPE, claims)

    def _sign(self, typ: str, claims: dict[str, object]) -> str:
        keys = self._keyring.current
        header = {"alg": ALGORITHM, "typ": typ, "kid": keys.signing_kid}
        return jwt.encode(header, claims, keys.signing_key, algorithms=[ALGORITHM])


def at_hash(access_token: str) -> str:
    """The left half of SHA-256 of the access token, base64url (OpenID Connect Core 3.1.3.6)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
