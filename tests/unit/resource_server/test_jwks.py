"""`RemoteKeySet` cache policy, with a fake clock and respx standing in for the issuer."""

import asyncio
import contextlib
import gzip
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import RSAKey

from resource_server.errors import InvalidToken, KeySetUnavailable
from resource_server.jwks import MAX_KEYS, CachePolicy, KeySetStatus, RemoteKeySet
from resource_server.verify import Verifier
from tests.support import FakeClock, b64url, public_jwk, sign_jwt

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


def make_key_set(http: httpx.AsyncClient, clock: FakeClock, **policy: float) -> RemoteKeySet:
    return RemoteKeySet(
        ISSUER, client=http, policy=CachePolicy(**policy), clock=clock, sleep=clock.sleep
    )


@pytest.fixture
def key_set(http: httpx.AsyncClient, clock: FakeClock) -> RemoteKeySet:
    return make_key_set(http, clock)


async def landed(key_set: RemoteKeySet) -> None:
    """Let the background fetch in flight, if any, finish (no request ever waits for it).

    Bounded: a fetch that never ends (no deadline) fails the test instead of hanging it.
    """
    async with asyncio.timeout(2):
        while key_set._pending is not None:
            await key_set._pending


def hanging(first_chunk: bytes = b"") -> httpx.Response:
    """A 200 whose body stops after `first_chunk` and never ends: a stalled issuer."""

    async def body() -> AsyncIterator[bytes]:
        yield first_chunk
        await asyncio.Event().wait()

    return httpx.Response(200, content=body(), headers={"Content-Type": "application/json"})


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


@pytest.mark.parametrize(
    "metadata_url",
    [
        "https://issuer.test/.well-known/oauth-authorization-server/tenant",  # RFC 8414 3.1
        "https://issuer.test/tenant/.well-known/oauth-authorization-server",  # ours, mapped
        "https://issuer.test/tenant/.well-known/openid-configuration",  # OIDC Discovery 4
    ],
    ids=["rfc8414", "under-the-path", "openid-connect"],
)
async def test_an_issuer_with_a_path_is_found_where_the_rfcs_put_its_metadata(
    respx_mock, http, clock, rsa_private_key, metadata_url
):
    # The audit: an RFC 8414 issuer with a path was looked for under its path only, so a
    # resource server in front of it never found keys.
    issuer = "https://issuer.test/tenant"
    respx_mock.get(metadata_url).respond(json={"issuer": issuer, "jwks_uri": JWKS_URL})
    keys = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")))
    respx_mock.get(url__startswith="https://issuer.test/").respond(404)  # anywhere else
    key_set = RemoteKeySet(issuer, client=http, clock=clock, sleep=clock.sleep)
    assert await key_set.key("k1") is not None
    assert keys.call_count == 1


@pytest.mark.parametrize("jwks_url", [None, ""], ids=["none", "empty"])
async def test_a_fallback_location_is_looked_up_again_once_it_fails(
    respx_mock, http, clock, rsa_private_key, jwks_url
):
    # The audit: metadata was 404 at start-up (a proxy route not deployed yet), so the
    # well-known fallback was taken, and kept for the process's life: once the issuer
    # served its metadata and dropped the fallback, every fetch failed until a restart.
    # An empty jwks_url is none configured, as `RS_JWKS_URL=` is in the settings.
    key_set = RemoteKeySet(ISSUER, jwks_url, client=http, clock=clock, sleep=clock.sleep)
    metadata = respx_mock.get(METADATA_URL).respond(404)
    fallback = respx_mock.get(f"{ISSUER}/.well-known/jwks.json")
    fallback.respond(json=jwks((rsa_private_key, "k1")))
    assert await key_set.key("k1") is not None
    metadata.respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    fallback.respond(404)
    moved = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")))
    clock.advance(60)
    await key_set.maintain()  # the revalidation fails...
    assert key_set.status().last_fetch_failed
    clock.advance(1)  # ...and the retry, after the first backoff, looks the location up
    await key_set.maintain()
    assert moved.call_count == 1
    assert not key_set.status().last_fetch_failed
    assert metadata.call_count == 2


async def test_a_moved_jwks_uri_is_followed(respx_mock, key_set, clock, rsa_private_key):
    metadata = respx_mock.get(METADATA_URL)
    metadata.respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    old = respx_mock.get(JWKS_URL).respond(
        json=jwks((rsa_private_key, "k1")), headers={"ETag": '"v1"'}
    )
    assert await key_set.key("k1") is not None
    new_url = f"{ISSUER}/v2/keys"
    metadata.respond(json={"issuer": ISSUER, "jwks_uri": new_url})
    old.respond(404)
    new = respx_mock.get(new_url).respond(json=jwks((rsa_private_key, "k1")))
    for _ in range(3):
        clock.advance(60)
        await key_set.maintain()
    assert new.call_count >= 1
    assert "If-None-Match" not in new.calls[0].request.headers  # an ETag of the old place
    assert not key_set.status().last_fetch_failed
    assert old.call_count == 2  # the first fetch and the failed revalidation


async def test_a_moved_jwks_uri_that_fails_at_first_never_gets_the_old_etag(
    respx_mock, key_set, clock, rsa_private_key, other_private_key
):
    # The review: the metadata moved jwks_uri from A to B and B's first answer failed; B was
    # already the known location, so the next try sent A's ETag to B, and B (its counter-style
    # ETag the same) answered 304: A's keys were kept as B's.
    metadata = respx_mock.get(METADATA_URL)
    metadata.respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    old = respx_mock.get(JWKS_URL)
    old.mock(return_value=etagged('"1"', (rsa_private_key, "k1")))
    assert await key_set.key("k1") is not None
    new_url = f"{ISSUER}/v2/keys"
    metadata.respond(json={"issuer": ISSUER, "jwks_uri": new_url})
    old.respond(404)
    answers = iter([httpx.Response(503)])

    def new_keys(request: httpx.Request) -> httpx.Response:
        if (failure := next(answers, None)) is not None:
            return failure
        if request.headers.get("If-None-Match") == '"1"':
            return httpx.Response(304, headers={"ETag": '"1"'})
        return etagged('"1"', (other_private_key, "k2"))

    new = respx_mock.get(new_url).mock(side_effect=new_keys)
    for _ in range(6):  # until B has answered with its keys
        clock.advance(61)
        await key_set.maintain()
        if new.calls and new.calls.last.response.status_code == 200:
            break
    assert not any("If-None-Match" in call.request.headers for call in new.calls)
    assert new.call_count == 2  # the failure, then the keys
    assert await key_set.key("k2") is not None
    assert await key_set.key("k1") is None  # A's key, which B does not publish


