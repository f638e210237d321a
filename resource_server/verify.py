"""`Verifier.verify(token) -> Claims`: the only place token rules live (RFC 8725, RFC 9068)."""

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jws
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import RSAKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from resource_server.base64url import b64url_decode
from resource_server.errors import InvalidToken, KeySetUnavailable
from resource_server.jwks import CachePolicy, RemoteKeySet
from resource_server.stats import VerifierStats
from resource_server.token_cache import VerifiedTokens

# RFC 8725 section 3.1: the accepted algorithms are ours, never the token's.
ALLOWED_ALGORITHMS = ("RS256",)
# RFC 9068 section 4: `typ` is "at+jwt" (the "application/" prefix may be present).
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# RFC 9068 section 2.2: claims every access token carries.
REQUIRED_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
MAX_LEEWAY = 60
DEFAULT_MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_CACHE_SIZE = 10_000
# A real header is ~100 bytes; the cap bounds what is parsed before anything is trusted.
MAX_HEADER_SEGMENT = 4 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=list(ALLOWED_ALGORITHMS), strict_check_header=False)


class KeySource(Protocol):
    """Where a verifier finds keys: `RemoteKeySet`, or an issuer's own key ring."""

    @property
    def generation(self) -> int:
        """Changes whenever the held keys change; cached verifications end with it."""

    async def key(self, kid: str, rejected: RSAKey | None = None) -> RSAKey | None:
        """The key for `kid` (refreshing per the source's policy); `None` if there is none.

        `rejected` is a key a signature just failed with: the source may hold a newer one.
        """


@dataclass(frozen=True)
class Claims:
    """A verified access token's claims."""

    sub: str
    client_id: str
    scope: frozenset[str]
    exp: int
    username: str | None
    raw: Mapping[str, Any]


class Verifier:
    """Verifies access tokens from one issuer for one audience."""

    def __init__(
        self,
        key_set: KeySource,
        issuer: str,
        audience: str | None,
        leeway: int = MAX_LEEWAY,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        clock: Callable[[], float] = time.time,
        cache_size: int = DEFAULT_CACHE_SIZE,
        stats: VerifierStats | None = None,
    ):
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
        self.key_set = key_set
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._leeway = leeway
        self._max_token_bytes = max_token_bytes
        self._clock = clock
        self.stats = stats or VerifierStats()
        # Entries: (claims, the key set's generation when the token verified).
        self._verified: VerifiedTokens[tuple[Claims, int]] = VerifiedTokens(cache_size)

    @classmethod
    def for_issuer(
        cls,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        policy: CachePolicy | None = None,
        allow_insecure_http: bool = False,
        stats: VerifierStats | None = None,
        **options: Any,
    ) -> "Verifier":
        """A verifier over a `RemoteKeySet` of `issuer` (see `bearer_lifespan` to run it)."""
        stats = stats or VerifierStats()
        key_set = RemoteKeySet(
            issuer, jwks_url, policy, allow_insecure_http=allow_insecure_http, stats=stats
        )
        return cls(key_set, issuer, audience, stats=stats, **options)

    async def verify(self, token: str) -> Claims:
        """The token's claims if it is valid; `InvalidToken` saying why if it is not."""
        try:
            return await self._verify(token)
        except (InvalidToken, KeySetUnavailable) as exc:
            self.stats.rejections[exc.reason] += 1
            raise

    async def _verify(self, token: str) -> Claims:
        if len(token) > self._max_token_bytes:
            raise InvalidToken(
                f"the token is larger than {self._max_token_bytes} bytes", reason="too_large"
            )
        now = int(self._clock())
        remembered = self._remembered(token, now)
        if remembered is not None:
            return remembered
        kid = _read_header(token)["kid"]
        key = await self.key_set.key(kid)
        if key is None:
            raise InvalidToken(
                "the token is signed with a key the issuer does not publish", reason="unknown_kid"
            )
        try:
            payload = _verify_signature(token, key)
        except InvalidToken:
            replacement = await self.key_set.key(kid, rejected=key)
            if replacement is None:
                raise
            payload = _verify_signature(token, replacement)
        # No await since the key was handed out, so this is the generation it came from.
        generation = self.key_set.generation
        claims = self._validate_claims(payload, now)
        self._verified.put(token, (claims, generation))
        return claims

    def _remembered(self, token: str, now: int) -> Claims | None:
        """The claims of this exact token if it verified before and nothing has changed since.

        Still valid while unexpired (the same `exp` rule with leeway) and while the key set
        holds the same keys: a key that left the JWKS, or was replaced, ends it.
        `nbf` and `iat` only become more valid with time, so they need no second look.
        """
        cached = self._verified.get(token)
        if cached is not None:
            claims, generation = cached
            if now < claims.exp + self._leeway and generation == self.key_set.generation:
                self.stats.cache_hits += 1
                return claims
            self._verified.drop(token)
        self.stats.cache_misses += 1
        return None

    def _validate_claims(self, payload: bytes, now: int) -> Claims:
        try:
            claims = json.loads(payload)
        except (ValueError, RecursionError):
            # RecursionError: deeply nested JSON exhausts the parser's stack (not a ValueError).
            raise InvalidToken("the token payload is not JSON", reason="malformed") from None
        if not isinstance(claims, dict):
            raise InvalidToken("the token payload is not a JSON object", reason="malformed")
        options: dict[str, ClaimsOption] = {name: {"essential": True} for name in REQUIRED_CLAIMS}
        options["iss"]["value"] = self.issuer
        if self.audience is not None:  # None only for the issuer's own introspection
            options["aud"]["value"] = self.audience
        registry = JWTClaimsRegistry(now=now, leeway=self._leeway, **options)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("the token has expired", reason="expired") from None
        except MissingClaimError as exc:
            raise InvalidToken(
                f"the token lacks required claims: {exc.description}", reason="missing_claim"
            ) from None
        except InvalidClaimError as exc:
            raise InvalidToken(
                _claim_problem(exc.claim, exc.description), reason="invalid_claim"
            ) from None
        scope, client_id = claims.get("scope", ""), claims["client_id"]
        username = claims.get("preferred_username")
        if not isinstance(scope, str) or not isinstance(client_id, str):
            raise InvalidToken(
                "the token's scope and client_id must be strings", reason="invalid_claim"
            )
        if username is not None and not isinstance(username, str):
            raise InvalidToken(
                "the token's preferred_username must be a string", reason="invalid_claim"
            )
        return Claims(
            sub=claims["sub"],
            client_id=client_id,
            scope=frozenset(scope.split()),
            exp=int(claims["exp"]),
            username=username,
            raw=claims,
        )


