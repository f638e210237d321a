"""Token rules of `Verifier.verify`: every rejection is its own case (RFC 8725, RFC 9068)."""

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from resource_server.errors import InvalidToken, KeySetUnavailable
from resource_server.jwks import CachePolicy, RemoteKeySet
from resource_server.stats import VerifierStats
from resource_server.verify import Verifier
from tests.support import FakeClock, b64url, public_jwk, sign_jwt

ISSUER = "https://issuer.test"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
KID = "key-1"


@pytest.fixture
def jwks_route(respx_mock: respx.MockRouter, rsa_private_key: rsa.RSAPrivateKey) -> respx.Route:
    respx_mock.get(f"{ISSUER}/.well-known/oauth-authorization-server").respond(
        json={"issuer": ISSUER, "jwks_uri": JWKS_URL}
    )
    return respx_mock.get(JWKS_URL).respond(
        json={"keys": [public_jwk(rsa_private_key, KID)]},
        headers={"Cache-Control": "public, max-age=600"},
    )


@pytest.fixture
async def verifier(clock: FakeClock, jwks_route: respx.Route) -> AsyncIterator[Verifier]:
    async with httpx.AsyncClient() as client:
        key_set = RemoteKeySet(
            ISSUER, client=client, policy=CachePolicy(), clock=clock, sleep=clock.sleep
        )
        yield Verifier(key_set, ISSUER, "api", clock=clock)


def claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock())
    base = {
        "iss": ISSUER,
        "sub": "42",
        "aud": "api",
        "exp": now + 300,
        "iat": now,
        "jti": "jti-1",
        "client_id": "public",
        "scope": "read write",
        "preferred_username": "johndoe",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def header(**overrides: Any) -> dict[str, Any]:
    base = {"alg": "RS256", "typ": "at+jwt", "kid": KID}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


async def assert_rejected(verifier: Verifier, token: str, fragment: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert fragment in caught.value.description
    assert token not in caught.value.description


async def test_valid_token_yields_claims(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock))
    result = await verifier.verify(token)
    assert (result.sub, result.username, result.client_id) == ("42", "johndoe", "public")
    assert result.scope == {"read", "write"}
    assert result.exp == int(clock()) + 300


async def test_scope_tokens_are_never_empty(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, scope=" read  write "))
    assert (await verifier.verify(token)).scope == {"read", "write"}


@pytest.mark.parametrize("separator", ["\t", "\n", "\x1f", "\x85", "\u00a0", "\u2003"])
async def test_scope_is_split_on_spaces_only(verifier, rsa_private_key, clock, separator):
    # RFC 6749 section 3.3: scope tokens are delimited by SP alone. str.split() also splits on
    # tabs, NBSP, U+0085, ..., so "read<NBSP>admin" granted "admin", a scope never issued.
    scope = f"read{separator}admin write"
    token = sign_jwt(rsa_private_key, header(), claims(clock, scope=scope))
    result = await verifier.verify(token)
    assert result.scope == {f"read{separator}admin", "write"}
    assert "admin" not in result.scope


async def test_audience_list_containing_ours_is_accepted(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, aud=["other", "api"]))
    assert (await verifier.verify(token)).sub == "42"


@pytest.mark.parametrize("typ", ["application/at+jwt", "AT+JWT", "Application/At+Jwt"])
async def test_at_jwt_typ_is_accepted_in_any_case_and_with_the_prefix(
    verifier, rsa_private_key, clock, typ
):
    # RFC 7515 section 4.1.9: typ is a media type, and media types compare case-insensitively.
    token = sign_jwt(rsa_private_key, header(typ=typ), claims(clock))
    assert (await verifier.verify(token)).sub == "42"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2ln"])
async def test_alg_none_in_any_spelling_is_rejected(verifier, clock, alg, signature):
    head = b64url(json.dumps(header(alg=alg)).encode())
    body = b64url(json.dumps(claims(clock)).encode())
    token = f"{head}.{body}.{signature}"
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_hs256_keyed_with_our_public_key_is_rejected(verifier, rsa_private_key, clock):
    # The classic algorithm-confusion attack (RFC 8725 section 2.1).
    secret = rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64url(json.dumps(header(alg='HS256')).encode())}."
        f"{b64url(json.dumps(claims(clock)).encode())}"
    )
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(signing_input.encode())
    token = f"{signing_input}.{b64url(mac.finalize())}"
    await assert_rejected(verifier, token, "alg must be one of RS256")


