"""Brute-force and flood limits on the endpoints that authenticate clients or users.

- every request: a fixed-window limit per client address (IPv6 by /64, since one host
  commonly holds a whole /64);
- failed client authentications per address: past a window cap the address is refused
  until the window ends (a wrong-secret flood costs the flooder, not the client it names);
- per client: a window limit counted only after the client authenticated with its secret,
  so nobody can spend another client's budget (public clients have no secret: only the
  address limits apply to them);
- failed logins per (username, address): free attempts, then exponential backoff (doubling,
  capped);
- failed logins per username from addresses that have never logged in as that user: a cap.

Trade-off: the backoff is keyed by username *and* address, so a guesser elsewhere only locks
itself out; a botnet spread over many addresses is held by the per-username cap instead,
which the user's own addresses (any address with a successful login in the last 30 days) are
exempt from. A success resets the username's failure counts.

A login attempt is counted as a failure before its password is checked (`reserve_login`),
atomically with the comparison against the limits: guesses sent at once cannot all pass a
check that no failure has yet been recorded against.
"""

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from issuer.limits.counters import CounterStore


class Throttled(Exception):
    """Over a limit: retry after `retry_after` seconds."""

    def __init__(self, retry_after: float, description: str = "too many requests; retry later"):
        super().__init__(description)
        self.retry_after = retry_after
        self.description = description

    @property
    def retry_seconds(self) -> int:
        """`retry_after` as a `Retry-After` value: whole seconds, rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after))


@dataclass(frozen=True)
class ThrottlePolicy:
    window: int = 60
    per_ip: int = 60
    per_client: int = 600
    per_username: int = 20
    client_auth_failures: int = 10
    free_failures: int = 5
    backoff_base: float = 1
    backoff_max: float = 900
    failure_memory: int = 86400
    known_ip_ttl: int = 30 * 86400


_LOGIN_THROTTLED = "too many failed logins; retry later"


class Throttle:
    """Checks, and counts login attempts, before the expensive work (hashing, database)."""

    def __init__(self, store: CounterStore, policy: ThrottlePolicy):
        self._store = store
        self._policy = policy
        # Per (account, address): a semaphore and how many attempts hold or await it.
        self._turns: dict[tuple[str, str], tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def login_turn(self, username: str, address: str) -> AsyncIterator[None]:
        """Held from an attempt's first check until it is judged: at most `free_failures` of
        one account from one address are judged at once in this process, and the rest wait.

        Attempts are counted before they are judged (`reserve_login`), so right passwords sent
        at once would otherwise refuse each other. With no more in flight than the free
        attempts, the ones in flight never fill the count themselves: each attempt finds what
        its predecessors left, cleared by a success, or standing after failures (then one
        more starts the backoff and the rest are refused, as when sent one after another).
        """
        key = _short(username), _bucket(address)
        if key not in self._turns:
            self._turns[key] = asyncio.Semaphore(max(1, self._policy.free_failures)), [0]
        semaphore, waiting = self._turns[key]
        waiting[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            waiting[0] -= 1
            if not waiting[0]:
                del self._turns[key]

    async def check_address(self, address: str) -> None:
        """Every request: the address's window limit, and its client-authentication lock."""
        source = _bucket(address)
        wait = await self._store.blocked(f"authlock:{source}")
        if wait:
            raise Throttled(wait, "too many failed client authentications; retry later")
        await self._limit(f"ip:{source}", self._policy.per_ip)

    async def record_client_auth_failure(self, address: str) -> None:
        source = _bucket(address)
        failures, left = await self._store.incr(f"authfail:{source}", self._policy.window)
        if failures >= self._policy.client_auth_failures:
            await self._store.block(f"authlock:{source}", left)

    async def check_client(self, client_id: str) -> None:
        """A client that proved its secret: its own window limit."""
        await self._limit(f"client:{_short(client_id)}", self._policy.per_client)

    async def check_login(self, username: str, address: str) -> None:
        """Refuse early, counting nothing, while a backoff or the account's cap holds."""
        user, source = _short(username), _bucket(address)
        wait = await self._store.blocked(f"backoff:{user}:{source}")
        if not wait and not await self._store.blocked(f"known:{user}:{source}"):
            wait = await self._store.blocked(f"userlock:{user}")
        if wait:
            raise Throttled(wait, _LOGIN_THROTTLED)

    async def reserve_login(self, username: str, address: str) -> None:
        """Count an attempt as failed before its password is checked, or refuse it (`Throttled`).

        `record_success` clears the count. A refused attempt is not counted, except that one
        the account's cap refuses has spent an attempt of its address's (only when guesses
        race: otherwise `check_login` refuses it first).
        """
        user, source = _short(username), _bucket(address)
        await self._reserve_from_address(user, source)
        await self._reserve_for_account(user, source)

    async def _reserve_from_address(self, user: str, source: str) -> None:
        """The free attempts; past them, one attempt per backoff: the one that starts it."""
        key, policy = f"fail:{user}:{source}", self._policy
        failures, _ = await self._store.incr_capped(
            key, policy.failure_memory, policy.free_failures
        )
        if failures <= policy.free_failures:
            return
        exponent = failures - policy.free_failures - 1
        delay = min(policy.backoff_max, policy.backoff_base * 2 ** min(exponent, 32))
        wait = await self._store.claim(f"backoff:{user}:{source}", delay)
        if wait:
            raise Throttled(wait, _LOGIN_THROTTLED)
        await self._store.incr(key, policy.failure_memory)

    async def _reserve_for_account(self, user: str, source: str) -> None:
        """The per-account cap; the user's own addresses count towards it but pass it."""
        key, policy = f"userfail:{user}", self._policy
        if await self._store.blocked(f"known:{user}:{source}"):
            total, left = await self._store.incr(key, policy.window)
        else:
            total, left = await self._store.incr_capped(key, policy.window, policy.per_username)
            if total > policy.per_username:
                raise Throttled(left, _LOGIN_THROTTLED)
        if total >= policy.per_username:
            await self._store.block(f"userlock:{user}", left)  # `check_login` refuses at once

    async def record_success(self, username: str, address: str) -> None:
        user, source = _short(username), _bucket(address)
        await self._store.delete(
            f"fail:{user}:{source}",
            f"backoff:{user}:{source}",
            f"userfail:{user}",
            f"userlock:{user}",
        )
        # Forgettable: a forgotten address only counts towards the account's cap again.
        await self._store.block(
            f"known:{user}:{source}", self._policy.known_ip_ttl, forgettable=True
        )

    async def _limit(self, key: str, limit: int) -> None:
        count, left = await self._store.incr(key, self._policy.window)
        if count > limit:
            raise Throttled(left)


@functools.lru_cache(maxsize=4096)  # pure functions of their text, asked on every request
def _bucket(address: str) -> str:
    """The unit an address is limited as: itself, or its /64 for IPv6; always a short key."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return _short(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False).network_address) + "/64"
    return str(parsed)


def _short(value: str) -> str:
    """A fixed-size, charset-safe key whatever a client sends as a username or client_id."""
    # Only short values are remembered: a cache of 4,096 form-sized usernames would hold
    # hundreds of megabytes that any client could fill.
    return _short_cached(value) if len(value) <= 256 else _digest(value)


@functools.lru_cache(maxsize=4096)
def _short_cached(value: str) -> str:
    return _digest(value)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]
