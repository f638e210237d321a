"""The tokens we sign with the active key (RS256): RFC 9068 access tokens and OpenID Connect
ID tokens. The only place their claims are assembled.

The two differ in `typ` (`at+jwt` against `JWT`), so neither can pass for the other: our
verifier accepts only `at+jwt` as an access token (RFC 8725 section 3.11).

Signing is RS256 over `header.payload` with the active key's `cryptography` object, loaded
once per key-set change (never a PEM per token); each key's header segments are encoded once.
`issue_async` signs on a small thread pool: `cryptography` releases the GIL while it signs,
so the event loop keeps serving requests meanwhile and signatures use every core.
"""

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from issuer.keys.ring import KeyRing
from issuer.keys.store import LoadedKeys
from issuer.oauth.scopes import format_scope
from resource_server.base64url import b64url_encode

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1
ID_TOKEN_TYPE = "JWT"


T = TypeVar("T")


class SigningPool(Protocol):
    """Threads that run a call off the event loop (`servicekit.threads.WorkerThreads`)."""

    async def run(self, function: Callable[..., T], *args: Any) -> T: ...


class IssuedToken(NamedTuple):  # made per token: a frozen dataclass costs 3x
    access_token: str
    expires_in: int
    expires_at: int
    scope: tuple[str, ...]
    jti: str


@dataclass(frozen=True)
class _SigningKey:
    """The active key of one loaded key set, with its JWS header segments encoded."""

    loaded: LoadedKeys
    key: rsa.RSAPrivateKey
    headers: dict[str, str]  # typ -> base64url(header) + "."

    @classmethod
    def of(cls, loaded: LoadedKeys) -> "_SigningKey":
        headers = {
            typ: b64url_encode(
                orjson.dumps({"alg": ALGORITHM, "typ": typ, "kid": loaded.signing_kid})
            )
            + "."
            for typ in (TOKEN_TYPE, ID_TOKEN_TYPE)
        }
        key = loaded.signing_key.private_key
        assert isinstance(key, rsa.RSAPrivateKey), "the active key is an RSA private key"
        return cls(loaded, key, headers)


class TokenSigner:
    """Builds and signs access tokens and ID tokens."""

    def __init__(
        self,
        keyring: KeyRing,
        issuer: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
        pool: SigningPool | None = None,
    ):
        self._keyring = keyring
        self._issuer = issuer
        self._ttl = ttl
        self._clock = clock
        # Where `issue_async` signs; None signs in the caller's thread.
        self._pool = pool
        self._signing_key: _SigningKey | None = None

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
        """Sign a new access token for `subject` in this thread."""
        key, header, claims, issued = self._access_token(
            subject, client_id, audience, scope, username, ttl
        )
        return issued(_sign(key, header, claims))

    async def issue_async(
        self,
        *,
        subject: str,
        client_id: str,
        audience: str | list[str],
        scope: tuple[str, ...],
        username: str | None = None,
        ttl: int | None = None,
    ) -> IssuedToken:
        """Sign a new access token for `subject` on the signing pool (the loop stays free)."""
        key, header, claims, issued = self._access_token(
            subject, client_id, audience, scope, username, ttl
        )
        if self._pool is None:
            return issued(_sign(key, header, claims))
        return issued(await self._pool.run(_sign, key, header, claims))

    def _access_token(
        self,
        subject: str,
        client_id: str,
        audience: str | list[str],
        scope: tuple[str, ...],
        username: str | None,
        ttl: int | None,
    ) -> tuple[rsa.RSAPrivateKey, str, bytes, Callable[[str], IssuedToken]]:
        """The key, header segment and serialized claims of a new access token, and what
        makes the `IssuedToken` from the signed token."""
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
        signing = self._current()

        def issued(token: str) -> IssuedToken:
            return IssuedToken(
                access_token=token,
                expires_in=lifetime,
                expires_at=now + lifetime,
                scope=scope,
                jti=jti,
            )

        return signing.key, signing.headers[TOKEN_TYPE], orjson.dumps(claims), issued

    def id_token(
        self,
        *,
        subject: str,
        client_id: str,
        auth_time: int,
        nonce: str | None,
        access_token: str,
    ) -> str:
        """An OpenID Connect ID token (Core 3.1.3.6) for the client that logged the user in."""
        now = int(self._clock())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": client_id,
            "exp": now + self._ttl,
            "iat": now,
            "auth_time": auth_time,
            "at_hash": at_hash(access_token),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        signing = self._current()
        return _sign(signing.key, signing.headers[ID_TOKEN_TYPE], orjson.dumps(claims))

    def _current(self) -> _SigningKey:
        """The active key, prepared once per key set the ring swaps in."""
        signing, loaded = self._signing_key, self._keyring.current
        if signing is None or signing.loaded is not loaded:
            signing = self._signing_key = _SigningKey.of(loaded)
        return signing


def _sign(key: rsa.RSAPrivateKey, header: str, claims: bytes) -> str:
    """The compact JWS `header.payload.signature` (RS256: RSASSA-PKCS1-v1_5 with SHA-256)."""
    signing_input = header + b64url_encode(claims)
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url_encode(signature)


def at_hash(access_token: str) -> str:
    """The left half of SHA-256 of the access token, base64url (OpenID Connect Core 3.1.3.6)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])