@pytest.mark.parametrize(
    "key_header",
    [
        lambda jwk: {"jwk": jwk},
        lambda jwk: {"jku": "https://attacker.test/jwks.json"},
        lambda jwk: {"x5u": "https://attacker.test/cert.pem"},
        lambda jwk: {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ],
    ids=["jwk", "jku", "x5u", "x5c"],
)
async def test_embedded_key_sources_are_ignored(
    verifier, other_private_key, clock, jwks_route, key_header
):
    attacker_jwk = public_jwk(other_private_key, KID)
    token = sign_jwt(other_private_key, header(**key_header(attacker_jwk)), claims(clock))
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    # Only the configured JWKS was ever asked; respx would fail on any other URL.
    assert jwks_route.called


@pytest.mark.parametrize(
    "kid", ["../../../../etc/passwd", "' OR 1=1 --", "https://attacker.test/k"]
)
async def test_kid_is_only_a_dictionary_key(verifier, rsa_private_key, clock, kid):
    token = sign_jwt(rsa_private_key, header(kid=kid), claims(clock))
    await assert_rejected(verifier, token, "key the issuer does not publish")


async def test_foreign_key_under_our_kid_is_rejected(verifier, other_private_key, clock):
    token = sign_jwt(other_private_key, header(), claims(clock))
    await assert_rejected(verifier, token, "signature does not verify")


@pytest.mark.parametrize("extra", [".", ".e30", ".e30.e30"], ids=["empty", "four", "five"])
async def test_a_token_of_more_than_three_segments_is_malformed(
    verifier, rsa_private_key, clock, extra
):
    # Said to be no compact JWS (a JWE has five), not a payload that failed to decode.
    token = sign_jwt(rsa_private_key, header(), claims(clock)) + extra
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "malformed"
    assert "compact form" in caught.value.description


async def test_tampered_payload_is_rejected(verifier, rsa_private_key, clock):
    head, _, signature = sign_jwt(rsa_private_key, header(), claims(clock)).split(".")
    forged = b64url(json.dumps(claims(clock, sub="1", scope="admin")).encode())
    await assert_rejected(verifier, f"{head}.{forged}.{signature}", "signature does not verify")


async def test_stripped_signature_is_rejected(verifier, rsa_private_key, clock):
    head, payload, _ = sign_jwt(rsa_private_key, header(), claims(clock)).split(".")
    await assert_rejected(verifier, f"{head}.{payload}.", "no signature")


# RFC 8017 section 9.2: EM = 0x00 0x01 PS(0xff...) 0x00 DigestInfo(SHA-256) H, k bytes long.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
SHA512_DIGEST_INFO = bytes.fromhex("3051300d060960864801650304020305000440")


def raw_rsa_signature(private_key: rsa.RSAPrivateKey, encoded: bytes) -> bytes:
    """EM^d mod n as k bytes: a signature over any encoding, well-formed or not."""
    numbers = private_key.private_numbers()
    k = private_key.key_size // 8
    value = pow(int.from_bytes(encoded, "big"), numbers.d, numbers.public_numbers.n)
    return value.to_bytes(k, "big")


def encoding(digest_info: bytes, digest: bytes, k: int = 256, garbage: bytes = b"") -> bytes:
    padding_length = k - 3 - len(digest_info) - len(digest) - len(garbage)
    return b"\x00\x01" + b"\xff" * padding_length + b"\x00" + digest_info + digest + garbage


def with_signature(token: str, signature: bytes) -> str:
    return f"{token.rpartition('.')[0]}.{b64url(signature)}"


@pytest.mark.parametrize(
    "case",
    [
        "digest of other data",
        "sha512 digest info",
        "sha256 digest under another digest info",
        "garbage after the digest",  # Bleichenbacher 2006: a short PS hides trailing bytes
        "padding not 0xff",
        "block type 2",
        "leading zero byte added",
        "one byte short",
    ],
)
async def test_signatures_that_are_not_exactly_rsassa_pkcs1_v1_5_sha256_are_rejected(
    verifier, rsa_private_key, clock, case
):
    token = sign_jwt(rsa_private_key, header(), claims(clock))
    signing_input = token.rpartition(".")[0].encode()
    digest = hashlib.sha256(signing_input).digest()
    # The well-formed encoding, signed raw, verifies: the cases below differ only as named.
    good = raw_rsa_signature(rsa_private_key, encoding(SHA256_DIGEST_INFO, digest))
    assert (await verifier.verify(with_signature(token, good))).sub == "42"

    def signed(encoded: bytes) -> bytes:
        return raw_rsa_signature(rsa_private_key, encoded)

    signature = {
        "digest of other data": lambda: signed(
            encoding(SHA256_DIGEST_INFO, hashlib.sha256(b"x").digest())
        ),
        "sha512 digest info": lambda: signed(
            encoding(SHA512_DIGEST_INFO, hashlib.sha512(signing_input).digest())
        ),
        "sha256 digest under another digest info": lambda: signed(
            encoding(SHA512_DIGEST_INFO, digest)
        ),
        "garbage after the digest": lambda: signed(
            encoding(SHA256_DIGEST_INFO, digest, garbage=b"\x00" * 8)
        ),
        "padding not 0xff": lambda: signed(
            encoding(SHA256_DIGEST_INFO, digest).replace(b"\x01\xff\xff", b"\x01\xff\xfe", 1)
        ),
        "block type 2": lambda: signed(b"\x00\x02" + encoding(SHA256_DIGEST_INFO, digest)[2:]),
        # The same integer, no longer k bytes long (RFC 8017 section 8.2.2 step 1).
        "leading zero byte added": lambda: b"\x00" + good,
        "one byte short": lambda: good[1:],
    }[case]()
    await assert_rejected(verifier, with_signature(token, signature), "signature does not verify")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp": NaN}',
        b'{"exp": Infinity}',
        b'{"exp": 1e400}',
        b'{"sub": "\\ud800"}',  # a lone surrogate
        b'{"sub": "\xff"}',  # not UTF-8
        b"\xff\xfe{\x00}\x00",  # UTF-16, which JSON on the wire may not be (RFC 8259 8.1)
        b"[" * 2000,
    ],
)
async def test_payloads_that_are_not_strict_json_are_malformed(
    verifier, rsa_private_key, clock, payload
):
    # Everything else in the claims is valid: only the JSON itself is wrong.
    valid = json.dumps(claims(clock)).encode()
    body = valid[:-1] + b", " + payload[1:] if payload.startswith(b"{") else payload
    token = sign_jwt(rsa_private_key, header(), body)
    await assert_rejected(verifier, token, "payload is not JSON")


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def respelled(segment: str, how: str) -> str:
    """`segment` spelled another way that a lenient decoder reads as the same bytes."""
    if how == "standard alphabet":
        return segment.translate(str.maketrans("-_", "+/"))
    if how == "padding":
        return segment + "=" * (-len(segment) % 4)
    if how == "junk character":
        return segment[:10] + "~" + segment[10:]
    assert how == "stray final bits"  # bits past the last whole byte, which decoding drops
    return segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) ^ 1]


