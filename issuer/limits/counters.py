"""Expiring counters for rate limits: in-process, or in Redis when replicas must share them.

`CounterStore` is the whole interface. `FallbackStore` puts Redis first and, while Redis is
unreachable or hung, the in-process store: limits then hold per process instead of failing
open (every guess allowed) or closed (every login refused). Each change of state is logged
once.
"""

import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import redis.asyncio as redis

log = logging.getLogger(__name__)
T = TypeVar("T")


class CounterStore(Protocol):
    async def incr(self, key: str, window: float) -> tuple[int, float]:
        """Add one to `key` (created with a lifetime of `window`); the count and seconds left."""

    async def incr_capped(self, key: str, window: float, cap: int) -> tuple[int, float]:
        """`incr`, unless `key` already counts `cap`: then nothing changes, and the count
        answered is the one this call would have made (over `cap`). Atomic: of any number of
        racing calls, at most `cap` are counted."""

    async def block(self, key: str, seconds: float, *, forgettable: bool = False) -> None:
        """Mark `key` for `seconds` (replacing any earlier mark). A `forgettable` mark may be
        dropped early to bound memory, as a counter may: only for marks whose loss makes a
        limit stricter, never looser (a known address, not a lockout)."""

    async def blocked(self, key: str) -> float:
        """Seconds left on the mark at `key`, or 0."""

    async def claim(self, key: str, seconds: float) -> float:
        """`block`, unless `key` already has a mark: 0 if this call set it, else the seconds
        left on the one there. Atomic: of any number of racing calls, one sets it."""

    async def delete(self, *keys: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Counters and marks in this process.

    Counters (windows) are bounded: when full, expired ones go first, then the oldest (a
    lost counter only restarts a window), down to nine tenths of the bound, so a full table
    is swept once in a tenth of its size of new keys, not at every one. Forgettable marks
    (known addresses) live among the counters, bounded the same way. Other marks (lockouts,
    backoffs) are never evicted before they expire, so no flood of new keys can lift a
    lockout; they are bounded by how fast the limits let anyone create them and by their
    lifetimes, and the expired ones are swept as new ones arrive.

    No method awaits anything that yields to the event loop, so each call is atomic.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self._counters: dict[str, tuple[int, float]] = {}
        self._marks: dict[str, float] = {}
        self._max_entries = max_entries
        self._sweep_at = max_entries
        self._clock = clock

    async def incr(self, key: str, window: float) -> tuple[int, float]:
        now = self._clock()
        count, expires_at = self._counters.get(key, (0, 0.0))
        if expires_at <= now:
            count, expires_at = 0, now + window
            self._counters.pop(key, None)
            self._make_room(now)
        self._counters[key] = (count + 1, expires_at)
        return count + 1, expires_at - now

    async def incr_capped(self, key: str, window: float, cap: int) -> tuple[int, float]:
        now = self._clock()
        count, expires_at = self._counters.get(key, (0, 0.0))
        if expires_at <= now:
            # None live counts 0, which a cap of 0 has reached: counted, it made a login
            # backoff without free failures 1 s, 4 s, 8 s where Redis's is 1 s, 2 s, 4 s.
            count, expires_at = 0, now
        if count >= cap:
            return count + 1, expires_at - now
        return await self.incr(key, window)

    async def block(self, key: str, seconds: float, *, forgettable: bool = False) -> None:
        now = self._clock()
        if forgettable:
            if self._counters.pop(key, None) is None:
                self._make_room(now)
            self._counters[key] = (1, now + seconds)
            return
        if len(self._marks) >= self._sweep_at:
            self._marks = {k: until for k, until in self._marks.items() if until > now}
            # Sweep again only after the live marks have doubled: amortized O(1) per mark.
            self._sweep_at = max(self._max_entries, 2 * len(self._marks))
        self._marks[key] = now + seconds

    async def blocked(self, key: str) -> float:
        until = self._marks.get(key)
        if until is None:
            until = self._counters.get(key, (0, 0.0))[1]  # a forgettable mark, if any
        return max(0.0, until - self._clock())

    async def claim(self, key: str, seconds: float) -> float:
        left = await self.blocked(key)
        if not left:
            await self.block(key, seconds)
        return left

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._counters.pop(key, None)
            self._marks.pop(key, None)

    async def aclose(self) -> None:
        self._counters.clear()
        self._marks.clear()

    def _make_room(self, now: float) -> None:
        if len(self._counters) < self._max_entries:
            return
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
        # Still nearly full: drop the oldest down to nine tenths. Making room for one key at a
        # time swept the whole table again at every new key (14 ms each at 100,000).
        excess = len(self._counters) - self._max_entries * 9 // 10
        for key in list(itertools.islice(self._counters, max(0, excess))):
            del self._counters[key]


# Lua scripts run whole on the server: no other client's command falls between the
# comparison and the write, however many replicas race. A key found without an expiry (left
# by hand, or by a crash of another writer) gets one: a limit must never hold for ever.
_INCR_CAPPED = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count < tonumber(ARGV[1]) then
  redis.call('INCR', KEYS[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
return {count + 1, redis.call('PTTL', KEYS[1])}
"""
_CLAIM = """
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return math.max(redis.call('PTTL', KEYS[1]), 1)
"""


class RedisStore:
    """Counters in Redis, shared by every replica; keys carry a prefix and always expire."""

    def __init__(self, client: "redis.Redis", prefix: str = "issuer:"):
        self._redis = client
        self._prefix = prefix
        self._incr_capped = client.register_script(_INCR_CAPPED)
        self._claim = client.register_script(_CLAIM)

    async def incr(self, key: str, window: float) -> tuple[int, float]:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.pexpire(name, int(window * 1000), nx=True)
            pipe.pttl(name)
            count, _, ttl_ms = await pipe.execute()
        return int(count), max(0.0, ttl_ms / 1000)

    async def incr_capped(self, key: str, window: float, cap: int) -> tuple[int, float]:
        count, ttl_ms = await self._incr_capped(
            keys=[self._prefix + key], args=[cap, int(window * 1000)]
        )
        return int(count), max(0.0, int(ttl_ms) / 1000)

    async def block(self, key: str, seconds: float, *, forgettable: bool = False) -> None:
        # Never forgotten early: Redis cannot tell it from a lockout. Every key expires.
        await self._redis.set(self._prefix + key, 1, px=max(1, int(seconds * 1000)))

    async def blocked(self, key: str) -> float:
        ttl_ms = await self._redis.pttl(self._prefix + key)
        return max(0.0, ttl_ms / 1000)

    async def claim(self, key: str, seconds: float) -> float:
        ttl_ms = await self._claim(keys=[self._prefix + key], args=[max(1, int(seconds * 1000))])
        return int(ttl_ms) / 1000

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*(self._prefix + key for key in keys))

    async def aclose(self) -> None:
        pass  # the client is shared and closed by its owner

    async def drop_connections(self) -> None:
        """Close every pooled connection: after an error redis-py does not recognise as a
        connection's end, it would hand the same broken connection out again."""
        # Idle ones only: a connection in use (another request's call, the key-change
        # listener) is its user's to keep or drop.
        await self._redis.connection_pool.disconnect(inuse_connections=False)


# 2 ** 32 times retry_after is far past any max_retry_after; the cap keeps the float finite
# (uncapped, the 1,025th failed probe in a row, some 8.5 hours into an outage, overflowed it).
_MAX_RETRY_EXPONENT = 32


class FallbackStore:
    """Redis while it answers; the in-process store while it does not.

    A circuit breaker keeps a failing Redis from costing every request a timeout. The first
    failure opens it: calls then go straight to the in-process store for `retry_after`
    seconds (doubling while Redis keeps failing, up to `max_retry_after`). After that, one
    call probes Redis while the others keep to the in-process store; its success closes the
    breaker, its failure opens it again. Calls already waiting on Redis when it opened end
    as they end, and their failures do not count again.

    Deletes Redis missed (a login's success clearing its failures and lockouts) are kept, up
    to `max_unsent_deletes` keys, and made there when it answers again: otherwise the lock
    it still holds would refuse, once it is back, the user who has just logged in.
    """

    def __init__(
        self,
        primary: RedisStore,
        fallback: MemoryStore,
        retry_after: float = 1.0,
        max_retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_unsent_deletes: int = 10_000,
    ):
        self._primary = primary
        self._fallback = fallback
        self._retry_after = retry_after
        self._max_retry_after = max_retry_after
        self._clock = clock
        self._open_until = 0.0  # while failing and now < this, Redis is not tried
        self._failures = 0  # consecutive failed probes (0: closed)
        self._probing = False
        # Insertion-ordered set; when full, the oldest go (their locks then expire by
        # themselves, as they would have without the login that cleared them).
        self._unsent_deletes: dict[str, None] = {}
        self._max_unsent_deletes = max_unsent_deletes

    async def incr(self, key: str, window: float) -> tuple[int, float]:
        _, result = await self._on_redis(lambda redis: redis.incr(key, window))
        return result if result is not None else await self._fallback.incr(key, window)

    async def incr_capped(self, key: str, window: float, cap: int) -> tuple[int, float]:
        _, result = await self._on_redis(lambda redis: redis.incr_capped(key, window, cap))
        if result is not None:
            return result
        return await self._fallback.incr_capped(key, window, cap)

    async def block(self, key: str, seconds: float, *, forgettable: bool = False) -> None:
        answered, _ = await self._on_redis(lambda redis: redis.block(key, seconds))
        if not answered:
            await self._fallback.block(key, seconds, forgettable=forgettable)

    async def blocked(self, key: str) -> float:
        _, remote = await self._on_redis(lambda redis: redis.blocked(key))
        # Marks set while degraded still count once Redis is back.
        return max(remote or 0.0, await self._fallback.blocked(key))

    async def claim(self, key: str, seconds: float) -> float:
        # As in `blocked`: a mark set while degraded holds even once Redis is back.
        local = await self._fallback.blocked(key)
        if local:
            return local
        _, remote = await self._on_redis(lambda redis: redis.claim(key, seconds))
        return remote if remote is not None else await self._fallback.claim(key, seconds)

    async def delete(self, *keys: str) -> None:
        await self._fallback.delete(*keys)
        await self._delete_on_redis(keys)

    async def aclose(self) -> None:
        await self._primary.aclose()

    async def _on_redis(self, call: Callable[[RedisStore], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run `call` on Redis if the breaker lets this call through: (True, its result);
        (False, None) if it is open, another call is probing, or Redis failed."""
        probe = False
        if self._failures:
            if self._probing or self._clock() < self._open_until:
                return False, None
            self._probing = probe = True
        try:
            result = await call(self._primary)
        except Exception as exc:
            # Any failure of the call is Redis failing, not the request: under uvloop a reset
            # connection raises RuntimeError ("unable to perform operation on <TCPTransport
            # closed=True>"), which was answered 500, and again whenever it came back out.
            # The pool's idle connections go too: after a restart of Redis each one would fail
            # once more, and trip the breaker again, as it was handed out.
            with contextlib.suppress(Exception):
                await self._primary.drop_connections()
            if probe or not self._failures:
                self._trip(exc)
            return False, None
        finally:
            if probe:
                self._probing = False
        # Only the probe closes the breaker: a call that was already waiting when it opened,
        # answered on a connection that survived, says nothing of the ones that did not.
        if probe:
            self._recover()
            await self._send_unsent_deletes()
        return True, result

    def _keep_unsent(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._unsent_deletes.pop(key, None)  # re-inserted as the newest
            self._unsent_deletes[key] = None
        while len(self._unsent_deletes) > self._max_unsent_deletes:
            del self._unsent_deletes[next(iter(self._unsent_deletes))]

    async def _send_unsent_deletes(self) -> None:
        keys = list(self._unsent_deletes)
        self._unsent_deletes.clear()
        if keys:
            # Redis only: marks set in memory since then are newer than these deletes. The
            # breaker is closed now: a failure here trips it again and keeps them.
            await self._delete_on_redis(keys)

    async def _delete_on_redis(self, keys: Sequence[str]) -> None:
        answered, _ = await self._on_redis(lambda redis: redis.delete(*keys))
        if not answered:
            self._keep_unsent(keys)

    def _trip(self, exc: Exception) -> None:
        if not self._failures:
            log.warning("Redis unavailable (%s); rate limits now hold per process", exc)
        self._failures += 1
        exponent = min(self._failures - 1, _MAX_RETRY_EXPONENT)
        delay = min(self._max_retry_after, self._retry_after * 2**exponent)
        self._open_until = self._clock() + delay

    def _recover(self) -> None:
        if self._failures:
            log.info("Redis reachable again; rate limits are shared across replicas")
            self._failures = 0


def make_store(
    client: "redis.Redis | None",
    prefix: str = "issuer:",
    clock: Callable[[], float] = time.monotonic,
) -> CounterStore:
    if client is None:
        return MemoryStore(clock=clock)
    return FallbackStore(RedisStore(client, prefix), MemoryStore(clock=clock), clock=clock)