async def test_a_304_to_a_request_without_if_none_match_is_a_failed_fetch(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    # The review: a 304 (from a cache or proxy on the way, say) renewed the held set though
    # nothing was asked of it; it says nothing of what the issuer publishes now.
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    assert await key_set.key("k1") is not None  # no ETag: nothing to revalidate with
    route.respond(304, headers={"Cache-Control": "max-age=3600"})
    clock.advance(61)
    await key_set.maintain()
    assert "If-None-Match" not in route.calls[1].request.headers
    status = key_set.status()
    assert status.last_fetch_failed
    assert not status.fresh  # the held set was not renewed


async def test_a_configured_jwks_url_is_never_looked_up(respx_mock, http, clock, rsa_private_key):
    metadata = respx_mock.get(METADATA_URL).respond(
        json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/elsewhere"}
    )
    route = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")))
    key_set = RemoteKeySet(ISSUER, JWKS_URL, client=http, clock=clock, sleep=clock.sleep)
    assert await key_set.key("k1") is not None
    route.respond(503)
    for _ in range(5):
        clock.advance(61)
        await key_set.maintain()
    assert route.call_count == 6
    assert metadata.call_count == 0


async def test_metadata_failing_on_the_second_look_keeps_the_location_known(
    respx_mock, http, clock, rsa_private_key
):
    # Looking again may only help: metadata that errs or hangs after a failed fetch must not
    # keep the resource server from the location that still answers.
    key_set = make_key_set(http, clock, timeout=0.05)
    metadata = respx_mock.get(METADATA_URL)
    metadata.respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    route = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")))
    assert await key_set.key("k1") is not None
    route.respond(502)  # one bad answer
    clock.advance(60)
    await key_set.maintain()
    route.respond(json=jwks((rsa_private_key, "k1")))
    metadata.respond(500)
    clock.advance(61)
    await key_set.maintain()  # looks again, in vain, and fetches from the known location
    assert (metadata.call_count, route.call_count) == (2, 3)
    assert not key_set.status().last_fetch_failed
    route.respond(502)
    metadata.mock(side_effect=lambda request: hanging())
    clock.advance(61)
    await key_set.maintain()
    route.respond(json=jwks((rsa_private_key, "k1")))
    clock.advance(61)
    await key_set.maintain()  # looks again: the metadata hangs past the deadline
    assert key_set.status().last_fetch_failed
    clock.advance(61)
    await key_set.maintain()  # so the next try goes to the known location
    assert not key_set.status().last_fetch_failed
    assert (metadata.call_count, route.call_count) == (3, 5)


@pytest.mark.parametrize(
    "root",
    [
        httpx.Response(403),
        httpx.Response(302, headers={"Location": "/sign-in"}),
        httpx.Response(200, html="<!doctype html><p>an app</p>"),
        httpx.Response(200, json={"issuer": "https://issuer.test", "jwks_uri": JWKS_URL}),
        httpx.Response(
            200, content=gzip.compress(b"<p>an app</p>"), headers={"Content-Encoding": "gzip"}
        ),
        httpx.Response(200, html="<p>an app</p>" * (1024 * 1024 // 13 + 1)),
    ],
    ids=["forbidden", "redirect", "an-app", "another-issuer", "compressed", "oversized"],
)
async def test_what_the_host_serves_outside_the_issuers_path_does_not_stop_discovery(
    respx_mock, http, clock, rsa_private_key, root
):
    # The review: the first try of the change above made any answer there but 404 final.
    issuer = "https://issuer.test/tenant"
    respx_mock.get("https://issuer.test/.well-known/oauth-authorization-server/tenant").mock(
        return_value=root
    )
    own_keys = "https://issuer.test/tenant/keys"
    respx_mock.get(f"{issuer}/.well-known/oauth-authorization-server").respond(
        json={"issuer": issuer, "jwks_uri": own_keys}
    )
    keys = respx_mock.get(own_keys).respond(json=jwks((rsa_private_key, "k1")))
    key_set = RemoteKeySet(issuer, client=http, clock=clock, sleep=clock.sleep)
    assert await key_set.key("k1") is not None
    assert keys.call_count == 1


@pytest.mark.parametrize("stall", ["no-answer", "trickling-body"])
async def test_what_the_host_stalls_on_outside_the_issuers_path_does_not_stop_discovery(
    respx_mock, http, clock, rsa_private_key, stall
):
    # The review: a place there that never answered (or never ended its body) used up the
    # whole deadline of every fetch, so the issuer's own metadata was never asked: no keys,
    # 503 for ever, though the issuer was up.
    async def no_answer(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    issuer = "https://issuer.test/tenant"
    respx_mock.get("https://issuer.test/.well-known/oauth-authorization-server/tenant").mock(
        side_effect=no_answer if stall == "no-answer" else (lambda request: hanging(b"{"))
    )
    own_keys = "https://issuer.test/tenant/keys"
    respx_mock.get(f"{issuer}/.well-known/oauth-authorization-server").respond(
        json={"issuer": issuer, "jwks_uri": own_keys}
    )
    keys = respx_mock.get(own_keys).respond(json=jwks((rsa_private_key, "k1")))
    key_set = RemoteKeySet(
        issuer, client=http, policy=CachePolicy(timeout=2), clock=clock, sleep=clock.sleep
    )
    # Half the deadline waited on the outside place leaves a second for the issuer's own (a
    # margin a loaded machine needs; before the fix the stall took the whole deadline).
    started = time.monotonic()
    assert await key_set.key("k1") is not None
    assert time.monotonic() - started < 2
    assert keys.call_count == 1


async def test_fresh_keys_are_served_from_memory(http, jwks_route, clock):
    key_set = make_key_set(http, clock, revalidate=0)  # isolate from revalidation
    await key_set.key("k1")
    for _ in range(100):
        clock.advance(1)
        assert await key_set.key("k1") is not None
    assert jwks_route.call_count == 1


@pytest.mark.parametrize(
    ("cache_control", "age", "expected_ttl"),
    [
        ("max-age=600", None, 600),
        ("public, max-age=5", None, 60),
        ("max-age=999999", None, 86400),
        (None, None, 300),
        ("no-store", None, 60),
        # RFC 9111 section 4.2.3: a cache in between held it for Age seconds already.
        ("public, max-age=600", "400", 200),
        ("max-age=600", "590", 60),
        (None, "100", 200),
        ("no-cache", "30", 60),
        ("max-age=600", "-5", 600),  # not an age: ignored
        ("max-age=600", "1e2", 600),
    ],
)
async def test_lifetime_is_max_age_less_age_clamped_to_bounds(
    respx_mock, metadata_route, http, clock, rsa_private_key, cache_control, age, expected_ttl
):
    # Isolate expiry from refresh-ahead and revalidation.
    key_set = make_key_set(http, clock, refresh_ahead=1.0, revalidate=0)
    headers = {"Cache-Control": cache_control} if cache_control else {}
    if age is not None:
        headers["Age"] = age
    route = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")), headers=headers)
    await key_set.key("k1")
    clock.advance(expected_ttl - 0.5)
    await key_set.key("k1")
    await landed(key_set)
    assert route.call_count == 1
    clock.advance(1)
    assert await key_set.key("k1") is not None  # answered from the expired set...
    await landed(key_set)
    assert route.call_count == 2  # ...while it was fetched again in the background


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
    await landed(key_set)
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


async def test_replaced_key_material_under_a_known_kid_is_reloaded_in_the_background(
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
    await landed(key_set)
    assert route.call_count == 1
    clock.advance(31)
    # Usable keys are held: the failing caller is answered at once, the refresh runs behind.
    assert await key_set.key("k1", rejected=old) is None
    assert route.call_count == 1
    await landed(key_set)
    assert route.call_count == 2
    replacement = await key_set.key("k1", rejected=old)
    assert replacement is not None and replacement.as_dict() != old.as_dict()
    assert await key_set.key("k1", rejected=old) is replacement
    assert route.call_count == 2  # once per cooldown, however many forgeries


def stall(route: respx.Route, body: dict) -> tuple[asyncio.Event, asyncio.Event]:
    """Make `route` hold each request until the second event is set, then answer `body`;
    the first is set once a request has come."""
    asked, stalled = asyncio.Event(), asyncio.Event()

    async def stalls(request: httpx.Request) -> httpx.Response:
        asked.set()
        await stalled.wait()
        return httpx.Response(200, json=body)

    route.mock(side_effect=stalls)
    return asked, stalled


async def test_a_bad_signature_never_waits_on_a_stalled_issuer(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")))
    held = await key_set.key("k1")
    asked, stalled = stall(route, jwks((rsa_private_key, "k1")))
    clock.advance(31)
    async with asyncio.timeout(0.5):  # the fetch deadline is seconds: no waiting on it
        assert await key_set.key("k1", rejected=held) is None
        await asked.wait()  # the refresh did start, behind the answer
    assert key_set._pending is not None
    stalled.set()
    await landed(key_set)


async def test_a_bad_signature_while_a_fetch_is_in_flight_leaves_the_cooldown_to_new_kids(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key
):
    # The forgery joins the revalidation already running; it must not spend the unknown-kid
    # cooldown, or a key the issuer rotates in just after would go unfound for 30 s.
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")))
    held = await key_set.key("k1")
    asked, stalled = stall(route, jwks((rsa_private_key, "k1")))
    clock.advance(61)
    assert await key_set.key("k1") is held  # due for revalidation: it starts, behind
    await asked.wait()
    clock.advance(1.1)  # past the fetch gap, the revalidation still in flight
    assert await key_set.key("k1", rejected=held) is None
    stalled.set()
    await landed(key_set)
    route.mock(
        return_value=httpx.Response(
            200, json=jwks((rsa_private_key, "k1"), (other_private_key, "k2"))
        )
    )
    clock.advance(1.1)  # past the fetch gap again, well within the cooldown
    assert await key_set.key("k2") is not None


async def test_outage_keeps_the_last_good_set_and_recovery_picks_up_new_keys(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key, caplog
):
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=httpx.ConnectError("refused"))
    with caplog.at_level(logging.INFO, logger="resource_server.jwks"):
        for _ in range(200):  # 20 minutes of outage, a request every 6 s, well past expiry
            clock.advance(6)
            assert await key_set.key("k1") is not None
            await landed(key_set)
        failures = route.call_count - 1
        # Backoff (30..60 s once capped; at worst about 45 fetches), not one per request (200).
        assert 1 <= failures <= 60
        route.mock(
            return_value=httpx.Response(
                200, json=jwks((rsa_private_key, "k1"), (other_private_key, "k2"))
            )
        )
        clock.advance(61)  # past the longest backoff
        await key_set.key("k1")
        await landed(key_set)
        assert await key_set.key("k2") is not None
    messages = [r.getMessage() for r in caplog.records if r.name == "resource_server.jwks"]
    assert sum("failed" in m for m in messages) == 1  # once per state change
    assert sum("keeping the last good key set" in m for m in messages) == 1
    [recovered] = [m for m in messages if "recovered" in m]
    assert recovered.endswith(f"recovered after {failures} failures")


async def test_a_stale_set_is_dropped_at_the_very_instant_of_the_stale_limit(
    respx_mock, metadata_route, http, clock, rsa_private_key
):
    key_set = RemoteKeySet(ISSUER, client=http, policy=CachePolicy(stale_if_error=600), clock=clock)
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=httpx.ConnectError("refused"))
    clock.advance(60 + 599)
    assert await key_set.key("k1") is not None
    clock.advance(1)  # expiry plus stale_if_error, exactly
    assert not key_set.ready
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")


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
    await landed(key_set)
    assert route.call_count == 2
    assert key_set.status().last_fetch_failed
    assert await key_set.key("k1") is not None


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
        # The review: no one's real key, and a cost on every verification (4 ms for a
        # 2,047-bit exponent); an even modulus has the factor 2, so anyone can sign.
        {
            **public_jwk(rsa_private_key, "huge-e"),
            "e": b64url(((1 << 2046) | 1).to_bytes(256, "big")),
        },
        {
            **public_jwk(rsa_private_key, "even-n"),
            "n": b64url(((1 << 2047) + 2).to_bytes(256, "big")),
        },
        {
            **public_jwk(rsa_private_key, "huge-n"),
            "n": b64url(((1 << 8200) + 1).to_bytes(1026, "big")),
        },
    ]
    respx_mock.get(JWKS_URL).respond(json={"keys": entries})
    assert await key_set.key("good") is not None
    for kid in ("too-small", "ec", "enc", "hs", "sym", "huge-e", "even-n", "huge-n"):
        assert await key_set.key(kid) is None, kid


def leaked_jwk(key: rsa.RSAPrivateKey, kid: str, *members: str) -> dict[str, object]:
    """`key`'s JWK with the given private members published too (RFC 7518 section 6.3.2)."""
    numbers = key.private_numbers()
    values = {
        "d": numbers.d,
        "p": numbers.p,
        "q": numbers.q,
        "dp": numbers.dmp1,
        "dq": numbers.dmq1,
        "qi": numbers.iqmp,
    }

    def encode(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    jwk = public_jwk(key, kid)
    for member in members:
        jwk[member] = [] if member == "oth" else encode(values[member])
    return jwk


@pytest.mark.parametrize(
    "members",
    [("d",), ("d", "p", "q", "dp", "dq", "qi"), ("p", "q"), ("oth",)],
    ids=["d", "all", "factors", "oth"],
)
async def test_a_key_published_with_private_members_is_not_trusted(
    respx_mock,
    metadata_route,
    key_set,
    rsa_private_key,
    other_private_key,
    third_private_key,
    caplog,
    members,
):
    # The audit: an entry carrying d, p and q was used as a signing key, so anyone reading
    # the JWKS could mint tokens that verified; nothing was logged.
    respx_mock.get(JWKS_URL).respond(
        json={
            "keys": [
                leaked_jwk(other_private_key, "leaked", *members),
                # The same kid again without them: the key is still the compromised one.
                public_jwk(rsa_private_key, "leaked-twice"),
                leaked_jwk(rsa_private_key, "leaked-twice", *members),
                public_jwk(third_private_key, "good"),
            ]
        }
    )
    with caplog.at_level(logging.WARNING, logger="resource_server.jwks"):
        assert await key_set.key("good") is not None
        assert await key_set.key("leaked") is None
        assert await key_set.key("leaked-twice") is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "resource_server.jwks"]
    assert len(warnings) == 2  # once per entry in the one fetch, not once per request
    assert "'leaked'" in warnings[0] and "private key members" in warnings[0]
    assert "'leaked-twice'" in warnings[1]


async def test_a_key_set_of_more_keys_than_any_issuer_publishes_is_refused(
    respx_mock, metadata_route, key_set, rsa_private_key, clock
):
    # The review: each entry is parsed on the event loop; 1 MiB of them held it 0.75 s.
    entries = [public_jwk(rsa_private_key, f"k{n}") for n in range(MAX_KEYS + 1)]
    respx_mock.get(JWKS_URL).respond(json={"keys": entries})
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    respx_mock.get(JWKS_URL).respond(json={"keys": entries[:MAX_KEYS]})
    clock.advance(2)  # past the least gap between two fetches
    assert await key_set.key("k1") is not None


async def test_a_key_leaked_under_another_kid_or_none_is_trusted_under_no_kid(
    respx_mock, metadata_route, key_set, rsa_private_key, other_private_key, third_private_key
):
    # The review: the leak was recorded by kid only, so the same key published cleanly under
    # its own kid kept verifying tokens anyone could sign with the leaked copy.
    without_kid = leaked_jwk(other_private_key, "unused", "d")
    del without_kid["kid"]
    respx_mock.get(JWKS_URL).respond(
        json={
            "keys": [
                public_jwk(rsa_private_key, "k1"),
                leaked_jwk(rsa_private_key, "debug", "d"),
                public_jwk(other_private_key, "k2"),
                without_kid,
                public_jwk(third_private_key, "good"),
            ]
        }
    )
    assert await key_set.key("good") is not None
    assert await key_set.key("k1") is None and await key_set.key("k2") is None


@pytest.mark.parametrize("leaked_kid", ["k1", "kx"])
async def test_a_leaked_key_stops_verifying_even_when_the_set_showing_it_is_refused(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, leaked_kid
):
    # The review: the only entry gained private members, so the fetched set had no usable
    # key and was refused, and the held set, that very key in it, kept verifying tokens
    # anyone could now sign, for up to stale_if_error (24 h).
    verifier = Verifier(key_set, ISSUER, "api", clock=clock)
    now = int(clock())

    def token(jti: str) -> str:
        claims = {"iss": ISSUER, "aud": "api", "sub": "42", "client_id": "c", "jti": jti}
        header = {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}
        return sign_jwt(rsa_private_key, header, {**claims, "iat": now, "exp": now + 3600})

    route = respx_mock.get(JWKS_URL)
    route.mock(return_value=etagged('"v1"', (rsa_private_key, "k1")))
    cached = token("seen-before")
    await verifier.verify(cached)
    assert verifier.remembered(cached) is not None  # in the verified-token cache
    # Under its kid, or another (the review): the held k1 is the same key either way.
    leaked = leaked_jwk(rsa_private_key, leaked_kid, "d")
    route.mock(return_value=httpx.Response(200, json={"keys": [leaked]}))
    clock.advance(60)
    await key_set.maintain()  # the revalidation: the set is refused...
    assert key_set.status().last_fetch_failed
    for refused in (cached, token("minted-with-the-leaked-key")):  # ...and k1 is dropped
        with pytest.raises(InvalidToken):
            await verifier.verify(refused)
    clock.advance(2)
    await key_set.maintain()  # the retry: the ETag named the set with k1 in it
    assert "If-None-Match" not in route.calls.last.request.headers


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


async def test_the_jwks_is_asked_for_as_a_jwk_set_or_json(
    respx_mock, metadata_route, key_set, rsa_private_key
):
    # A server that answers by Accept may serve RFC 7517's media type alone.
    route = respx_mock.get(JWKS_URL).respond(
        json=jwks((rsa_private_key, "k1")), headers={"Content-Type": "application/jwk-set+json"}
    )
    assert await key_set.key("k1") is not None
    accept = route.calls.last.request.headers["accept"]
    assert [part.strip() for part in accept.split(",")] == [
        "application/jwk-set+json",
        "application/json",
    ]


async def test_a_compressed_jwks_response_is_refused_before_it_is_inflated(
    respx_mock, metadata_route, key_set, rsa_private_key
):
    # A small gzip body that inflates past the size limit: counting after inflating a chunk
    # at a time let it take memory on every retry.
    bomb = gzip.compress(
        b" " * (8 * 1024 * 1024) + json.dumps(jwks((rsa_private_key, "k1"))).encode()
    )
    route = respx_mock.get(JWKS_URL).respond(
        content=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    assert route.calls.last.request.headers["accept-encoding"] == "identity"
    assert key_set.status().last_fetch_failed


async def test_unavailable_before_the_first_success_with_retry_after(respx_mock, key_set, clock):
    route = respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectTimeout("slow"))
    with pytest.raises(KeySetUnavailable) as caught:
        await key_set.key("k1")
    assert caught.value.status_code == 503
    assert caught.value.headers["Retry-After"] == "1"
    assert route.call_count == 1


@pytest.mark.parametrize(("fetch_gap", "retry_after"), [(10, "10"), (2.5, "3")])
async def test_retry_after_says_when_the_next_fetch_may_start(
    respx_mock, http, clock, fetch_gap, retry_after
):
    # Whole seconds, rounded up: a client told to come back sooner would be refused again.
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("down"))
    key_set = make_key_set(http, clock, fetch_gap=fetch_gap)
    with pytest.raises(KeySetUnavailable) as caught:
        await key_set.key("k1")
    assert caught.value.headers["Retry-After"] == retry_after


async def test_with_no_keys_a_caller_fetches_at_once_whatever_the_backoff(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    # The resource server started first: its fetches failed and the backoff grew...
    route = respx_mock.get(JWKS_URL).mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(8):
        with pytest.raises(KeySetUnavailable):
            await key_set.key("k1")
        clock.advance(1)
    assert key_set._retry_at - clock() > 20  # 30..60 s from the last failure, 1 s ago
    # ...then the issuer comes up and a caller is waiting: it is answered now.
    route.mock(return_value=httpx.Response(200, json=jwks((rsa_private_key, "k1"))))
    before = clock()
    assert await key_set.key("k1") is not None
    assert clock() == before  # no wait: the last fetch started a second ago


async def test_with_no_keys_callers_start_at_most_one_fetch_a_second(respx_mock, key_set, clock):
    route = respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("down"))
    results = await asyncio.gather(*(key_set.key("k1") for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, KeySetUnavailable) for r in results)
    assert route.call_count == 1  # single flight
    clock.advance(0.4)
    started = clock()
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    # The caller waited out the rest of the second, then made the second fetch.
    assert clock() - started == pytest.approx(0.6)
    assert route.call_count == 2


async def test_background_retries_back_off(respx_mock, key_set, clock):
    route = respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("down"))
    attempts_at = []
    while clock() < 1_800_000_400:  # 400 s of the keeper alone
        before = route.call_count
        wait = await key_set.maintain()
        if route.call_count > before:
            attempts_at.append(clock())
        clock.advance(max(wait, 0.01))
    gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
    assert len(attempts_at) < 20
    assert gaps[0] >= 1  # the fetch gap
    assert gaps[-1] >= 30  # capped at retry_max (60 s) with jitter down to half
    assert all(gap <= 60 for gap in gaps)


async def test_the_first_background_retry_is_half_to_all_of_retry_base_away(
    respx_mock, http, clock
):
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("down"))
    key_set = make_key_set(http, clock, fetch_gap=0, retry_base=4)
    assert await key_set.maintain() == 0  # the first fetch, failed
    assert 2 <= await key_set.maintain() <= 4  # jitter: 0.5..1 times 4 s, doubling from there