@pytest.mark.parametrize(
    "how", ["standard alphabet", "padding", "junk character", "stray final bits"]
)
@pytest.mark.parametrize("part", ["header", "payload", "signature"])
async def test_only_the_canonical_base64url_spelling_is_accepted(
    verifier, rsa_private_key, clock, part, how
):
    # A signed token has one spelling: each of these decodes, leniently, to the same header,
    # payload and signature bytes as the valid token.
    index = ("header", "payload", "signature").index(part)
    for n in range(64):
        # "~~~~~~" encodes with a "-"; its length n moves the segment's length mod 4.
        head = header(x="~~~~~~" + "x" * (n % 3))
        token = sign_jwt(rsa_private_key, head, claims(clock, jti="~~~~~~" + "x" * n))
        segment = token.split(".")[index]
        if len(segment) % 4 in (2, 3) and ("-" in segment or "_" in segment):
            break
    else:
        pytest.fail(f"no {part} with a - or _ and stray final bits was found to respell")
    assert (await verifier.verify(token)).sub == "42"
    parts = token.split(".")
    parts[index] = respelled(segment, how)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(".".join(parts))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "value", [[], "at+jwt", 1, None], ids=["array", "string", "number", "null"]
)
async def test_a_header_that_is_not_a_json_object_is_malformed(verifier, clock, jwks_route, value):
    token = ".".join(
        [b64url(json.dumps(value).encode()), b64url(json.dumps(claims(clock)).encode()), "c2ln"]
    )
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert (caught.value.reason, caught.value.description) == (
        "malformed",
        "the token header is not a JSON object",
    )
    assert jwks_route.call_count == 0


