"""The issuer's Redis client, shared by the rate-limit counters and the key-set change signals.

Revocations never touch Redis: they are in the database (`issuer.oauth.revoked_tokens`).
"""

import redis.asyncio as redis


def connect_redis(url: str | None) -> "redis.Redis | None":
    """A client for `url` with short timeouts: Redis answers fast or is treated as down."""
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