async def test_backoff_survives_a_very_long_outage(respx_mock, key_set, clock):
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("down"))
    key_set._failures = 5000  # 2 ** 4999 seconds would not fit a float
    await key_set.maintain()
    assert 0 < key_set._retry_at - clock() <= 60
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")


@pytest.mark.parametrize(
    "url",
    ["http://issuer.example.com", "ftp://issuer.test", "http://10.0.0.1:8000", "ftp://localhost"],
)
def test_plain_http_is_refused_for_non_loopback_issuers(http, url):
    with pytest.raises(ValueError, match="https"):
        RemoteKeySet(url, client=http)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://issuer.test?tenant=1",
        "https://issuer.test/#keys",
        "https://user@issuer.test",
        "HTTPS://issuer.test",
    ],
)
def test_an_issuer_no_issuer_could_be_is_refused(http, issuer):
    # The review: RS_ISSUER_URL was held to RFC 8414's identifier rule, the library
    # (for_issuer, RemoteKeySet) was not: taken, the metadata naming the real identifier was
    # refused (or the well-known URLs built on it led nowhere), so every token got 503.
    with pytest.raises(ValueError, match=r"no query|lower case"):
        RemoteKeySet(issuer, client=http)
    with pytest.raises(ValueError, match=r"no query|lower case"):
        Verifier.for_issuer(issuer, "api")