@pytest.mark.parametrize("kid", [None, "", 7, ["key-1"], {"kid": "key-1"}])
async def test_a_header_without_a_kid_string_is_malformed(
    verifier, rsa_private_key, clock, jwks_route, kid
):
    # Refused before any key is looked up: a missing kid never costs the issuer a fetch.
    token = sign_jwt(rsa_private_key, {**header(kid=None), "kid": kid}, claims(clock))
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert (caught.value.reason, caught.value.description) == (
        "malformed",
        "the token's header has no kid",
    )
    assert jwks_route.call_count == 0


async def test_a_header_of_exactly_the_segment_limit_is_judged(verifier, rsa_private_key, clock):
    # 4096 base64url characters encode 3072 bytes: pad the header's JSON to that size.
    short = json.dumps(header(pad=""))
    head = header(pad="x" * (3072 - len(short)))
    token = sign_jwt(rsa_private_key, head, claims(clock))
    assert len(token.split(".")[0]) == 4096
    roomy = Verifier(verifier.key_set, ISSUER, "api", max_token_bytes=16 * 1024, clock=clock)
    assert (await roomy.verify(token)).sub == "42"
    longer = sign_jwt(rsa_private_key, header(pad="x" * (3073 - len(short))), claims(clock))
    await assert_rejected(roomy, longer, "the token header is too large")


async def test_unknown_critical_header_is_rejected(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(crit=["exp"], exp=1), claims(clock))
    await assert_rejected(verifier, token, "critical header")


@pytest.mark.parametrize("claim", ["exp", "sub", "iat", "iss", "aud", "jti", "client_id"])
async def test_missing_required_claim_is_rejected(verifier, rsa_private_key, clock, claim):
    token = sign_jwt(rsa_private_key, header(), claims(clock, **{claim: None}))
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


@pytest.mark.parametrize("claim", ["exp", "sub", "iat", "iss", "aud", "jti", "client_id"])
async def test_a_required_claim_that_is_null_counts_as_missing(
    verifier, rsa_private_key, clock, claim
):
    body = {**claims(clock), claim: None}  # present in the JSON, as null
    token = sign_jwt(rsa_private_key, header(), body)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "missing_claim"
    assert f"lacks required claims: {claim}" in caught.value.description


async def test_dates_at_the_edge_of_json_exact_integers_are_accepted(
    verifier, rsa_private_key, clock
):
    limit = 2**53 - 1
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=limit, nbf=-limit))
    assert (await verifier.verify(token)).exp == limit


async def test_expired_token_is_rejected(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) - 61))
    await assert_rejected(verifier, token, "expired")


@pytest.mark.parametrize("exp", [2**64, 2**53, 1.7e308, -(2**64)])
async def test_an_exp_beyond_json_exact_integers_is_invalid(verifier, rsa_private_key, clock, exp):
    # 2**64 verified, and /users/me then failed to write it back: a 500.
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=exp))
    await assert_rejected(verifier, token, "exp claim must be a NumericDate")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_an_nbf_or_iat_beyond_json_exact_integers_is_invalid(
    verifier, rsa_private_key, clock, claim
):
    token = sign_jwt(rsa_private_key, header(), claims(clock, **{claim: -1e300}))
    with pytest.raises(InvalidToken, match=claim):
        await verifier.verify(token)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("nbf", "0"), ("iat", True), ("nbf", -(2**60)), ("nbf", None), ("exp", "1"), ("iat", [])],
    ids=["nbf-string", "iat-bool", "nbf-huge", "nbf-null", "exp-string", "iat-list"],
)
async def test_a_date_claim_of_the_wrong_type_says_so(
    verifier, rsa_private_key, clock, claim, value
):
    # The audit: nbf "0", iat true and nbf -2**60 were described as "the token is not valid
    # yet (nbf/iat is in the future)".
    payload = {**claims(clock), claim: value}  # a null nbf kept, not dropped
    token = sign_jwt(rsa_private_key, header(), payload)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "invalid_claim"
    assert caught.value.description == (
        f"the token's {claim} claim must be a NumericDate: a JSON number of magnitude at most "
        "2**53 - 1"
    )


async def test_expiry_is_judged_after_waiting_for_the_issuers_keys(
    verifier, rsa_private_key, clock, jwks_route
):
    # The issuer takes 4 s to answer; the token is 1 s from the end of its leeway meanwhile.
    answer = jwks_route.return_value
    jwks_route.return_value = None

    def slow(request: httpx.Request) -> httpx.Response:
        clock.advance(4)
        return answer

    jwks_route.side_effect = slow
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) - 59))
    await assert_rejected(verifier, token, "expired")


