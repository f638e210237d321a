"""Key-set change signals over Redis pub/sub: replicas reload at once instead of at the next poll.

Polling (`ISSUER_KEYS_POLL_INTERVAL`) stays the guarantee; a signal only shortens the wait,
so a lost message or a Redis outage never leaves a replica on an old key set for longer.
"""

import asyncio
import logging

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
CHANNEL = "key-set-changed"
# A subscription hears nothing between announcements: after this many seconds of silence a
# ping must be answered within as many again, or the connection is given up and made anew.
# Waiting on it for ever, a listener whose Redis went without a word (a network partition,
# its host lost) never heard another announcement, though Redis was soon back.
SILENCE = 30.0


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
    """Set `wake` on every announcement; reconnects with backoff forever, also when Redis
    stops answering (`SILENCE`)."""
    delay = 1.0
    while True:
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(prefix + CHANNEL)
                delay = 1.0
                await _relay(pubsub, wake)
        except Exception as exc:  # under uvloop a reset connection is a RuntimeError too
            # Polling still finds every change meanwhile; the listener only makes it sooner.
            log.debug("key-set signal listener lost Redis (%s); retrying", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30)


async def _relay(pubsub: PubSub, wake: asyncio.Event) -> None:
    """Set `wake` on every announcement, until the connection fails or stops answering."""
    pinged = False
    while True:
        message = await pubsub.get_message(timeout=SILENCE)
        if message is None:
            if pinged:
                raise ConnectionError(f"no answer from Redis for {2 * SILENCE:g} s")
            await pubsub.ping()
            pinged = True
            continue
        pinged = False
        if message.get("type") == "message":
            wake.set()