@pytest.mark.parametrize(
    "url", ["https://issuer.test:abc/keys", "https://issuer.test:0/keys", "https:///keys"]
)
def test_a_jwks_url_no_request_can_reach_is_refused(http, url):
    # The audits: taken, the verifier retried a fetch no request could make, for ever; the
    # project's settings refused it, the library (for_issuer, RemoteKeySet) did not.
    with pytest.raises(ValueError, match=r"not a URL|port 0|must have a host"):
        RemoteKeySet(ISSUER, url, client=http)


@pytest.mark.parametrize(
    "url",
    [
        "https://issuer.test/keys\n",
        " https://issuer.test/keys",
        "https://issuer.test/keys\t",
        "https://issuer.test/keys\x00",
        "https://issuer.test/my keys",
    ],
)
def test_a_jwks_url_with_spaces_or_control_characters_is_refused(http, url):
    # The audit: RS_JWKS_URL with a trailing newline (a value read from a file) was taken:
    # urlsplit drops it, httpx refuses it ("Invalid non-printable ASCII character in URL"), so
    # the verifier retried a fetch no request could make, for ever (a leading space made a
    # relative URL of it).
    with pytest.raises(ValueError, match="must not hold spaces or control characters"):
        RemoteKeySet(ISSUER, url, client=http)


