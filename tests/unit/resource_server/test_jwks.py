"""`RemoteKeySet` cache policy, with a fake clock and respx standing in for the issuer."""

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from resource_server.errors import KeySetUnavailable
from resource_server.jwks import CachePolicy, RemoteKeySet
from tests.support import FakeClock, b64url, public_jwk

ISSUER = "https://issuer.test"
METADATA_URL = f"{ISSUER}/.well-known/oauth-authorization-server"
JWKS_URL = f"{ISSUER}/keys"


def jwks(*keys: tuple[rsa.RSAPrivateKey, str]) -> dict[str, object]:
    return {"keys": [public_jwk(key, kid) for key, kid in keys]}


@pytest.fixture
def metadata_route(respx_mock: respx.MockRouter) -> respx.Route:
    return respx_mock.get(METADATA_URL).respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})


@pytest.fixture
def jwks_route(
    respx_mock: respx.MockRouter, metadata_route: respx.Route, rsa_private_key: rsa.RSAPrivateKey
) -> respx.Route:
    return respx_mock.get(JWKS_URL).respond(
        json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=600"}
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def key_set(http: httpx.AsyncClient, clock: FakeClock) -> RemoteKeySet:
    return RemoteKeySet(ISSUER, client=http, policy=CachePolicy(), clock=clock)


async def test_jwks_uri_comes_from_the_issuer_metadata(key_set, jwks_route, metadata_route):
    assert await key_set.key("k1") is not None
    assert metadata_route.call_count == 1
    assert jwks_route.call_count == 1


async def test_metadata_naming_another_issuer_is_not_used(respx_mock, key_set):
    respx_mock.get(METADATA_URL).respond(json={"issuer": "https://evil.test", "jwks_uri": JWKS_URL})
    jwks_route = respx_mock.get(JWKS_URL).respond(json={"keys": []})
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    assert jwks_route.call_count == 0


async def test_missing_metadata_falls_back_to_the_well_known_jwks(
    respx_mock, key_set, rsa_private_key
):
    respx_mock.get(METADATA_URL).respond(404)
    route = respx_mock.get(f"{ISSUER}/.well-known/jwks.json").respond(
        json=jwks((rsa_private_key, "k1"))
    )
    assert await key_set.key("k1") is not None
    assert route.call_count == 1


async def test_fresh_keys_are_served_from_memory(key_set, jwks_route, clock):
    await key_set.key("k1")
    for _ in range(100):
        clock.advance(1)
        assert await key_set.key("k1") is not None
    assert jwks_route.call_count == 1


@pytest.mark.parametrize(
    ("cache_control", "expected_ttl"),
    [
        ("max-age=600", 600),
        ("public, max-age=5", 60),
        ("max-age=999999", 86400),
        (None, 300),
        ("no-store", 60),
    ],
)
async def test_lifetime_is_max_age_clamped_to_bounds(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, cache_control, expected_ttl
):
    headers = {"Cache-Control": cache_control} if cache_control else {}
    route = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")), headers=headers)
    await key_set.key("k1")
    clock.advance(expected_ttl - 0.5)
    key_set._policy = CachePolicy(refresh_ahead=1.0)  # isolate expiry from refresh-ahead
    await key_set.key("k1")
    assert route.call_count == 1
    clock.advance(1)
    await key_set.key("k1")
    assert route.call_count == 2


async def test_expired_set_is_revalidated_with_etag(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    route = respx_mock.get(JWKS_URL).mock(
        side_effect=[
            httpx.Response(
                200,
                json=jwks((rsa_private_key, "k1")),
                headers={"ETag": '"v1"', "Cache-Control": "max-age=100"},
            ),
            httpx.Response(304, headers={"ETag": '"v1"', "Cache-Control": "max-age=100"}),
        ]
    )
    await key_set.key("k1")
    clock.advance(101)
    assert await key_set.key("k1") is not None
    assert route.calls[1].request.headers["If-None-Match"] == '"v1"'


async def test_refresh_ahead_runs_in_the_background(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key
):
    release = asyncio.Event()
    responses = iter(
        [
            httpx.Response(
                200, json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=100"}
            ),
            httpx.Response(
                200,
                json=jwks((rsa_private_key, "k1"), (other_private_key, "k2")),
                headers={"Cache-Control": "max-age=100"},
            ),
        ]
    )

    async def respond(request: httpx.Request) -> httpx.Response:
        if route.call_count > 1:  # the refresh, not the first fetch, hangs until released
            await release.wait()
        return next(responses)

    route = respx_mock.get(JWKS_URL).mock(side_effect=respond)
    await key_set.key("k1")
    clock.advance(85)  # past 80 % of the lifetime, before expiry
    # The request is answered from memory while the refresh waits on the issuer.
    assert await asyncio.wait_for(key_set.key("k1"), timeout=1) is not None
    assert route.call_count == 2
    release.set()
    await asyncio.sleep(0.01)
    assert await key_set.key("k2") is not None  # the background refresh landed
    assert route.call_count == 2


async def test_concurrent_unknown_kids_share_one_fetch(key_set, jwks_route, clock):
    await key_set.key("k1")
    clock.advance(31)
    results = await asyncio.gather(*(key_set.key(f"random-{i}") for i in range(100)))
    assert results == [None] * 100
    assert jwks_route.call_count == 2


async def test_unknown_kid_refresh_respects_cooldown(key_set, jwks_route, clock):
    await key_set.key("k1")
    assert await key_set.key("nope") is None  # within 30 s of the first fetch: no refresh
    assert jwks_route.call_count == 1
    clock.advance(31)
    assert await key_set.key("nope") is None
    assert jwks_route.call_count == 2
    clock.advance(10)
    assert await key_set.key("nope-again") is None
    assert jwks_route.call_count == 2


async def test_unknown_kid_is_found_after_a_refresh(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key
):
    respx_mock.get(JWKS_URL).mock(
        side_effect=[
            httpx.Response(200, json=jwks((rsa_private_key, "k1"))),
            httpx.Response(200, json=jwks((rsa_private_key, "k1"), (other_private_key, "k2"))),
        ]
    )
    await key_set.key("k1")
    clock.advance(31)
    assert await key_set.key("k2") is not None


async def test_replaced_key_material_under_a_known_kid_is_reloaded_once(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key
):
    route = respx_mock.get(JWKS_URL).mock(
        side_effect=[
            httpx.Response(200, json=jwks((rsa_private_key, "k1"))),
            httpx.Response(200, json=jwks((other_private_key, "k1"))),
        ]
    )
    old = await key_set.key("k1")
    assert await key_set.key("k1", rejected=old) is None  # cooldown holds
    assert route.call_count == 1
    clock.advance(31)
    replacement = await key_set.key("k1", rejected=old)
    assert replacement is not None and replacement.as_dict() != old.as_dict()


async def test_outage_keeps_the_last_good_set_and_recovery_picks_up_new_keys(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key, caplog
):
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=httpx.ConnectError("refused"))
    with caplog.at_level(logging.INFO, logger="resource_server.jwks"):
        for _ in range(20):  # 20 minutes of outage, well past expiry
            clock.advance(60)
            assert await key_set.key("k1") is not None
        failures = route.call_count - 1
        assert 1 <= failures <= 12  # backoff, not a fetch per request
        route.mock(
            return_value=httpx.Response(
                200, json=jwks((rsa_private_key, "k1"), (other_private_key, "k2"))
            )
        )
        clock.advance(61)  # past the longest backoff
        await key_set.key("k1")
        await asyncio.sleep(0.01)  # let the background refresh land
        assert await key_set.key("k2") is not None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed" in m for m in messages) == 1  # once per state change
    assert sum("recovered" in m for m in messages) == 1


async def test_stale_set_is_dropped_after_the_stale_limit(
    respx_mock, metadata_route, http, clock, rsa_private_key
):
    key_set = RemoteKeySet(ISSUER, client=http, policy=CachePolicy(stale_if_error=600), clock=clock)
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=httpx.ConnectError("refused"))
    clock.advance(60 + 599)
    assert await key_set.key("k1") is not None
    clock.advance(2)
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    assert not key_set.ready


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b'{"keys": "nope"}',
        b"[]",
        b'{"keys": []}',
        b'{"keys": [{"kty": "RSA", "kid": "k1", "n": "!!", "e": "AQAB"}]}',
        b'{"keys": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["html", "keys-not-list", "array", "empty", "bad-modulus", "deeply-nested"],
)
async def test_garbage_jwks_keeps_the_old_set(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, body
):
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.respond(content=body, headers={"Content-Type": "application/json"})
    clock.advance(61)
    assert await key_set.key("k1") is not None
    assert route.call_count == 2


