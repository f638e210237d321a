"""Expiring counters: in-process, in the machine's Redis, and Redis with an in-process fallback."""

import asyncio
import logging
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from pydantic import ValidationError

from issuer.limits.counters import FallbackStore, MemoryStore, RedisStore
from issuer.limits.throttle import Throttle, Throttled, ThrottlePolicy
from issuer.settings import Settings
from tests.support import REDIS_URL

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


# MemoryStore, on the fake clock


async def test_memory_incr_counts_within_the_window_and_returns_seconds_left(clock):
    store = MemoryStore(clock=clock)
    assert await store.incr("ip:1", 60) == (1, 60)
    clock.advance(15)
    assert await store.incr("ip:1", 60) == (2, 45)
    assert await store.incr("ip:2", 60) == (1, 60)


async def test_memory_counter_restarts_once_its_window_has_passed(clock):
    store = MemoryStore(clock=clock)
    for _ in range(3):
        await store.incr("ip:1", 60)
    clock.advance(59.5)
    assert await store.incr("ip:1", 60) == (4, 0.5)
    clock.advance(0.5)
    assert await store.incr("ip:1", 60) == (1, 60)


async def test_memory_block_lasts_its_seconds_and_is_replaced_or_deleted(clock):
    store = MemoryStore(clock=clock)
    assert await store.blocked("user:alice") == 0
    await store.block("user:alice", 30)
    clock.advance(10)
    assert await store.blocked("user:alice") == 20
    await store.block("user:alice", 5)  # a new mark replaces, it does not extend
    assert await store.blocked("user:alice") == 5
    clock.advance(5)
    assert await store.blocked("user:alice") == 0
    await store.block("user:alice", 30)
    await store.incr("ip:1", 60)
    await store.delete("user:alice", "ip:1", "never-set")
    assert await store.blocked("user:alice") == 0
    assert await store.incr("ip:1", 60) == (1, 60)


async def test_memory_incr_capped_stops_counting_at_the_cap_until_the_window_ends(clock):
    store = MemoryStore(clock=clock)
    assert [await store.incr_capped("fail:1", 60, 2) for _ in range(2)] == [(1, 60), (2, 60)]
    clock.advance(10)
    assert await store.incr_capped("fail:1", 60, 2) == (3, 50)  # over the cap: not counted
    assert await store.incr_capped("fail:1", 60, 2) == (3, 50)
    assert await store.incr("fail:1", 60) == (3, 50)
    clock.advance(50)
    assert await store.incr_capped("fail:1", 60, 2) == (1, 60)


async def test_memory_backoff_without_free_failures_doubles_from_one_second(clock):
    # The review: with ISSUER_LOGIN_FREE_FAILURES=0 the in-process store counted the first
    # attempt against a cap of 0 (Redis counts nothing), and its backoff skipped the 2 s step.
    throttle = Throttle(MemoryStore(clock=clock), ThrottlePolicy(free_failures=0))
    waits = []
    for _ in range(4):
        await throttle.reserve_login("alice", "192.0.2.1")
        with pytest.raises(Throttled) as refused:
            await throttle.check_login("alice", "192.0.2.1")
        waits.append(refused.value.retry_after)
        clock.advance(refused.value.retry_after)
    assert waits == [1, 2, 4, 8]


async def test_memory_claim_sets_a_mark_only_where_none_is_live(clock):
    store = MemoryStore(clock=clock)
    assert await store.claim("backoff:1", 4) == 0
    clock.advance(1)
    assert await store.claim("backoff:1", 30) == 3  # the first mark stands
    assert await store.blocked("backoff:1") == 3
    clock.advance(3)
    assert await store.claim("backoff:1", 8) == 0
    assert await store.blocked("backoff:1") == 8