async def test_expiry_within_leeway_is_accepted(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) - 30))
    assert (await verifier.verify(token)).sub == "42"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_future_nbf_or_iat_beyond_leeway_is_rejected(verifier, rsa_private_key, clock, claim):
    token = sign_jwt(rsa_private_key, header(), claims(clock, **{claim: int(clock()) + 120}))
    await assert_rejected(verifier, token, "not valid yet")


async def test_nbf_within_leeway_is_accepted(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, nbf=int(clock()) + 30))
    assert (await verifier.verify(token)).sub == "42"


async def test_a_fractional_exp_ends_when_it_says(verifier, rsa_private_key, clock):
    # The audit: exp was compared with int(now), so exp = T + 10.25 was accepted until T + 11.
    strict = Verifier(verifier.key_set, ISSUER, "api", leeway=0, clock=clock)
    exp = int(clock()) + 10.25
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=exp))
    clock.advance(exp - 0.5 - clock())
    assert (await strict.verify(token)).exp == int(exp)
    clock.advance(0.4)  # exp - 0.1: still valid, answered by the cache
    hits = strict.stats.cache_hits
    assert (await strict.verify(token)).sub == "42"
    assert strict.stats.cache_hits == hits + 1
    clock.advance(0.2)  # exp + 0.1: the cache and a fresh check agree it has expired
    await assert_rejected(strict, token, "expired")
    fresh = Verifier(verifier.key_set, ISSUER, "api", leeway=0, clock=clock)
    await assert_rejected(fresh, token, "expired")


async def test_a_fractional_exp_first_seen_just_before_it_is_accepted(
    verifier, rsa_private_key, clock
):
    # Judged against the time itself on a first check too, not against whole seconds.
    strict = Verifier(verifier.key_set, ISSUER, "api", leeway=0, clock=clock)
    exp = int(clock()) + 10.25
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=exp))
    clock.advance(exp - 0.1 - clock())
    assert (await strict.verify(token)).sub == "42"


async def test_a_fractional_nbf_is_valid_from_when_it_says(verifier, rsa_private_key, clock):
    # It was refused up to 1 s after it became valid.
    strict = Verifier(verifier.key_set, ISSUER, "api", leeway=0, clock=clock)
    nbf = int(clock()) + 10.25
    token = sign_jwt(rsa_private_key, header(), claims(clock, nbf=nbf))
    clock.advance(nbf - 0.1 - clock())
    await assert_rejected(strict, token, "nbf")
    clock.advance(0.2)
    assert (await strict.verify(token)).sub == "42"


@pytest.mark.parametrize(
    ("claim", "offset", "valid_from", "valid_until"),
    [("exp", 0, None, 60), ("nbf", 61, 1, None), ("iat", 61, 1, None)],
)
async def test_integer_dates_are_judged_to_the_second_with_leeway_as_before(
    verifier, rsa_private_key, clock, claim, offset, valid_from, valid_until
):
    # Our issuer's claims are integers: their judgement must not move by a fraction.
    start = clock.now = float(int(clock()))
    token = sign_jwt(rsa_private_key, header(), claims(clock, **{claim: int(start) + offset}))
    for elapsed in (0, 0.5, 0.999, 1, 59.999, 60, 60.5):
        clock.now = start + elapsed
        fresh = Verifier(verifier.key_set, ISSUER, "api", clock=clock)
        valid = (valid_from is None or elapsed >= valid_from) and (
            valid_until is None or elapsed < valid_until
        )
        if valid:
            assert (await fresh.verify(token)).sub == "42", elapsed
        else:
            with pytest.raises(InvalidToken):
                await fresh.verify(token)


@pytest.mark.parametrize(
    ("claim", "value", "problem"),
    [
        ("sub", "", "the token's sub claim is invalid"),
        ("sub", 42, "the token's sub claim is invalid"),
        ("jti", "", "the token's jti claim is invalid"),
        ("jti", 1, "the token's jti claim is invalid"),
        ("client_id", "", "the token's client_id claim is invalid"),
        ("client_id", [], "the token's client_id claim is invalid"),
        ("client_id", {}, "the token's client_id claim is invalid"),
        ("client_id", 7, "the token's scope and client_id must be strings"),
        ("scope", ["read"], "the token's scope and client_id must be strings"),
        ("preferred_username", 5, "the token's preferred_username must be a string"),
    ],
)
async def test_a_claim_of_the_wrong_type_or_blank_is_invalid(
    verifier, rsa_private_key, clock, claim, value, problem
):
    token = sign_jwt(rsa_private_key, header(), claims(clock, **{claim: value}))
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert (caught.value.reason, caught.value.description) == ("invalid_claim", problem)