async def test_unusable_keys_are_skipped_not_fatal(
    respx_mock, metadata_route, key_set, rsa_private_key
):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    entries = [
        public_jwk(small, "too-small"),
        {
            "kty": "EC",
            "kid": "ec",
            "crv": "P-256",
            "x": b64url(ec_key.x.to_bytes(32, "big")),
            "y": b64url(ec_key.y.to_bytes(32, "big")),
        },
        {**public_jwk(rsa_private_key, "enc"), "use": "enc"},
        {**public_jwk(rsa_private_key, "hs"), "alg": "HS256"},
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        "not-an-object",
        public_jwk(rsa_private_key, "good"),
    ]
    respx_mock.get(JWKS_URL).respond(json={"keys": entries})
    assert await key_set.key("good") is not None
    for kid in ("too-small", "ec", "enc", "hs", "sym"):
        assert await key_set.key(kid) is None


async def test_two_keys_under_one_kid_are_both_distrusted(
    respx_mock, metadata_route, key_set, rsa_private_key, other_private_key
):
    respx_mock.get(JWKS_URL).respond(
        json={
            "keys": [
                public_jwk(rsa_private_key, "dup"),
                public_jwk(other_private_key, "dup"),
                public_jwk(rsa_private_key, "ok"),
            ]
        }
    )
    assert await key_set.key("ok") is not None
    assert await key_set.key("dup") is None