async def test_memory_counters_at_their_bound_drop_expired_ones_before_live_ones(clock):
    store = MemoryStore(max_entries=3, clock=clock)
    await store.incr("live-1", 100)  # the oldest counter, still live
    await store.incr("old", 10)
    await store.incr("live-2", 100)
    clock.advance(20)  # "old" has expired, the others have not
    await store.incr("new", 100)
    assert await store.incr("live-1", 100) == (2, 80)
    assert await store.incr("live-2", 100) == (2, 80)
    assert await store.incr("old", 10) == (1, 10)


async def test_memory_counters_never_exceed_their_bound(clock):
    store = MemoryStore(max_entries=4, clock=clock)
    for i in range(50):
        await store.incr(f"ip:{i}", 1000)
    # With nothing expired, the oldest counters made room for the newest.
    assert [(await store.incr(f"ip:{i}", 1000))[0] for i in range(46, 50)] == [2, 2, 2, 2]
    assert (await store.incr("ip:0", 1000))[0] == 1


async def test_a_full_table_of_live_counters_makes_room_for_a_tenth_at_once(clock):
    # The review: with every counter live, each new key swept the whole table again (14 ms
    # at 100,000): a flood of new keys then held the event loop.
    store = MemoryStore(max_entries=1000, clock=clock)
    for i in range(1000):
        await store.incr(f"ip:{i}", 1000)
    await store.incr("new:0", 1000)
    assert len(store._counters) == 901  # the oldest hundred went, in one sweep
    assert (await store.incr("ip:99", 1000))[0] == 1
    for i in range(1, 99):
        await store.incr(f"new:{i}", 1000)
    assert [(await store.incr(f"ip:{i}", 1000))[0] for i in (100, 500, 999)] == [2, 2, 2]
    assert len(store._counters) <= 1000


async def test_forgettable_marks_are_bounded_and_lockouts_outlive_them(clock):
    store = MemoryStore(max_entries=100, clock=clock)
    await store.block("userlock:alice", 60)
    for i in range(1000):
        await store.block(f"known:alice:{i}", 3600, forgettable=True)
    assert len(store._counters) <= 100 and len(store._marks) == 1
    assert await store.blocked("known:alice:999") == 3600  # the newest are kept
    assert await store.blocked("known:alice:0") == 0  # the oldest forgotten
    assert await store.blocked("userlock:alice") == 60
    clock.advance(3600)
    assert await store.blocked("known:alice:999") == 0


async def test_an_active_lockout_survives_a_flood_of_new_keys(clock):
    # The audit: after 100,000 requests from distinct addresses, alice's lockout was gone.
    store = MemoryStore(max_entries=1000, clock=clock)
    await store.block("userlock:alice", 60)
    for i in range(10_001):  # ten times the bound, as 100,000 was for the default bound
        await store.incr(f"ip:{i}", 60)
        if i % 7 == 0:
            await store.block(f"backoff:bot:{i}", 1)  # short marks from the flood itself
            clock.advance(0.0001)
    assert await store.blocked("userlock:alice") > 0
    clock.advance(61)
    assert await store.blocked("userlock:alice") == 0


async def test_expired_marks_are_swept_as_new_ones_arrive(clock):
    store = MemoryStore(max_entries=10, clock=clock)
    for i in range(1000):
        await store.block(f"mark:{i}", 1)
        clock.advance(0.1)
    assert len(store._marks) <= 2 * 10 + 10


# RedisStore, against the machine's Redis; every test's keys carry a prefix of their own


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis_client: redis.Redis) -> AsyncIterator[str]:
    prefix = f"test-counters:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis_client.delete(*keys)


async def test_redis_incr_counts_and_sets_the_window_once(redis_client, prefix):
    store = RedisStore(redis_client, prefix)
    count, left = await store.incr("ip:1", 60)
    assert count == 1
    assert 59 < left <= 60
    count, again = await store.incr("ip:1", 60)
    assert count == 2
    assert again <= left  # a later hit does not push the window out
    assert (await store.incr("ip:2", 60))[0] == 1
    assert int(await redis_client.get(f"{prefix}ip:1")) == 2
    assert 0 < await redis_client.pttl(f"{prefix}ip:1") <= 60_000