def _read_header(token: str) -> dict[str, Any]:
    """Parse and vet the protected header before any key is looked up."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken(
            "the token is not a signed JWT in compact form (header.payload.signature)",
            reason="malformed",
        )
    if not parts[2]:
        raise InvalidToken("the token has no signature", reason="malformed")
    if len(parts[0]) > MAX_HEADER_SEGMENT:
        raise InvalidToken("the token header is too large", reason="malformed")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (ValueError, RecursionError):
        # RecursionError: `[[[[...` nests deeper than the parser's stack; not a ValueError.
        raise InvalidToken(
            "the token header is not base64url-encoded JSON", reason="malformed"
        ) from None
    if not isinstance(header, dict):
        raise InvalidToken("the token header is not a JSON object", reason="malformed")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        # Covers "none" in every spelling and HS256 keyed with our public key (RFC 8725 2.1).
        raise InvalidToken(
            f"the token's alg must be one of {', '.join(ALLOWED_ALGORITHMS)}", reason="algorithm"
        )
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("the token's typ must be at+jwt (RFC 9068)", reason="type")
    if "crit" in header:
        # RFC 7515 section 4.1.11: we understand no extensions, so none can be critical.
        raise InvalidToken(
            "the token has critical header extensions this server does not support",
            reason="critical_header",
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("the token's header has no kid", reason="malformed")
    # jku, x5u, jwk and x5c are never read: keys come only from the configured issuer's JWKS.
    return header


def _verify_signature(token: str, key: RSAKey) -> bytes:
    try:
        result = jws.deserialize_compact(token, key, registry=_REGISTRY)
    except BadSignatureError:
        raise InvalidToken("the token's signature does not verify", reason="signature") from None
    except (JoseError, ValueError, TypeError, RecursionError):
        raise InvalidToken("the token is malformed", reason="malformed") from None
    assert result.payload is not None
    return result.payload


def _claim_problem(claim: str, description: str) -> str:
    if claim == "iss":
        return "the token was issued by another issuer"
    if claim == "aud":
        return "the token is not intended for this audience"
    if claim in ("nbf", "iat"):
        return f"the token is not valid yet ({claim} is in the future)"
    return f"the token's {claim} claim is invalid"
