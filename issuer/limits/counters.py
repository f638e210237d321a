"""Expiring counters for rate limits: in-process, or in Redis when replicas must share them.

`CounterStore` is the whole interface. `FallbackStore` puts Redis first and, while Redis is
unreachable, the in-process store: limits then hold per process instead of failing open
(every guess allowed) or closed (every login refused). Each change of state is logged once.
"""

import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class CounterStore(Protocol):
    async def incr(self, key: str, window: float) -> tuple[int, float]:
        """Add one to `key` (created with a lifetime of `window`); the count and seconds left."""

    async def block(self, key: str, seconds: float) -> None:
        """Mark `key` for `seconds` (replacing any earlier mark)."""

    async def blocked(self, key: str) -> float:
        """Seconds left on the mark at `key`, or 0."""

    async def delete(self, *keys: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Counters in this process; bounded, so random keys cannot exhaust memory."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self._entries: dict[str, tuple[int, float]] = {}
        self._max_entries = max_entries
        self._clock = clock

    async def incr(self, key: str, window: float) -> tuple[int, float]:
        now = self._clock()
        count, expires_at = self._entries.get(key, (0, 0.0))
        if expires_at <= now:
            count, expires_at = 0, now + window
            self._make_room(now)
        self._entries[key] = (count + 1, expires_at)
        return count + 1, expires_at - now

    async def block(self, key: str, seconds: float) -> None:
        self._make_room(self._clock())
        self._entries[key] = (1, self._clock() + seconds)

    async def blocked(self, key: str) -> float:
        _, expires_at = self._entries.get(key, (0, 0.0))
        return max(0.0, expires_at - self._clock())

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def aclose(self) -> None:
        self._entries.clear()

    def _make_room(self, now: float) -> None:
        if len(self._entries) < self._max_entries:
            return
        self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
        while len(self._entries) >= self._max_entries:  # still full: drop the oldest
            del self._entries[next(iter(self._entries))]


class RedisStore:
    """Counters in Redis, shared by every replica; keys carry a prefix and always expire."""

    def __init__(self, client: "redis.Redis", prefix: str = "issuer:"):
        self._redis = client
        self._prefix = prefix

    async def incr(self, key: str, window: float) -> tuple[int, float]:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.pexpire(name, int(window * 1000), nx=True)
            pipe.pttl(name)
            count, _, ttl_ms = await pipe.execute()
        return int(count), max(0.0, ttl_ms / 1000)

    async def block(self, key: str, seconds: float) -> None:
        await self._redis.set(self._prefix + key, 1, px=max(1, int(seconds * 1000)))

    async def blocked(self, key: str) -> float:
        ttl_ms = await self._redis.pttl(self._prefix + key)
        return max(0.0, ttl_ms / 1000)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*(self._prefix + key for key in keys))

    async def aclose(self) -> None:
        pass  # the client is shared and closed by its owner


class FallbackStore:
    """Redis while it answers; the in-process store while it does not."""

    def __init__(self, primary: RedisStore, fallback: MemoryStore):
        self._primary = primary
        self._fallback = fallback
        self._degraded = False

    async def incr(self, key: str, window: float) -> tuple[int, float]:
        try:
            result = await self._primary.incr(key, window)
        except (RedisError, OSError) as exc:
            self._enter_degraded(exc)
            return await self._fallback.incr(key, window)
        self._leave_degraded()
        return result

    async def block(self, key: str, seconds: float) -> None:
        try:
            await self._primary.block(key, seconds)
        except (RedisError, OSError) as exc:
            self._enter_degraded(exc)
            await self._fallback.block(key, seconds)

    async def blocked(self, key: str) -> float:
        try:
            remote = await self._primary.blocked(key)
        except (RedisError, OSError) as exc:
            self._enter_degraded(exc)
            remote = 0.0
        # Marks set while degraded still count once Redis is back.
        return max(remote, await self._fallback.blocked(key))

    async def delete(self, *keys: str) -> None:
        await self._fallback.delete(*keys)
        try:
            await self._primary.delete(*keys)
        except (RedisError, OSError) as exc:
            self._enter_degraded(exc)

    async def aclose(self) -> None:
        await self._primary.aclose()

    def _enter_degraded(self, exc: Exception) -> None:
        if not self._degraded:
            log.warning("Redis unavailable (%s); rate limits now hold per process", exc)
            self._degraded = True

    def _leave_degraded(self) -> None:
        if self._degraded:
            log.info("Redis reachable again; rate limits are shared across replicas")
            self._degraded = False


def make_store(
    client: "redis.Redis | None",
    prefix: str = "issuer:",
    clock: Callable[[], float] = time.monotonic,
) -> CounterStore:
    if client is None:
        return MemoryStore(clock=clock)
    return FallbackStore(RedisStore(client, prefix), MemoryStore(clock=clock))