async def test_redis_block_lasts_its_seconds_and_is_replaced_or_deleted(redis_client, prefix):
    store = RedisStore(redis_client, prefix)
    assert await store.blocked("user:alice") == 0
    await store.block("user:alice", 30)
    assert 29 < await store.blocked("user:alice") <= 30
    await store.block("user:alice", 5)
    assert 4 < await store.blocked("user:alice") <= 5
    await store.incr("ip:1", 60)
    await store.delete("user:alice", "ip:1", "never-set")
    assert await store.blocked("user:alice") == 0
    assert await redis_client.exists(f"{prefix}user:alice", f"{prefix}ip:1") == 0
    assert (await store.incr("ip:1", 60))[0] == 1


async def test_redis_stores_with_different_prefixes_do_not_share_counters(redis_client, prefix):
    mine, theirs = RedisStore(redis_client, prefix), RedisStore(redis_client, prefix + "other:")
    await mine.incr("ip:1", 60)
    await mine.incr("ip:1", 60)
    assert (await theirs.incr("ip:1", 60))[0] == 1
    assert (await mine.incr("ip:1", 60))[0] == 3


async def test_redis_incr_capped_stops_counting_at_the_cap(redis_client, prefix):
    store = RedisStore(redis_client, prefix)
    assert [(await store.incr_capped("fail:1", 60, 2))[0] for _ in range(4)] == [1, 2, 3, 3]
    assert int(await redis_client.get(f"{prefix}fail:1")) == 2
    assert 0 < await redis_client.pttl(f"{prefix}fail:1") <= 60_000
    assert (await store.incr("fail:1", 60))[0] == 3


async def test_redis_claim_sets_a_mark_only_where_none_is_live(redis_client, prefix):
    store = RedisStore(redis_client, prefix)
    assert await store.claim("backoff:1", 30) == 0
    assert 29 < await store.claim("backoff:1", 5) <= 30  # the first mark stands
    assert 29 < await store.blocked("backoff:1") <= 30
    await store.delete("backoff:1")
    assert await store.claim("backoff:1", 5) == 0
    assert 4 < await store.blocked("backoff:1") <= 5


async def test_redis_caps_and_claims_give_a_key_left_without_expiry_one(redis_client, prefix):
    # Such a key never expired: a cap or backoff that held for ever, with Retry-After: 0-1.
    store = RedisStore(redis_client, prefix)
    await redis_client.set(f"{prefix}fail:1", 5)
    await redis_client.set(f"{prefix}backoff:1", 1)
    assert (await store.incr_capped("fail:1", 60, 2))[0] == 6
    assert 0 < await redis_client.pttl(f"{prefix}fail:1") <= 60_000
    assert 29 < await store.claim("backoff:1", 30) <= 30
    assert 29 < await store.blocked("backoff:1") <= 30


async def test_the_longest_window_the_settings_take_is_one_redis_keeps(redis_client, prefix):
    # The audit: ISSUER_RATE_LIMIT_WINDOW=10**16 was taken, Redis refused every expiry of it
    # ("value is not an integer or out of range", after the pipeline's INCR had counted), and
    # the issuer logged Redis as unavailable and limited per process, for ever.
    with pytest.raises(ValidationError, match="rate_limit_window"):
        Settings(rate_limit_window=10**16)
    (longest,) = (
        bound.le
        for bound in Settings.model_fields["rate_limit_window"].metadata
        if hasattr(bound, "le")
    )
    store = RedisStore(redis_client, prefix)
    assert await store.incr("ip:1", longest) == (1, pytest.approx(longest, abs=1))
    assert await store.incr_capped("fail:1", longest, 5) == (1, pytest.approx(longest, abs=1))
    assert Settings(rate_limit_window=longest).rate_limit_window == longest


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_racing_calls_never_pass_the_cap_or_claim_twice(redis_client, prefix, clock, kind):
    store = MemoryStore(clock=clock) if kind == "memory" else RedisStore(redis_client, prefix)
    counts = await asyncio.gather(*(store.incr_capped("fail:1", 60, 5) for _ in range(50)))
    assert sorted(count for count, _ in counts if count <= 5) == [1, 2, 3, 4, 5]
    claims = await asyncio.gather(*(store.claim("backoff:1", 30) for _ in range(50)))
    assert claims.count(0) == 1


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_cap_of_zero_counts_nothing(redis_client, prefix, clock, kind):
    store = MemoryStore(clock=clock) if kind == "memory" else RedisStore(redis_client, prefix)
    assert [(await store.incr_capped("fail:1", 60, 0))[0] for _ in range(3)] == [1, 1, 1]
    await store.incr("fail:1", 60)
    assert (await store.incr_capped("fail:1", 60, 0))[0] == 2