def test_a_refused_url_is_named_briefly_and_without_its_password(http):
    # The audit: a metadata jwks_uri of 200,000 characters with a newline and an ANSI escape
    # went whole into the log line; a configured URL's password went there too.
    for url in ("ftp://evil/\n\x1b[31mFORGED" + "B" * 200_000, "http://user:pa55@10.0.0.1/jwks"):
        with pytest.raises(ValueError) as refused:
            RemoteKeySet(ISSUER, url, client=http)
        message = str(refused.value)
        assert len(message) < 300 and "\n" not in message and "\x1b" not in message
        assert "pa55" not in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
)
def test_plain_http_is_allowed_on_loopback(http, url):
    RemoteKeySet(url, client=http)


def test_plain_http_elsewhere_needs_explicit_permission(http):
    RemoteKeySet("http://issuer:8000", client=http, allow_insecure_http=True)
    with pytest.raises(ValueError, match="https"):  # plain http, not any other scheme
        RemoteKeySet("ftp://issuer:8000", client=http, allow_insecure_http=True)


async def test_a_client_passed_in_is_the_one_fetched_with_and_is_left_open(rsa_private_key, clock):
    asked = []

    async def streamed(document: object) -> AsyncIterator[bytes]:
        yield json.dumps(document).encode()  # as a network answer arrives (no preloaded body)

    def issuer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url == METADATA_URL:
            return httpx.Response(200, content=streamed({"issuer": ISSUER, "jwks_uri": JWKS_URL}))
        return httpx.Response(200, content=streamed(jwks((rsa_private_key, "k1"))))

    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer)) as client:
        async with RemoteKeySet(ISSUER, client=client, clock=clock, sleep=clock.sleep) as key_set:
            assert await key_set.key("k1") is not None
        assert asked == [METADATA_URL, JWKS_URL]
        assert not client.is_closed  # the caller's, closed by the caller


async def test_a_client_of_its_own_is_closed_with_the_key_set_even_if_never_entered():
    key_set = RemoteKeySet(ISSUER)
    own = key_set._client
    await key_set.aclose()
    assert own.is_closed


async def test_a_key_set_left_still_fetches_when_asked_outside_it(
    jwks_route, rsa_private_key, other_private_key
):
    # The review: docs/verifier.md says `verify` still works outside `async with`, a token
    # not seen before making it look at the issuer. After leaving it, that look always failed
    # ("unexpected RuntimeError: Cannot send a request, as the client has been closed"), so
    # a key the issuer added was never found and, once the held set was too old, every
    # token got 503.
    key_set = RemoteKeySet(ISSUER, policy=CachePolicy(cooldown=0, fetch_gap=0))
    async with key_set:
        assert await key_set.key("k1") is not None
    jwks_route.respond(json=jwks((rsa_private_key, "k1"), (other_private_key, "k2")))
    try:
        assert await key_set.key("k2") is not None
        assert not key_set.status().last_fetch_failed
    finally:
        await key_set.aclose()


async def test_leaving_the_key_set_stops_its_keeper(jwks_route, http, clock):
    async with make_key_set(http, clock) as key_set:
        keeper = key_set._keeper
        assert await key_set.key("k1") is not None
    # Stopped, not left to fetch on after the app's lifespan ended.
    assert keeper is not None and keeper.done()


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


# -- never make a caller wait on the issuer -------------------------------------------------


async def test_a_stale_set_answers_at_once_while_the_issuer_stalls(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=lambda request: hanging(b'{"keys": ['))
    clock.advance(61)  # expired: a refetch starts, and stalls
    for _ in range(10):
        # wait_for only bounds the test should a caller wait for the network (a failure).
        assert await asyncio.wait_for(key_set.key("k1"), timeout=1) is not None
    assert route.call_count == 2  # one fetch in flight, shared
    status = key_set.status()
    assert (status.usable, status.fresh) == (True, False)


async def test_every_fetch_has_one_overall_deadline(respx_mock, metadata_route, http, clock):
    # httpx's own timeouts are per read; a body that trickles (or stops) must still end.
    key_set = make_key_set(http, clock, timeout=0.05)
    respx_mock.get(JWKS_URL).mock(side_effect=lambda request: hanging(b'{"keys": ['))
    started = time.monotonic()
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    assert time.monotonic() - started < 1
    await landed(key_set)  # the caller's budget and the fetch's deadline end together
    assert key_set.stats.fetches["initial", "error"] == 1
    assert key_set.status().last_fetch_failed


async def test_metadata_discovery_is_within_the_same_deadline(respx_mock, http, clock):
    key_set = make_key_set(http, clock, timeout=0.05)
    respx_mock.get(METADATA_URL).mock(side_effect=lambda request: hanging())
    started = time.monotonic()
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    assert time.monotonic() - started < 1
    await landed(key_set)
    assert key_set.stats.fetches["initial", "error"] == 1