@pytest.mark.parametrize("aud", ["", [], ["api", 1], [["api"]], {"api": "api"}, 1])
@pytest.mark.parametrize("audience", ["api", None])
async def test_an_audience_that_is_blank_or_not_strings_is_refused(
    verifier, rsa_private_key, clock, aud, audience
):
    configured = Verifier(verifier.key_set, ISSUER, audience, clock=clock)
    token = sign_jwt(rsa_private_key, header(), claims(clock, aud=aud))
    await assert_rejected(configured, token, "not intended for this audience")


async def test_an_audience_list_without_ours_is_refused(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, aud=["other", "billing"]))
    await assert_rejected(verifier, token, "not intended for this audience")


@pytest.mark.parametrize("aud", ["billing", ["billing"], ["other", "billing"]])
async def test_without_a_configured_audience_any_audience_is_accepted(
    verifier, rsa_private_key, clock, aud
):
    # The issuer's own endpoints (/userinfo, /introspect) take tokens for every audience.
    any_audience = Verifier(verifier.key_set, ISSUER, None, clock=clock)
    token = sign_jwt(rsa_private_key, header(), claims(clock, aud=aud))
    assert (await any_audience.verify(token)).sub == "42"


async def test_wrong_issuer_is_rejected(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, iss="https://evil.test"))
    await assert_rejected(verifier, token, "another issuer")


async def test_wrong_audience_is_rejected(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, aud="billing"))
    await assert_rejected(verifier, token, "audience")


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt2"])
async def test_typ_other_than_at_jwt_is_rejected(verifier, rsa_private_key, clock, typ):
    token = sign_jwt(rsa_private_key, header(typ=typ), claims(clock))
    await assert_rejected(verifier, token, "typ must be at+jwt")


async def test_oversized_token_is_refused_before_parsing(
    verifier, rsa_private_key, clock, jwks_route
):
    token = sign_jwt(rsa_private_key, header(), claims(clock, pad="x" * 9000))
    await assert_rejected(verifier, token, "larger than 8192 bytes")
    assert jwks_route.call_count == 0


async def test_a_token_of_exactly_the_size_limit_is_judged(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock))
    at_limit = Verifier(verifier.key_set, ISSUER, "api", max_token_bytes=len(token), clock=clock)
    assert (await at_limit.verify(token)).sub == "42"
    below = Verifier(verifier.key_set, ISSUER, "api", max_token_bytes=len(token) - 1, clock=clock)
    await assert_rejected(below, token, f"larger than {len(token) - 1} bytes")


@pytest.mark.parametrize("leeway", [-1, 61])
def test_a_leeway_outside_0_to_60_seconds_is_refused(verifier, leeway):
    with pytest.raises(ValueError, match="leeway must be between 0 and 60 seconds"):
        Verifier(verifier.key_set, ISSUER, "api", leeway=leeway)


@pytest.mark.parametrize("leeway", [0, 60])
def test_a_leeway_of_0_to_60_seconds_is_taken(verifier, leeway):
    Verifier(verifier.key_set, ISSUER, "api", leeway=leeway)


async def test_payload_that_is_not_an_object_is_rejected(verifier, rsa_private_key):
    token = sign_jwt(rsa_private_key, header(), b"[1, 2, 3]")
    await assert_rejected(verifier, token, "not a JSON object")


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    token=st.one_of(
        st.text(max_size=300),
        st.lists(st.text(max_size=80), min_size=1, max_size=5).map(".".join),
        st.lists(st.binary(max_size=60).map(b64url), min_size=3, max_size=3).map(".".join),
    )
)
async def test_arbitrary_strings_only_ever_raise_invalid_token(verifier, token):
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_key_replaced_under_the_same_kid_verifies_after_one_background_refresh(
    respx_mock, rsa_private_key, other_private_key, clock
):
    respx_mock.get(f"{ISSUER}/.well-known/oauth-authorization-server").respond(
        json={"issuer": ISSUER, "jwks_uri": JWKS_URL}
    )
    route = respx_mock.get(JWKS_URL).mock(
        side_effect=[
            httpx.Response(200, json={"keys": [public_jwk(rsa_private_key, KID)]}),
            httpx.Response(200, json={"keys": [public_jwk(other_private_key, KID)]}),
        ]
    )
    async with httpx.AsyncClient() as client:
        key_set = RemoteKeySet(ISSUER, client=client, clock=clock, sleep=clock.sleep)
        verifier = Verifier(key_set, ISSUER, "api", clock=clock)
        assert (await verifier.verify(sign_jwt(rsa_private_key, header(), claims(clock)))).sub
        token = sign_jwt(other_private_key, header(), claims(clock))
        await assert_rejected(verifier, token, "signature does not verify")  # within cooldown
        assert route.call_count == 1
        clock.advance(31)
        # Keys are held, so this caller does not wait: refused, and the refresh starts.
        await assert_rejected(verifier, token, "signature does not verify")
        while key_set._pending is not None:
            await key_set._pending
        assert route.call_count == 2
        assert (await verifier.verify(token)).sub == "42"


