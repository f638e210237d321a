"""`Verifier.verify(token) -> Claims`: the only place token rules live (RFC 8725, RFC 9068).

The signature is checked directly with the key's `cryptography` public-key object (RS256:
RSASSA-PKCS1-v1_5 with SHA-256 over `header.payload`) and every claim rule is written out in
`_validate_claims`: no JOSE framework between the token and the rules, so a token never seen
before costs one RSA verification and two small JSON parses (orjson: strict RFC 8259, so
NaN, Infinity, lone surrogates and bytes that are not UTF-8 are malformed, never values).
"""

import functools
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, cast

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey
from typing_extensions import TypeVar

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
_PKCS1V15, _SHA256 = padding.PKCS1v15(), hashes.SHA256()
# Values a required claim may not have (as "absent or blank": RFC 9068 requires a value).
_BLANK: tuple[object, ...] = ("", [], {})


class KeySource(Protocol):
    """Where a verifier finds keys: `RemoteKeySet`, or an issuer's own key ring."""

    @property
    def generation(self) -> int:
        """Changes whenever the held keys change; cached verifications end with it. Keys and
        generation change together, on the event loop, so a verification reads the generation
        its key came from (a source loading keys on a thread swaps them in on the loop)."""

    async def key(self, kid: str, rejected: RSAKey | None = None) -> RSAKey | None:
        """The key for `kid` (refreshing per the source's policy); `None` if there is none.

        `rejected` is a key a signature just failed with: the source may hold a newer one.
        """


# What a verifier's `key_set` is, for type checkers: `for_issuer` makes a `RemoteKeySet`, which
# an app enters in its own lifespan (`async with verifier.key_set`) and asks for `status()`.
KeySourceT = TypeVar("KeySourceT", bound=KeySource, default=KeySource, covariant=True)


@dataclass(frozen=True)
class Claims:
    """A verified access token's claims."""

    sub: str
    client_id: str
    scope: frozenset[str]
    exp: int
    username: str | None
    raw: Mapping[str, Any]


class Verifier(Generic[KeySourceT]):
    """Verifies access tokens from one issuer for one audience."""

    def __init__(
        self,
        key_set: KeySourceT,
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
        self.issuer = issuer  # compared exactly (RFC 9068 section 4): a trailing "/" counts
        self.audience = audience
        self._leeway = leeway
        self._max_token_bytes = max_token_bytes
        self._clock = clock
        self.stats = stats or VerifierStats()
        # Entries: (claims, the key set's generation when the token verified, the time it
        # expires with leeway, as a float: compared with the clock's on every hit).
        self._verified: VerifiedTokens[tuple[Claims, int, float]] = VerifiedTokens(cache_size)

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
    ) -> "Verifier[RemoteKeySet]":
        """A verifier over a `RemoteKeySet` of `issuer` (see `bearer_lifespan` to run it)."""
        stats = stats or VerifierStats()
        key_set = RemoteKeySet(
            issuer, jwks_url, policy, allow_insecure_http=allow_insecure_http, stats=stats
        )
        # The caller's class (a subclass too), over the `RemoteKeySet` an own lifespan enters:
        # mypy cannot tell that `cls`'s key source may be one.
        verifier = cls(key_set, issuer, audience, stats=stats, **options)  # type: ignore[arg-type]
        return cast("Verifier[RemoteKeySet]", verifier)

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
        remembered = self.remembered(token)
        if remembered is not None:
            return remembered
        self.stats.cache_misses += 1
        kid = _read_header(token)
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
        # Read after the key lookup, which may have waited on the issuer: a token must not
        # outlive its `exp` by that wait.
        claims = self._validate_claims(payload, self._clock())
        # The raw `exp` (it may be fractional), so a hit ends exactly when `verify` would.
        expires = float(claims.raw["exp"] + self._leeway)
        if generation >= 0:
            # -1: the set stopped being usable meanwhile (stale past its limit). Remembered
            # under it, the token would verify from the cache for as long as none is usable.
            self._verified.put(token, (claims, generation, expires))
        return claims

    def remembered(self, token: str) -> Claims | None:
        """The claims of this exact token if it verified before and nothing has changed since;
        None if it must be verified (`verify`). Synchronous, so a hot route can ask first
        and create no coroutine for a token it has seen.

        Still valid while unexpired (the same `exp` rule with leeway) and while the key set
        holds the same keys: a key that left the JWKS, or was replaced, ends it.
        `nbf` and `iat` only become more valid with time, so they need no second look.
        """
        cached = self._verified.get(token)
        if cached is None:
            return None
        claims, generation, expires = cached
        if self._clock() < expires and generation == self.key_set.generation:
            self.stats.cache_hits += 1
            return claims
        self._verified.drop(token)
        return None

    def _validate_claims(self, payload: bytes, now: float) -> Claims:
        """Every claim rule (RFC 7519 section 4.1, RFC 9068 section 2.2), checked in turn."""
        try:
            claims = orjson.loads(payload)
        except ValueError:  # orjson.JSONDecodeError, deep nesting included
            raise InvalidToken("the token payload is not JSON", reason="malformed") from None
        if not isinstance(claims, dict):
            raise InvalidToken("the token payload is not a JSON object", reason="malformed")
        missing = [name for name in REQUIRED_CLAIMS if claims.get(name) is None]
        if missing:
            raise InvalidToken(
                f"the token lacks required claims: {','.join(sorted(missing))}",
                reason="missing_claim",
            )
        iss, sub, jti, aud = claims["iss"], claims["sub"], claims["jti"], claims["aud"]
        if not isinstance(iss, str) or iss != self.issuer:
            raise _invalid_claim("iss")
        if not isinstance(sub, str) or sub == "":
            raise _invalid_claim("sub")
        if not isinstance(jti, str) or jti == "":
            raise _invalid_claim("jti")
        if isinstance(aud, str):
            audience_ok = aud != "" and (self.audience is None or aud == self.audience)
        elif isinstance(aud, list) and all(isinstance(value, str) for value in aud):
            audience_ok = aud != [] and (self.audience is None or self.audience in aud)
        else:
            audience_ok = False
        if not audience_ok:
            raise _invalid_claim("aud")
        exp = claims["exp"]
        if not _numeric_date(exp):
            raise _not_a_date("exp")
        # RFC 7519 sections 4.1.4, 4.1.5: against the time itself, not whole seconds (a
        # fractional exp would last up to 1 s longer). Integer claims are judged as they were
        # against int(now), the leeway on their side keeping the comparison exact.
        if exp + self._leeway <= now:
            raise InvalidToken("the token has expired", reason="expired")
        for name in ("nbf", "iat"):  # nbf is optional, iat required; neither in the future
            if name in claims:
                value = claims[name]
                if not _numeric_date(value):
                    raise _not_a_date(name)
                if value - self._leeway > now:
                    raise _invalid_claim(name)
        scope, client_id = claims.get("scope", ""), claims["client_id"]
        if client_id in _BLANK:
            raise _invalid_claim("client_id")
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
            sub=sub,
            client_id=client_id,
            # RFC 6749 section 3.3: delimited by SP alone (str.split() also splits on tabs,
            # NBSP, U+0085...: "read\u00a0admin" would have granted "admin").
            scope=frozenset(token for token in scope.split(" ") if token),
            exp=int(exp),
            username=username,
            raw=claims,
        )