async def test_an_unknown_kid_waits_at_most_the_deadline(
    respx_mock, metadata_route, http, clock, rsa_private_key
):
    key_set = make_key_set(http, clock, timeout=0.05)
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")))
    await key_set.key("k1")
    route.mock(side_effect=lambda request: hanging())
    clock.advance(31)  # past the cooldown
    started = time.monotonic()
    async with asyncio.timeout(2):  # only bounds the test, should the key set not
        assert await key_set.key("unknown") is None
    assert time.monotonic() - started < 1
    assert key_set.stats.fetches["unknown_kid", "error"] == 1  # it ended at its deadline
    assert await key_set.key("k1") is not None  # the held set still answers


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_fetch(
    respx_mock, metadata_route, key_set, rsa_private_key
):
    release = asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=jwks((rsa_private_key, "k1")))

    respx_mock.get(JWKS_URL).mock(side_effect=respond)
    impatient = asyncio.create_task(key_set.key("k1"))
    await asyncio.sleep(0)
    patient = asyncio.create_task(key_set.key("k1"))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient is not None


# -- revalidation: a key the issuer removed is dropped within the interval -------------------


def etagged(etag: str, *keys: tuple[rsa.RSAPrivateKey, str]) -> httpx.Response:
    # A long max-age: only revalidation can notice a change within the hour.
    return httpx.Response(
        200, json=jwks(*keys), headers={"ETag": etag, "Cache-Control": "max-age=3600"}
    )


async def test_revalidation_drops_a_removed_key_within_the_interval(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key
):
    route = respx_mock.get(JWKS_URL)
    route.mock(return_value=etagged('"v1"', (rsa_private_key, "k1"), (other_private_key, "k2")))
    assert await key_set.key("k1") is not None
    generation = key_set.generation
    # The issuer revokes k1 (say, after a compromise).
    route.mock(return_value=etagged('"v2"', (other_private_key, "k2")))
    clock.advance(59)
    assert await key_set.key("k1") is not None  # within the interval: not asked yet
    await landed(key_set)
    assert route.call_count == 1
    clock.advance(1)
    await key_set.key("k2")  # the request starts the revalidation and does not wait for it
    await landed(key_set)
    assert route.call_count == 2
    assert route.calls[1].request.headers["If-None-Match"] == '"v1"'
    assert key_set.stats.fetches["revalidate", "ok"] == 1
    assert await key_set.key("k1") is None
    assert key_set.generation != generation  # cached verifications with k1 end too


async def test_revalidation_runs_without_traffic_and_a_304_is_cheap(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    route = respx_mock.get(JWKS_URL).mock(
        side_effect=[
            etagged('"v1"', (rsa_private_key, "k1")),
            httpx.Response(304, headers={"ETag": '"v1"', "Cache-Control": "max-age=3600"}),
        ]
    )
    assert await key_set.maintain() == 0  # the keeper's first fetch
    generation = key_set.generation
    assert await key_set.maintain() == pytest.approx(60)
    clock.advance(60)
    assert await key_set.maintain() == 0
    assert route.calls[1].request.headers["If-None-Match"] == '"v1"'
    assert key_set.generation == generation  # same keys: cached verifications stay
    assert await key_set.maintain() == pytest.approx(60)  # the next one, a minute on


@pytest.mark.parametrize(
    "etag",
    [b'"v1\xe9"', b"v1", b'"v"1"', b'W/"v1\x80"'],
    ids=["obs-text", "unquoted", "inner-quote", "weak-obs-text"],
)
async def test_an_etag_that_cannot_be_sent_back_is_not_kept(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key, caplog, etag
):
    # The audit: an ETag holding obs-text (RFC 9110 section 8.8.3 allows %x80-FF) was kept
    # and sent back in If-None-Match, which httpx cannot encode: every later fetch failed
    # before it was sent (a traceback each time), so a key the issuer removed kept verifying.
    route = respx_mock.get(JWKS_URL)
    route.mock(
        return_value=httpx.Response(
            200,
            json=jwks((rsa_private_key, "k1"), (other_private_key, "k2")),
            headers=[(b"ETag", etag), (b"Cache-Control", b"max-age=3600")],
        )
    )
    assert await key_set.key("k1") is not None
    route.mock(return_value=etagged('"v2"', (other_private_key, "k2")))  # k1 is removed
    clock.advance(60)
    with caplog.at_level(logging.WARNING, logger="resource_server.jwks"):
        await key_set.maintain()  # the revalidation: a full fetch, as no ETag is held
    assert route.call_count == 2
    assert "If-None-Match" not in route.calls[1].request.headers
    assert await key_set.key("k1") is None
    assert not key_set.status().last_fetch_failed
    assert not caplog.records


async def test_a_weak_etag_of_visible_ascii_is_sent_back(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    route = respx_mock.get(JWKS_URL)
    route.mock(return_value=etagged('W/"v1"', (rsa_private_key, "k1")))
    await key_set.key("k1")
    clock.advance(60)
    await key_set.maintain()
    assert route.calls[1].request.headers["If-None-Match"] == 'W/"v1"'


@pytest.mark.parametrize("error", [RuntimeError, ValueError])
async def test_an_unexpected_error_is_logged_once_with_its_traceback_and_retried(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, caplog, error
):
    # It was logged with a traceback on every attempt; a failed fetch is a failed fetch:
    # one warning per state change (with the traceback, as it may be a bug), and retries.
    # A ValueError too: one caught as a network failure lost its traceback and its name.
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=error("a bug"))
    with caplog.at_level(logging.INFO, logger="resource_server.jwks"):
        for _ in range(10):
            clock.advance(61)  # expired, and past the longest backoff
            await key_set.maintain()
    assert route.call_count == 11
    records = [r for r in caplog.records if r.name == "resource_server.jwks"]
    assert len(records) == 1
    assert f"unexpected {error.__name__}: a bug" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert await key_set.key("k1") is not None  # the last good set still answers


@pytest.mark.parametrize(
    ("cache_control", "refresh_in"),
    [(None, 0.8 * 1000), ("max-age=500", 0.8 * 500)],
    ids=["kept", "updated"],
)
async def test_a_304_without_cache_control_keeps_the_lifetime(
    respx_mock, metadata_route, http, clock, rsa_private_key, cache_control, refresh_in
):
    # The audit: a 304 without Cache-Control set the lifetime to the 300 s default; RFC 9111
    # section 4.3.4 keeps the stored response's directives that a 304 does not carry.
    key_set = make_key_set(http, clock, revalidate=0)  # fetches follow the lifetime
    headers = {"Cache-Control": cache_control} if cache_control else {}
    route = respx_mock.get(JWKS_URL).mock(
        side_effect=[
            httpx.Response(
                200,
                json=jwks((rsa_private_key, "k1")),
                headers={"ETag": '"v1"', "Cache-Control": "max-age=1000"},
            ),
            httpx.Response(304, headers={"ETag": '"v1"', **headers}),
        ]
    )
    assert await key_set.maintain() == 0
    assert await key_set.maintain() == pytest.approx(800)  # refresh ahead at 80 %
    clock.advance(800)
    assert await key_set.maintain() == 0  # the refresh: a 304
    assert route.calls[1].request.headers["If-None-Match"] == '"v1"'
    assert await key_set.maintain() == pytest.approx(refresh_in)
    assert key_set.status().fresh


async def test_revalidation_can_be_turned_off(http, jwks_route, clock):
    key_set = make_key_set(http, clock, revalidate=0)
    await key_set.maintain()
    assert await key_set.maintain() == pytest.approx(0.8 * 600)  # refresh ahead only


# -- what the key set says about itself ------------------------------------------------------


async def test_logs_say_no_key_set_yet_rather_than_keeping_one(respx_mock, key_set, caplog):
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("refused"))
    with (
        caplog.at_level(logging.WARNING, logger="resource_server.jwks"),
        pytest.raises(KeySetUnavailable),
    ):
        await key_set.key("k1")
    messages = [r.getMessage() for r in caplog.records if r.name == "resource_server.jwks"]
    assert len(messages) == 1
    assert "no key set yet; retrying" in messages[0]
    assert "keeping" not in messages[0]