# FallbackStore with Redis down


@pytest.fixture
async def dead_redis() -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(DEAD_REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


async def test_redis_down_falls_back_to_memory_and_limits_still_count(dead_redis, clock, caplog):
    store = FallbackStore(RedisStore(dead_redis), MemoryStore(clock=clock))
    with caplog.at_level(logging.INFO, logger="issuer.limits.counters"):
        assert [await store.incr("ip:1", 60) for _ in range(3)] == [(1, 60), (2, 60), (3, 60)]
        await store.block("user:alice", 30)
        clock.advance(10)
        assert await store.blocked("user:alice") == 20
        assert await store.incr("ip:1", 60) == (4, 50)
        await store.delete("user:alice", "ip:1")
        assert await store.blocked("user:alice") == 0
        assert await store.incr("ip:1", 60) == (1, 60)
        await store.aclose()
    records = [r for r in caplog.records if r.name == "issuer.limits.counters"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert "Redis unavailable" in records[0].getMessage()


async def test_redis_down_caps_and_claims_in_memory(dead_redis, clock):
    store = FallbackStore(RedisStore(dead_redis), MemoryStore(clock=clock))
    assert [(await store.incr_capped("fail:1", 60, 1))[0] for _ in range(2)] == [1, 2]
    assert await store.claim("backoff:1", 30) == 0
    assert await store.claim("backoff:1", 30) == 30


async def test_fallback_uses_redis_while_it_answers(redis_client, prefix, clock, caplog):
    fallback = MemoryStore(clock=clock)
    store = FallbackStore(RedisStore(redis_client, prefix), fallback)
    with caplog.at_level(logging.INFO, logger="issuer.limits.counters"):
        await store.incr("ip:1", 60)
        await store.block("user:alice", 30)
    assert int(await redis_client.get(f"{prefix}ip:1")) == 1
    assert await fallback.blocked("user:alice") == 0
    assert 29 < await store.blocked("user:alice") <= 30
    assert [(await store.incr_capped("fail:1", 60, 1))[0] for _ in range(2)] == [1, 2]
    assert await store.claim("backoff:1", 30) == 0
    assert int(await redis_client.get(f"{prefix}fail:1")) == 1
    assert await redis_client.exists(f"{prefix}backoff:1") == 1
    assert not [r for r in caplog.records if r.name == "issuer.limits.counters"]


async def test_the_throttle_keeps_no_copy_of_form_sized_usernames(clock):
    throttle = Throttle(MemoryStore(clock=clock), ThrottlePolicy())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(200):  # the token endpoint's forms may hold ~64 KiB
            username = f"{number:04d}" + "x" * 60_000
            await throttle.check_login(username, "192.0.2.1")
            await throttle.reserve_login(username, "192.0.2.1")
            del username
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Counters keyed by short digests: a few kilobytes, not 200 x 60 KB = 12 MB.
    assert retained < 1_000_000, retained


async def test_any_failure_of_a_redis_call_falls_back_and_drops_the_pooled_connections(
    redis_client, prefix, clock, monkeypatch
):
    # The audit, under uvloop: a reset connection raised RuntimeError from redis-py, which
    # was answered 500, and the broken connection was handed out again minutes later.
    primary = RedisStore(redis_client, prefix)
    store = FallbackStore(primary, MemoryStore(clock=clock))
    dropped = []

    async def reset(*_: object) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    async def drop() -> None:
        dropped.append(True)

    monkeypatch.setattr(primary, "incr", reset)
    monkeypatch.setattr(primary, "drop_connections", drop)
    assert await store.incr("ip:1", 60) == (1, 60)  # counted in memory, no error
    assert dropped == [True]
    monkeypatch.undo()
    await primary.drop_connections()  # the real one: the pool reconnects on its next call
    assert await primary.incr("ip:2", 60) == (1, 60)


async def test_a_restart_of_redis_is_one_outage_however_many_stale_connections(
    redis_client, prefix, clock, monkeypatch, caplog
):
    # The audit: after a Redis restart each stale pooled connection failed once, and a call
    # already waiting when the breaker opened closed it again on answering: eleven
    # "unavailable" / "reachable again" pairs in 2.6 s, and shared limits flickering off.
    primary = RedisStore(redis_client, prefix)
    store = FallbackStore(primary, MemoryStore(clock=clock), clock=clock)
    answer_waiting, dropped = asyncio.Event(), []
    real_incr, calls = primary.incr, 0

    async def after_restart(key: str, window: float) -> tuple[int, float]:
        nonlocal calls
        calls += 1
        if calls == 1:  # on a connection that survived: answers once the breaker is open
            await answer_waiting.wait()
            return await real_incr(key, window)
        if calls <= 4:  # stale connections
            raise redis.ConnectionError("Connection closed by server.")
        return await real_incr(key, window)

    async def drop() -> None:
        dropped.append(True)

    monkeypatch.setattr(primary, "incr", after_restart)
    monkeypatch.setattr(primary, "drop_connections", drop)
    with caplog.at_level(logging.INFO, logger="issuer.limits.counters"):
        waiting = asyncio.create_task(store.incr("ip:1", 60))
        await asyncio.sleep(0)
        assert await store.incr("ip:2", 60) == (1, 60)  # fails: trips, counted in memory
        answer_waiting.set()
        await waiting  # answered by Redis, but no probe: the breaker stays open
        assert dropped == [True]  # the idle connections went with the first failure
        assert await store.incr("ip:3", 60) == (1, 60)  # in memory, Redis not asked
        assert calls == 2
        clock.advance(1.1)
        await store.incr("ip:4", 60)  # the probe, on a stale connection: open again
        clock.advance(2.1)
        await store.incr("ip:5", 60)  # the next probe, also stale
        clock.advance(4.1)
        await store.incr("ip:6", 60)  # a fresh connection: closed
        assert int(await redis_client.get(f"{prefix}ip:6")) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "issuer.limits.counters"]
    assert [m.split(" (")[0].split(";")[0] for m in messages] == [
        "Redis unavailable",
        "Redis reachable again",
    ]


def cut_off(primary: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis refuses every call until `monkeypatch.undo()`."""

    async def unreachable(*_: object, **__: object) -> object:
        raise redis.ConnectionError("Connection refused")

    async def drop() -> None:
        pass

    for method in ("incr", "incr_capped", "block", "blocked", "claim", "delete"):
        monkeypatch.setattr(primary, method, unreachable)
    monkeypatch.setattr(primary, "drop_connections", drop)


async def test_deletes_made_while_redis_was_away_are_made_there_once_it_is_back(
    redis_client, prefix, clock, monkeypatch
):
    # A login that succeeds during an outage clears its failures: the lock Redis still holds
    # must not refuse the user again the moment Redis is back.
    primary = RedisStore(redis_client, prefix)
    store = FallbackStore(primary, MemoryStore(clock=clock), clock=clock)
    await store.block("userlock:alice", 300)
    await store.block("userlock:bob", 300)
    cut_off(primary, monkeypatch)
    await store.delete("userlock:alice", "fail:alice")  # the first failure: trips
    await store.delete("userlock:alice")  # while open: Redis not asked
    assert await store.blocked("userlock:alice") == 0
    monkeypatch.undo()
    assert await redis_client.exists(f"{prefix}userlock:alice") == 1
    clock.advance(1.1)
    await store.incr("ip:1", 60)  # the probe: Redis answers, the breaker closes
    assert await redis_client.exists(f"{prefix}userlock:alice") == 0
    assert await store.blocked("userlock:alice") == 0
    assert 299 < await store.blocked("userlock:bob") <= 300  # only what was deleted


async def test_deletes_kept_for_redis_are_bounded_and_newer_memory_marks_survive_them(
    redis_client, prefix, clock, monkeypatch
):
    primary = RedisStore(redis_client, prefix)
    store = FallbackStore(primary, MemoryStore(clock=clock), clock=clock, max_unsent_deletes=2)
    for user in ("a", "b", "c"):
        await store.block(f"userlock:{user}", 300)
    cut_off(primary, monkeypatch)
    for user in ("a", "b", "c"):
        await store.delete(f"userlock:{user}")
    await store.block("userlock:c", 60)  # set in memory after its delete
    monkeypatch.undo()
    clock.advance(1.1)
    await store.incr("ip:1", 60)  # the probe
    assert await redis_client.exists(f"{prefix}userlock:a") == 1  # the oldest was let go
    assert await redis_client.exists(f"{prefix}userlock:b") == 0
    assert await redis_client.exists(f"{prefix}userlock:c") == 0
    assert await store.blocked("userlock:c") == pytest.approx(58.9)


async def test_an_outage_of_any_length_keeps_the_retries_at_their_cap(
    redis_client, prefix, clock, monkeypatch
):
    # The review: the retry delay was 2 ** (failed probes - 1) s before the 30 s cap was
    # applied, and the 1,025th failed probe in a row (8.5 hours into an outage) overflowed
    # the float: every limited request was answered 500 until Redis came back.
    primary = RedisStore(redis_client, prefix)
    store = FallbackStore(primary, MemoryStore(clock=clock), clock=clock)
    cut_off(primary, monkeypatch)
    for _ in range(1100):  # the first trips, each later one is a probe that fails
        await store.incr("ip:1", 60)
        clock.advance(30.1)
    monkeypatch.undo()
    clock.advance(-1.2)  # 29 s after the last probe: Redis is not asked yet
    await store.incr("ip:2", 60)
    assert await redis_client.exists(f"{prefix}ip:2") == 0
    clock.advance(1.2)  # 30 s after it: the next probe, which Redis answers
    await store.incr("ip:2", 60)
    assert int(await redis_client.get(f"{prefix}ip:2")) == 1


async def test_an_address_a_user_logged_in_from_passes_the_account_cap_for_30_days_no_longer(
    clock,
):
    policy = ThrottlePolicy(per_username=3)
    thirty_days = 30 * 86400  # as documented
    throttle = Throttle(MemoryStore(clock=clock), policy)
    await throttle.record_success("alice", "192.0.2.10")

    async def botnet_locks_the_account() -> None:
        for i in range(policy.per_username):
            await throttle.reserve_login("alice", f"203.0.113.{i}")
        with pytest.raises(Throttled):
            await throttle.check_login("alice", "198.51.100.7")

    clock.advance(thirty_days - policy.window - 1)
    await botnet_locks_the_account()
    await throttle.check_login("alice", "192.0.2.10")  # home still passes
    clock.advance(policy.window + 2)  # 30 days and a second since the login: a stranger
    await botnet_locks_the_account()
    with pytest.raises(Throttled):
        await throttle.check_login("alice", "192.0.2.10")