# RFC 7493 section 2.2: integers beyond 2**53 - 1 lose precision in other JSON parsers.
_NUMERIC_DATE_LIMIT = 2**53 - 1


def _numeric_date(value: object) -> bool:
    """A JSON number (RFC 7519 NumericDate) within I-JSON's exact integer range: not a bool,
    not NaN, and one that every other parser reads alike and `/users/me` can write back."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -_NUMERIC_DATE_LIMIT <= value <= _NUMERIC_DATE_LIMIT


def _invalid_claim(claim: str) -> InvalidToken:
    return InvalidToken(_claim_problem(claim), reason="invalid_claim")


def _not_a_date(claim: str) -> InvalidToken:
    """A date claim of the wrong type or range: said so, not that the token is not yet valid."""
    return InvalidToken(
        f"the token's {claim} claim must be a NumericDate: a JSON number of magnitude at most "
        "2**53 - 1",
        reason="invalid_claim",
    )


def _read_header(token: str) -> str:
    """Parse and vet the protected header before any key is looked up; its `kid`."""
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
    return _vetted_kid(parts[0])


# The issuer's tokens share a handful of headers (one per key), so a header seen before is
# not parsed again: a pure function of the segment's text, remembered only when it passed.
@functools.lru_cache(maxsize=256)
def _vetted_kid(segment: str) -> str:
    try:
        header = orjson.loads(b64url_decode(segment))
    except ValueError:  # bad base64url, or orjson.JSONDecodeError (deep nesting included)
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
    return kid


def _verify_signature(token: str, key: RSAKey) -> bytes:
    """The payload of a token whose RS256 signature `key` verifies (header already vetted)."""
    signing_input, _, signature_segment = token.rpartition(".")
    payload_segment = signing_input.partition(".")[2]
    try:
        signature = b64url_decode(signature_segment)
        payload = b64url_decode(payload_segment)
    except ValueError:
        raise InvalidToken("the token is malformed", reason="malformed") from None
    try:
        # OpenSSL's RSASSA-PKCS1-v1_5 check (RFC 8017 section 8.2.2: length, padding and the
        # SHA-256 DigestInfo) handing back the signed digest, compared below. The same check
        # as `verify`, which releases the GIL for its ~25 us: under load another thread of the
        # server then takes it, and getting it back cost more than the verification (a token
        # never seen before: 208 -> 182 us of CPU a request). An RSAKey's public key is an
        # RSA public key (no isinstance here: an ABC check costs ~5 us).
        digest = key.public_key.recover_data_from_signature(signature, _PKCS1V15, _SHA256)
    except InvalidSignature:
        raise InvalidToken("the token's signature does not verify", reason="signature") from None
    # ASCII: b64url_decode accepted both segments, and the dot between them.
    if not hmac.compare_digest(digest, hashlib.sha256(signing_input.encode("ascii")).digest()):
        raise InvalidToken("the token's signature does not verify", reason="signature")
    return payload


def _claim_problem(claim: str) -> str:
    if claim == "iss":
        return "the token was issued by another issuer"
    if claim == "aud":
        return "the token is not intended for this audience"
    if claim in ("nbf", "iat"):
        return f"the token is not valid yet ({claim} is in the future)"
    return f"the token's {claim} claim is invalid"