async def test_the_recovery_line_counts_one_failure_as_one(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, caplog
):
    route = respx_mock.get(JWKS_URL)
    route.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    route.mock(return_value=httpx.Response(200, json=jwks((rsa_private_key, "k1"))))
    clock.advance(2)  # past the first backoff step
    with caplog.at_level(logging.INFO, logger="resource_server.jwks"):
        assert await key_set.key("k1") is not None
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert recovered == [f"JWKS fetch from {ISSUER} recovered after 1 failure"]


async def test_a_recovery_ends_the_backoff_and_the_failure_count(
    respx_mock, metadata_route, http, clock, rsa_private_key, other_private_key, caplog
):
    key_set = make_key_set(http, clock, retry_base=30)
    route = respx_mock.get(JWKS_URL)
    route.mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(2):
        with pytest.raises(KeySetUnavailable):
            await key_set.key("k1")
        clock.advance(1)  # the second failure puts the next background try 30..60 s away
    route.mock(return_value=httpx.Response(200, json=jwks((rsa_private_key, "k1"))))
    with caplog.at_level(logging.INFO, logger="resource_server.jwks"):
        assert await key_set.key("k1") is not None  # a waiting caller fetches regardless
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert recovered == [f"JWKS fetch from {ISSUER} recovered after 2 failures"]
    assert key_set.status() == KeySetStatus(True, True, False, 0)
    # The issuer rotates a key in: no backoff is left to keep its kid from being fetched.
    route.mock(
        return_value=httpx.Response(
            200, json=jwks((rsa_private_key, "k1"), (other_private_key, "k2"))
        )
    )
    clock.advance(1)
    assert await key_set.key("k2") is not None


async def test_an_outage_like_one_before_a_recovery_is_logged_again(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, caplog
):
    route = respx_mock.get(JWKS_URL)
    good = httpx.Response(
        200, json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"}
    )
    route.mock(return_value=good)
    await key_set.key("k1")
    with caplog.at_level(logging.WARNING, logger="resource_server.jwks"):
        for _ in range(2):
            route.mock(side_effect=httpx.ConnectError("refused"))
            clock.advance(60)
            await key_set.maintain()  # fails, and says so
            route.mock(side_effect=None, return_value=good)
            clock.advance(2)
            await key_set.maintain()  # recovers
    outages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(outages) == 2
    assert all("keeping the last good key set" in message for message in outages)


async def test_logs_name_the_configured_jwks_url_they_fetch_from(respx_mock, http, clock, caplog):
    # The audit: with RS_JWKS_URL set (compose: http://proxy:8000/...), an outage was logged
    # as "JWKS fetch from <RS_ISSUER_URL> failed", an address never fetched from at all.
    configured = "https://keys.internal.test/jwks"
    key_set = RemoteKeySet(ISSUER, jwks_url=configured, client=http, clock=clock, sleep=clock.sleep)
    respx_mock.get(configured).mock(side_effect=httpx.ConnectError("refused"))
    with (
        caplog.at_level(logging.WARNING, logger="resource_server.jwks"),
        pytest.raises(KeySetUnavailable),
    ):
        await key_set.key("k1")
    messages = [r.getMessage() for r in caplog.records if r.name == "resource_server.jwks"]
    assert messages[0].startswith(f"JWKS fetch from {configured} failed: ")


async def test_logs_name_the_jwks_url_without_its_user_information(respx_mock, http, clock, caplog):
    # The observability audit: an RS_JWKS_URL with a password in it (a JWKS behind a proxy
    # asking for Basic) put that password in every outage warning.
    configured = "https://reader:s3cret-pw@keys.internal.test/jwks"
    key_set = RemoteKeySet(ISSUER, jwks_url=configured, client=http, clock=clock, sleep=clock.sleep)
    respx_mock.get(url__startswith="https://keys.internal.test/").mock(
        side_effect=httpx.ConnectError("refused")
    )
    with (
        caplog.at_level(logging.WARNING, logger="resource_server.jwks"),
        pytest.raises(KeySetUnavailable),
    ):
        await key_set.key("k1")
    messages = [r.getMessage() for r in caplog.records if r.name == "resource_server.jwks"]
    assert messages[0].startswith("JWKS fetch from https://keys.internal.test/jwks failed: ")
    assert not any("s3cret" in m or "reader" in m for m in messages)


async def test_logs_say_when_the_last_set_is_too_old_to_use(
    respx_mock, metadata_route, http, clock, rsa_private_key, caplog
):
    key_set = make_key_set(http, clock, stale_if_error=600)
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=httpx.ConnectError("refused"))
    with caplog.at_level(logging.WARNING, logger="resource_server.jwks"):
        clock.advance(61)
        await key_set.key("k1")
        await landed(key_set)
        clock.advance(600)
        with pytest.raises(KeySetUnavailable):
            await key_set.key("k1")
    messages = [r.getMessage() for r in caplog.records if r.name == "resource_server.jwks"]
    assert len(messages) == 2
    assert "keeping the last good key set" in messages[0]
    assert "past its stale-if-error limit" in messages[1]


