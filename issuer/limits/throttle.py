"""Brute-force and flood limits on `POST /token`.

- every request: a fixed-window limit per client IP, and per client_id when one is named;
- failed logins per (username, IP): free attempts, then exponential backoff (doubling, capped);
- failed logins per username from IPs that have never logged in as that user: a window cap.

Trade-off: the backoff is keyed by username *and* IP, so a guesser elsewhere only locks itself
out; a botnet spread over many IPs is held by the per-username cap instead, which the user's
own IPs (any IP with a successful login in the last 30 days) are exempt from. A success
resets the username's failure counts.
"""

import hashlib
from dataclasses import dataclass

from issuer.limits.counters import CounterStore


class Throttled(Exception):
    """Over a limit: retry after `retry_after` seconds."""

    def __init__(self, retry_after: float, description: str = "too many requests; retry later"):
        super().__init__(description)
        self.retry_after = retry_after
        self.description = description


@dataclass(frozen=True)
class ThrottlePolicy:
    window: int = 60
    per_ip: int = 60
    per_client: int = 600
    per_username: int = 20
    free_failures: int = 5
    backoff_base: float = 1
    backoff_max: float = 900
    failure_memory: int = 86400
    known_ip_ttl: int = 30 * 86400


class LoginThrottle:
    """Checks before the (expensive) password hash, records after it."""

    def __init__(self, store: CounterStore, policy: ThrottlePolicy):
        self._store = store
        self._policy = policy

    async def check_request(self, ip: str, client_id: str | None) -> None:
        await self._limit(f"ip:{ip}", self._policy.per_ip)
        if client_id:
            await self._limit(f"client:{_short(client_id)}", self._policy.per_client)

    async def check_login(self, username: str, ip: str) -> None:
        user = _short(username)
        wait = await self._store.blocked(f"backoff:{user}:{ip}")
        if not wait and not await self._store.blocked(f"known:{user}:{ip}"):
            wait = await self._store.blocked(f"userlock:{user}")
        if wait:
            raise Throttled(wait, "too many failed logins; retry later")

    async def record_failure(self, username: str, ip: str) -> None:
        user, policy = _short(username), self._policy
        failures, _ = await self._store.incr(f"fail:{user}:{ip}", policy.failure_memory)
        if failures > policy.free_failures:
            exponent = failures - policy.free_failures - 1
            delay = min(policy.backoff_max, policy.backoff_base * 2 ** min(exponent, 32))
            await self._store.block(f"backoff:{user}:{ip}", delay)
        total, left = await self._store.incr(f"userfail:{user}", policy.window)
        if total >= policy.per_username:
            await self._store.block(f"userlock:{user}", left)

    async def record_success(self, username: str, ip: str) -> None:
        user = _short(username)
        await self._store.delete(
            f"fail:{user}:{ip}", f"backoff:{user}:{ip}", f"userfail:{user}", f"userlock:{user}"
        )
        await self._store.block(f"known:{user}:{ip}", self._policy.known_ip_ttl)

    async def _limit(self, key: str, limit: int) -> None:
        count, left = await self._store.incr(key, self._policy.window)
        if count > limit:
            raise Throttled(left)


def _short(value: str) -> str:
    # Fixed-size, charset-safe keys whatever a client sends as a username or client_id.
    return hashlib.sha256(value.encode()).hexdigest()[:32]
