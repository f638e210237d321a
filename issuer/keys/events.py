"""Key-set change signals over Redis pub/sub: replicas reload at once instead of at the next poll.

Polling (`ISSUER_KEYS_POLL_INTERVAL`) stays the guarantee; a signal only shortens the wait,
so a lost message or a Redis outage never leaves a replica on an old key set for longer.
"""

import asyncio
import logging

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
CHANNEL = "key-set-changed"


def announce(redis_url: str | None, prefix: str) -> None:
    """Tell every replica the key set changed (best effort; polling catches it anyway)."""
    if not redis_url:
        return
    try:
        with redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1) as client:
            client.publish(prefix + CHANNEL, "1")
    except (RedisError, OSError, ValueError) as exc:  # ValueError: a malformed URL
        log.warning(
            "could not announce the key-set change over Redis (%s); replicas will "
            "notice it at their next poll",
            exc,
        )


async def listen(client: "aioredis.Redis", prefix: str, wake: asyncio.Event) -> None:
    """Set `wake` on every announcement; reconnects with backoff forever."""
    delay = 1.0
    while True:
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(prefix + CHANNEL)
                delay = 1.0
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        wake.set()
        except Exception as exc:  # under uvloop a reset connection is a RuntimeError too
            # Polling still finds every change meanwhile; the listener only makes it sooner.
            log.debug("key-set signal listener lost Redis (%s); retrying", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30)