async def test_status_tells_fresh_from_stale_and_a_failed_fetch(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    assert key_set.status() == KeySetStatus(False, False, False, 0)
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((rsa_private_key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    assert key_set.status() == KeySetStatus(True, True, False, 0)
    route.mock(side_effect=httpx.ConnectError("refused"))
    clock.advance(61)
    await key_set.key("k1")
    await landed(key_set)
    assert key_set.status() == KeySetStatus(True, False, True, 1)


async def test_a_revalidation_does_not_use_up_the_unknown_kid_cooldown(
    respx_mock, metadata_route, key_set, clock, rsa_private_key, other_private_key
):
    route = respx_mock.get(JWKS_URL)
    route.mock(return_value=etagged('"v1"', (rsa_private_key, "k1")))
    await key_set.key("k1")
    clock.advance(60)
    await key_set.maintain()  # the revalidation: same keys
    # The issuer rotates k2 in two seconds later; a token under it must not wait 30 s.
    route.mock(return_value=etagged('"v2"', (rsa_private_key, "k1"), (other_private_key, "k2")))
    clock.advance(2)
    assert await key_set.key("k2") is not None
    assert route.call_count == 3


async def failed_revalidation(
    respx_mock: respx.MockRouter, key_set: RemoteKeySet, clock: FakeClock, key: rsa.RSAPrivateKey
) -> respx.Route:
    """A set of "k1" fetched for a minute, then its revalidation refused: the JWKS route."""
    route = respx_mock.get(JWKS_URL)
    route.respond(json=jwks((key, "k1")), headers={"Cache-Control": "max-age=60"})
    await key_set.key("k1")
    route.mock(side_effect=httpx.ConnectError("refused"))
    clock.advance(60)
    await key_set.maintain()
    return route


async def test_an_unknown_kid_starts_no_fetch_while_retries_back_off(
    respx_mock, metadata_route, http, clock, rsa_private_key
):
    key_set = make_key_set(http, clock, retry_base=10)
    route = await failed_revalidation(respx_mock, key_set, clock, rsa_private_key)
    # Its next try is 5..10 s away.
    clock.advance(2)  # past the cooldown and the fetch gap, within the backoff
    assert await key_set.key("k2") is None
    assert route.call_count == 2


async def test_an_unknown_kid_starts_no_fetch_within_a_second_of_the_last_fetch_start(
    respx_mock, metadata_route, http, clock, rsa_private_key
):
    key_set = make_key_set(http, clock, retry_base=0.01)
    route = await failed_revalidation(respx_mock, key_set, clock, rsa_private_key)
    # Its backoff is over within 10 ms.
    clock.advance(0.5)  # the held set is a minute old, but a fetch started 0.5 s ago
    assert await key_set.key("k2") is None
    assert route.call_count == 2
    clock.advance(0.5)
    assert await key_set.key("k2") is None  # now it may look
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("revalidate", "after", "reason"),
    [
        (60, 60, "revalidate"),
        (0, 480, "refresh_ahead"),
        (500, 480, "refresh_ahead"),
        (0, 600, "expired"),
    ],
)
async def test_a_background_fetch_is_counted_under_its_cause(
    jwks_route, http, clock, revalidate, after, reason
):
    key_set = make_key_set(http, clock, revalidate=revalidate)
    await key_set.key("k1")  # max-age=600: refresh ahead at 480 s
    clock.advance(after)
    await key_set.maintain()
    assert key_set.stats.fetches == {("initial", "ok"): 1, (reason, "ok"): 1}


@pytest.mark.parametrize("held", [False, True], ids=["no-keys", "keys"])
async def test_a_key_rejected_and_not_replaced_is_none(
    respx_mock, metadata_route, http, clock, rsa_private_key, held
):
    route = respx_mock.get(JWKS_URL).respond(json=jwks((rsa_private_key, "k1")))
    key_set = make_key_set(http, clock)
    # The key a signature failed with: the one handed out, or (with none held) another's.
    key = await key_set.key("k1") if held else RSAKey.import_key(public_jwk(rsa_private_key, "k1"))
    assert key is not None
    assert await key_set.key("k1", rejected=key) is None
    await landed(key_set)
    assert route.call_count == 1


async def test_a_caller_that_waited_for_keys_makes_no_second_fetch_for_its_kid(
    respx_mock, metadata_route, key_set, clock, rsa_private_key
):
    responses = iter([httpx.ConnectError("not up yet")])

    async def respond(request: httpx.Request) -> httpx.Response:
        if (error := next(responses, None)) is not None:
            raise error
        await clock.sleep(3)  # a slow but successful fetch
        return httpx.Response(200, json=jwks((rsa_private_key, "k1")))

    route = respx_mock.get(JWKS_URL).mock(side_effect=respond)
    with pytest.raises(KeySetUnavailable):
        await key_set.key("k1")
    clock.advance(1)
    assert await key_set.key("unknown") is None  # at once: the set it waited for is the answer
    assert route.call_count == 2


async def test_an_outage_whose_cause_changes_is_logged_again(respx_mock, key_set, clock, caplog):
    # The issuer was not up yet; then it answered with metadata naming another issuer (a
    # trailing "/" apart). The second cause, the one to fix, went unlogged: same state.
    metadata = respx_mock.get(METADATA_URL)
    metadata.mock(side_effect=httpx.ConnectError("refused"))
    with caplog.at_level(logging.WARNING, logger="resource_server.jwks"):
        for _ in range(3):
            with contextlib.suppress(KeySetUnavailable):
                await key_set.key("k1")
            clock.advance(5)
        metadata.mock(return_value=httpx.Response(200, json={"issuer": ISSUER + "/"}))
        for _ in range(3):
            clock.advance(60)
            with contextlib.suppress(KeySetUnavailable):
                await key_set.key("k1")
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 2, failed
    assert "refused" in failed[0]
    assert f"metadata names issuer '{ISSUER}/', not '{ISSUER}'" in failed[1]


async def test_a_304_keeps_the_etag_for_the_next_revalidation(
    http, respx_mock, metadata_route, rsa_private_key, clock
):
    route = respx_mock.get(JWKS_URL)
    route.respond(
        json=jwks((rsa_private_key, "k1")),
        headers={"ETag": '"v1"', "Cache-Control": "max-age=600"},
    )
    key_set = make_key_set(http, clock)
    await key_set.key("k1")
    route.respond(304)
    for _ in range(2):
        clock.advance(61)  # past the revalidation interval
        await key_set.maintain()
        assert route.calls.last.request.headers.get("if-none-match") == '"v1"'
        assert not key_set.status().last_fetch_failed


async def test_a_refetch_of_the_same_keys_keeps_the_generation(http, jwks_route, clock):
    # A new generation ends every cached verification: only a change of keys may cause one.
    key_set = make_key_set(http, clock)
    await key_set.key("k1")
    generation = key_set.generation
    clock.advance(61)
    await key_set.maintain()
    assert jwks_route.call_count == 2
    assert key_set.generation == generation


async def test_a_jwks_of_exactly_max_bytes_is_accepted(
    http, respx_mock, metadata_route, rsa_private_key, clock
):
    body = json.dumps(jwks((rsa_private_key, "k1"))).encode()
    respx_mock.get(JWKS_URL).respond(content=body, headers={"Content-Type": "application/json"})
    key_set = make_key_set(http, clock, max_bytes=len(body))
    assert await key_set.key("k1") is not None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_ttl": 0, "stale_if_error": 0}, "stale_if_error must not be 0 when min_ttl is 0"),
        ({"min_ttl": 600, "max_ttl": 300}, "max_ttl must not be below min_ttl"),
        ({"timeout": 0}, "timeout must be greater than 0"),
        ({"cooldown": -1}, "cooldown must be a finite number >= 0"),
        ({"stale_if_error": float("inf")}, "stale_if_error must be a finite number >= 0"),
        ({"revalidate": float("nan")}, "revalidate must be a finite number >= 0"),
        ({"refresh_ahead": 0}, "refresh_ahead must be a fraction of the lifetime"),
        ({"refresh_ahead": 1.5}, "refresh_ahead must be a fraction of the lifetime"),
        ({"retry_base": 10, "retry_max": 5}, "retry_max must not be below retry_base"),
        ({"max_bytes": 0}, "max_bytes must be greater than 0"),
    ],
)
def test_a_policy_the_key_set_could_not_keep_is_refused_when_built(fields, message):
    # The RS_JWKS_* settings refused these, but a policy built in code was taken as given:
    # min_ttl=0 with stale_if_error=0 answered 503 to every request once the issuer sent
    # `max-age=0`.
    with pytest.raises(ValueError, match=message):
        CachePolicy(**fields)


def test_a_policy_field_that_is_not_a_number_is_refused():
    with pytest.raises(TypeError, match=r"CachePolicy\.timeout must be a number"):
        CachePolicy(timeout="5")  # type: ignore[arg-type]


def test_the_loosest_policies_that_still_work_are_taken():
    CachePolicy(min_ttl=0, stale_if_error=1, cooldown=0, fetch_gap=0, revalidate=0)
    CachePolicy(min_ttl=60, max_ttl=60, refresh_ahead=1, retry_base=1, retry_max=1)