async def test_oversized_jwks_response_is_refused(
    respx_mock, metadata_route, key_set, rsa_private_key
):
    body = json.dumps({**jwks((rsa_private_key, "k1")), "pad": "x" * (1024 * 1024)}).encode()
    respx_mock.get(JWKS_URL).respond(content=body, headers={"Content-Type": "application/json"})
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")


async def test_unavailable_before_the_first_success_with_retry_after(respx_mock, key_set, clock):
    route = respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectTimeout("slow"))
    with pytest.raises(KeySetUnavailable) as caught:
        await key_set.key("k1")
    assert caught.value.status_code == 503
    assert int(caught.value.headers["Retry-After"]) >= 1
    # Within the backoff, callers are answered at once without another fetch.
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    assert route.call_count == 1


async def test_backoff_grows_between_failures(respx_mock, key_set, clock):
    route = respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("down"))
    attempts_at = []
    for _ in range(400):  # 400 s of one request per second
        before = route.call_count
        with pytest.raises(KeySetUnavailable):
            await key_set.key("k1")
        if route.call_count > before:
            attempts_at.append(clock())
        clock.advance(1)
    gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
    assert len(attempts_at) < 20
    assert gaps[-1] >= 30  # capped at retry_max (60 s) with jitter down to half


@pytest.mark.parametrize(
    "url", ["http://issuer.example.com", "ftp://issuer.test", "http://10.0.0.1:8000"]
)
def test_plain_http_is_refused_for_non_loopback_issuers(http, url):
    with pytest.raises(ValueError, match="https"):
        RemoteKeySet(url, client=http)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
)
def test_plain_http_is_allowed_on_loopback(http, url):
    RemoteKeySet(url, client=http)


def test_plain_http_elsewhere_needs_explicit_permission(http):
    RemoteKeySet("http://issuer:8000", client=http, allow_insecure_http=True)


async def test_run_fetches_in_the_background_and_marks_ready(jwks_route, http):
    key_set = RemoteKeySet(ISSUER, client=http)
    task = asyncio.create_task(key_set.run())
    try:
        for _ in range(100):
            if key_set.ready:
                break
            await asyncio.sleep(0.01)
        assert key_set.ready
    finally:
        task.cancel()