class ReplacingKeySource:
    """A key source that replaced the key it first hands out (the same kid, new material)."""

    def __init__(self, first: rsa.RSAPrivateKey, replacement: rsa.RSAPrivateKey | None):
        self.first = RSAKey.import_key(public_jwk(first, KID))
        self.replacement = replacement and RSAKey.import_key(public_jwk(replacement, KID))
        self.rejected: list[RSAKey | None] = []
        self.generation = 1

    async def key(self, kid: str, rejected: RSAKey | None = None) -> RSAKey | None:
        if rejected is None:
            return self.first
        self.rejected.append(rejected)
        return self.replacement


async def test_a_key_the_source_replaced_after_handing_it_out_verifies_the_token(
    rsa_private_key, other_private_key, clock
):
    source = ReplacingKeySource(rsa_private_key, other_private_key)
    verifier = Verifier(source, ISSUER, "api", clock=clock)
    token = sign_jwt(other_private_key, header(), claims(clock))
    assert (await verifier.verify(token)).sub == "42"
    assert source.rejected == [source.first]  # asked again, naming the key that failed


async def test_a_failed_signature_is_refused_when_the_source_has_no_other_key(
    rsa_private_key, other_private_key, clock
):
    source = ReplacingKeySource(rsa_private_key, None)
    verifier = Verifier(source, ISSUER, "api", clock=clock)
    await assert_rejected(
        verifier, sign_jwt(other_private_key, header(), claims(clock)), "signature does not verify"
    )
    assert source.rejected == [source.first]


class UnusableAfterLookup(ReplacingKeySource):
    """A key source whose set stops being usable (stale past its limit) right after handing
    out the key: its generation is then -1, as `RemoteKeySet.generation` says."""

    async def key(self, kid: str, rejected: RSAKey | None = None) -> RSAKey | None:
        self.generation = -1
        return self.first


async def test_a_token_verified_as_the_key_set_became_unusable_is_not_remembered(
    rsa_private_key, clock
):
    # The review: remembered under -1, the token verified from the cache for as long as no
    # set was usable (50 minutes into an issuer outage), where any other got 503.
    verifier = Verifier(UnusableAfterLookup(rsa_private_key, None), ISSUER, "api", clock=clock)
    token = sign_jwt(rsa_private_key, header(), claims(clock))
    assert (await verifier.verify(token)).sub == "42"
    assert verifier.remembered(token) is None


@pytest.mark.parametrize("passed", [None, VerifierStats()])
def test_a_verifier_for_an_issuer_counts_in_the_same_stats_as_its_key_set(passed):
    verifier = Verifier.for_issuer(ISSUER, "api", stats=passed)
    assert isinstance(verifier.stats, VerifierStats)
    assert verifier.key_set.stats is verifier.stats
    assert passed is None or verifier.stats is passed


# -- verified-token cache -------------------------------------------------------------------


async def test_a_token_seen_again_is_not_verified_again(
    verifier, rsa_private_key, clock, monkeypatch
):
    import resource_server.verify as verify_module

    calls = []
    real = verify_module._verify_signature
    monkeypatch.setattr(
        verify_module, "_verify_signature", lambda t, k: calls.append(t) or real(t, k)
    )
    token = sign_jwt(rsa_private_key, header(), claims(clock))
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first
    assert len(calls) == 1


async def test_a_cached_token_still_expires(verifier, rsa_private_key, clock):
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) + 10))
    await verifier.verify(token)
    clock.advance(10 + 60)  # exp plus the full leeway
    await assert_rejected(verifier, token, "expired")


async def test_a_cached_token_is_remembered_through_the_leeway(verifier, rsa_private_key, clock):
    # The cache ends where verify would: exp plus the leeway, not exp alone.
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) + 10))
    await verifier.verify(token)
    clock.advance(10 + 59)  # past exp, within the 60 s leeway
    remembered = verifier.remembered(token)
    assert remembered is not None and remembered.sub == "42"


async def test_a_cached_token_stops_verifying_when_its_key_leaves_the_jwks(
    verifier, jwks_route, rsa_private_key, other_private_key, clock
):
    token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) + 3600))
    await verifier.verify(token)
    # The issuer drops the key (say, revoked after a compromise) and the cache expires.
    jwks_route.respond(json={"keys": [public_jwk(other_private_key, "key-2")]})
    clock.advance(601)
    await verifier.key_set.key("key-2")  # the refresh lands
    await assert_rejected(verifier, token, "does not publish")


async def test_a_cached_token_stops_verifying_when_the_key_set_is_past_stale_if_error(
    jwks_route, rsa_private_key, clock
):
    jwks_route.respond(
        json={"keys": [public_jwk(rsa_private_key, KID)]}, headers={"Cache-Control": "max-age=60"}
    )
    async with httpx.AsyncClient() as client:
        policy = CachePolicy(stale_if_error=600)
        key_set = RemoteKeySet(ISSUER, client=client, policy=policy, clock=clock, sleep=clock.sleep)
        verifier = Verifier(key_set, ISSUER, "api", clock=clock)
        token = sign_jwt(rsa_private_key, header(), claims(clock, exp=int(clock()) + 3600))
        await verifier.verify(token)
        jwks_route.mock(side_effect=httpx.ConnectError("refused"))  # the issuer goes down
        clock.advance(60 + 599)
        assert await verifier.verify(token)  # the stale set still vouches for it
        clock.advance(2)  # past stale-if-error: no key set does
        assert verifier.remembered(token) is None
        with pytest.raises(KeySetUnavailable):
            await verifier.verify(token)


async def test_the_cache_is_bounded(jwks_route, rsa_private_key, clock):
    async with httpx.AsyncClient() as client:
        verifier = Verifier(
            RemoteKeySet(ISSUER, client=client, clock=clock, sleep=clock.sleep),
            ISSUER,
            "api",
            clock=clock,
            cache_size=8,
        )
        for i in range(50):
            await verifier.verify(sign_jwt(rsa_private_key, header(), claims(clock, jti=f"j{i}")))
        assert len(verifier._verified) <= 8


@pytest.mark.parametrize("configured", ["https://idp.test/", "https://idp.test"])
async def test_the_issuer_is_compared_exactly_as_configured(
    respx_mock, rsa_private_key, clock, configured
):
    # An issuer identifier may end in "/" (many hosted ones do); it was stripped from ours, so
    # such an issuer's metadata was refused as naming another issuer, and its tokens too.
    respx_mock.get("https://idp.test/.well-known/oauth-authorization-server").respond(
        json={"issuer": configured, "jwks_uri": "https://idp.test/keys"}
    )
    respx_mock.get("https://idp.test/keys").respond(
        json={"keys": [public_jwk(rsa_private_key, KID)]}
    )
    other = "https://idp.test" if configured.endswith("/") else "https://idp.test/"
    async with httpx.AsyncClient() as client:
        key_set = RemoteKeySet(configured, client=client, clock=clock, sleep=clock.sleep)
        verifier = Verifier(key_set, configured, "api", clock=clock)
        token = sign_jwt(rsa_private_key, header(), claims(clock, iss=configured))
        assert (await verifier.verify(token)).sub == "42"
        forged = sign_jwt(rsa_private_key, header(), claims(clock, iss=other))
        await assert_rejected(verifier, forged, "another issuer")


async def test_metadata_naming_the_issuer_without_its_trailing_slash_is_refused(
    respx_mock, rsa_private_key, clock
):
    respx_mock.get("https://idp.test/.well-known/oauth-authorization-server").respond(
        json={"issuer": "https://idp.test", "jwks_uri": "https://idp.test/keys"}
    )
    respx_mock.get("https://idp.test/keys").respond(
        json={"keys": [public_jwk(rsa_private_key, KID)]}
    )
    async with httpx.AsyncClient() as client:
        key_set = RemoteKeySet("https://idp.test/", client=client, clock=clock, sleep=clock.sleep)
        verifier = Verifier(key_set, "https://idp.test/", "api", clock=clock)
        token = sign_jwt(rsa_private_key, header(), claims(clock, iss="https://idp.test"))
        with pytest.raises(KeySetUnavailable):
            await verifier.verify(token)
