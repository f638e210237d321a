"""`RemoteKeySet`: the issuer's JWKS, cached in memory with the whole refresh policy.

Policy, in the order a request meets it:
- a usable set (fresh, or expired but within `stale_if_error`) answers at once from memory,
  even while a fetch is in flight; a due background fetch is started, never awaited: refresh
  ahead at `refresh_ahead` of the lifetime, a conditional revalidation every `revalidate`
  seconds (so a key the issuer removed is dropped within that), a refetch once expired;
- the lifetime is the response's `max-age` less its `Age`, clamped to [min_ttl, max_ttl]; ETag
  revalidates;
- with no usable set, a waiting caller fetches now, whatever the backoff says: it joins the
  fetch in flight or starts one (at most one fetch start per `fetch_gap`), waits at most
  `timeout`, and then gets `KeySetUnavailable` (503), never a 401;
- an unknown kid (or a failed signature) refreshes at most once per `cooldown`, and every
  concurrent caller shares that one fetch (single flight);
- every fetch, metadata discovery included, has one overall deadline (`timeout`), so an issuer
  that answers slowly or trickles its body cannot hold anyone longer than that;
- a failed fetch keeps the last good set for up to `stale_if_error` past its expiry; background
  retries back off exponentially with jitter; failures are logged once per state change;
- a JWKS location from the metadata (or the fallback taken without it) is known once a fetch
  from it succeeds, and looked up again on the try after a fetch from it fails, so an issuer
  that moves it is followed; an ETag is sent back only to the location it came from, and a
  304 counts only as the answer to one;
- `run()` does the background part alone, so an idle server stays fresh and recovers alone.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from resource_server.base64url import b64url_decode
from resource_server.content_length import declared_length
from resource_server.errors import KeySetUnavailable
from resource_server.stats import VerifierStats
from resource_server.urls import (
    require_issuer_identifier,
    require_safe_url,
    without_user_information,
)

log = logging.getLogger(__name__)

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)
# An entity-tag (RFC 9110 section 8.8.3) of visible ASCII: the only kind httpx can send back
# in If-None-Match (obs-text, %x80-FF, is allowed there, but httpx encodes headers as ASCII).
_SENDABLE_ETAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e]*"')
MIN_RSA_BITS = 2048
# Beyond these a key is no one's real signing key, and costs every verification: a public
# exponent of 2,047 bits made one (of a forged token) take 4.2 ms, over 20 times the usual.
MAX_RSA_BITS = 8192
MAX_RSA_EXPONENT_BITS = 32
# Each entry is parsed on the event loop: 1 MiB of keys held it for 0.75 s a fetch.
MAX_KEYS = 100
# A private key's members (RFC 7518 section 6.3.2; `d` is EC's and OKP's too): an entry that
# has any published its private key, so whoever reads the JWKS can sign with it.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
# 2 ** 32 times retry_base is far past any retry_max; the cap keeps the float finite.
_MAX_BACKOFF_EXPONENT = 32


class FetchError(Exception):
    """The issuer could not be reached, did not answer 200/304, or not within the deadline."""


class KeySetDataError(Exception):
    """The issuer answered, but not with a usable JWKS."""


@dataclass(frozen=True)
class CachePolicy:
    """Named defaults of the cache; each is configurable."""

    min_ttl: float = 60
    max_ttl: float = 86400
    default_ttl: float = 300  # when the response carries no max-age
    cooldown: float = 30
    stale_if_error: float = 86400
    refresh_ahead: float = 0.8  # fraction of the lifetime after which a background fetch starts
    revalidate: float = 60  # a conditional GET this often while a set is held; 0 turns it off
    retry_base: float = 1
    retry_max: float = 60
    # The overall deadline of one fetch (discovery, connect, every read, the whole body), and
    # so the longest any caller waits for the issuer.
    timeout: float = 5
    fetch_gap: float = 1  # least time between two fetch starts, whoever starts them
    max_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        """Refuse a policy the key set could not keep (the `RS_JWKS_*` settings say the same
        of each variable; this is for a policy built in code)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"CachePolicy.{field.name} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"CachePolicy.{field.name} must be a finite number >= 0")
        for name in ("max_ttl", "timeout", "retry_base", "max_bytes"):
            if getattr(self, name) == 0:
                raise ValueError(f"CachePolicy.{name} must be greater than 0")
        if self.max_ttl < self.min_ttl:
            raise ValueError("CachePolicy.max_ttl must not be below min_ttl")
        if self.retry_max < self.retry_base:
            raise ValueError("CachePolicy.retry_max must not be below retry_base")
        if not 0 < self.refresh_ahead <= 1:
            raise ValueError(
                "CachePolicy.refresh_ahead must be a fraction of the lifetime, in (0, 1]"
            )
        if self.min_ttl == 0 and self.stale_if_error == 0:
            # A key set sent with `max-age=0` (or `no-store`) would expire as it arrived, and
            # not even the request that fetched it could use it: a 503 for every request.
            raise ValueError("CachePolicy.stale_if_error must not be 0 when min_ttl is 0")


@dataclass(frozen=True)
class KeySetStatus:
    """What readiness reports: whether usable keys are held, fresh or stale, and the last fetch."""

    usable: bool
    fresh: bool
    last_fetch_failed: bool
    consecutive_failures: int


@dataclass(frozen=True)
class _Snapshot:
    keys: dict[str, RSAKey]
    fetched_at: float
    expires_at: float
    etag: str | None
    url: str  # where the set came from: its ETag is that location's


class RemoteKeySet:
    """The issuer's signing keys, kept by the policy above; `async with` runs the keeper."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        policy: CachePolicy | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        allow_insecure_http: bool = False,
        stats: VerifierStats | None = None,
    ):
        # The identifier, compared exactly (RFC 8414 section 3.3); well-known URLs are built
        # on it without a trailing "/" (section 3.1).
        self._issuer = issuer
        self._base = issuer.rstrip("/")
        # Where the keys are when the metadata names no `jwks_uri`, or there is no metadata.
        self._fallback_url = f"{self._base}/.well-known/jwks.json"
        self._policy = policy or CachePolicy()
        self._clock = clock
        # Only a caller waiting out `fetch_gap` sleeps; tests pass a sleep that moves the clock.
        self._sleep = sleep
        self._allow_insecure = allow_insecure_http
        require_safe_url(issuer, allow_insecure_http)
        # As RS_ISSUER_URL is: one no issuer could have (a query, user information, an
        # upper-case scheme) is never its metadata's `issuer`, nor any token's `iss`.
        require_issuer_identifier(issuer)
        if jwks_url:
            require_safe_url(jwks_url, allow_insecure_http)
        self._configured_url = jwks_url or None  # never looked up in the metadata then
        # The last fetch from a discovered (or fallback) location failed: look it up again.
        self._rediscover = False
        # A client passed in belongs to the caller; one made here is closed by `aclose`.
        self._owns_client = client is None
        self._client = client or _new_client()
        self.stats = stats or VerifierStats()
        self._snapshot: _Snapshot | None = None
        self._generation = 0
        self._pending: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # set whenever a fetch ends: wakes the keeper
        self._last_fetch_started = -math.inf
        self._last_kid_fetch = -math.inf  # the last fetch an unknown kid or bad signature began
        self._last_fetch_failed = False
        self._failures = 0
        self._retry_at = -math.inf
        # The (state, problem) last logged: an outage is told once, and again when it changes.
        self._outage_logged: tuple[str, str] | None = None

    async def __aenter__(self) -> "RemoteKeySet":
        # Entered again (a lifespan run once per test client, a new event loop each time):
        # what belongs to a loop is made anew (a client this closed is replaced by `_get`).
        # Keys already held are kept, and judged by the same policy.
        self._settled = asyncio.Event()
        self._pending = None
        # Fetch keys in the background: start-up never waits for (or fails on) the issuer.
        self._keeper = asyncio.get_running_loop().create_task(self.run())
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the background keeper and close the HTTP client if it is ours."""
        for task in (self._keeper, self._pending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._keeper = None
        if self._owns_client:
            await self._client.aclose()

    @property
    def ready(self) -> bool:
        """Whether a usable key set is held."""
        return self._usable(self._clock()) is not None

    def status(self) -> KeySetStatus:
        """Whether usable keys are held, whether they are fresh, and how fetching goes."""
        now = self._clock()
        held = self._usable(now)
        return KeySetStatus(
            usable=held is not None,
            fresh=held is not None and now < held.expires_at,
            last_fetch_failed=self._last_fetch_failed,
            consecutive_failures=self._failures,
        )

    @property
    def generation(self) -> int:
        """Changes whenever the held keys change or stop being usable."""
        return self._generation if self._usable(self._clock()) is not None else -1

    async def key(self, kid: str, rejected: RSAKey | None = None) -> RSAKey | None:
        """The key for `kid`, refreshing per the policy; `None` if the issuer has no such key.

        With `rejected` (a key a signature just failed with): the key now held for `kid` if
        it differs (some issuers replace key material under the same kid), else None. The
        caller never waits for the issuer here, since usable keys are held: a refresh starts
        in the background under the unknown-kid cooldown, for the requests that come next.
        """
        if rejected is not None:
            held = self._usable(self._clock())
            key = held.keys.get(kid) if held else None
            if key is not None and key.as_dict(private=False) != rejected.as_dict(private=False):
                return key  # replaced since this caller looked
            if self._pending is None and self._claim_kid_fetch():
                self._start_refresh("bad_signature")
            return None
        now = self._clock()
        snapshot = self._usable(now)
        if snapshot is None:
            snapshot = await self._wait_for_keys()
        elif now >= self._next_background_fetch():
            # Due for refresh ahead, revalidation or a refetch: in the background, so this
            # caller (and every one until the fetch lands) is answered from the held set.
            self._start_refresh(self._reason(now))
        key = snapshot.keys.get(kid)
        if key is None and await self._refresh_within_cooldown("unknown_kid"):
            held = self._usable(self._clock())
            key = held.keys.get(kid) if held else None
        return key

    async def run(self) -> None:
        """Keep the set fresh without traffic: first fetch, retries, refresh, revalidation."""
        while True:
            self._settled.clear()
            wait = await self.maintain()
            # Woken early when any fetch ends (a caller's too), as that moves the next due time.
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(wait, 0.05), 60)):
                    await self._settled.wait()

    async def maintain(self) -> float:
        """Run the background fetch if one is due; the seconds until the next one is due."""
        now = self._clock()
        fetch_at = self._next_background_fetch()
        if now < fetch_at:
            return fetch_at - now
        await self._refresh(self._reason(now))
        return 0.0

    async def _wait_for_keys(self) -> _Snapshot:
        """Nothing usable is held and a caller waits: fetch now, whatever the backoff says.

        The caller joins the fetch in flight or starts one; if one started less than
        `fetch_gap` ago, it waits out the rest of the gap first. It waits `timeout` in all.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._policy.timeout):
                while self._usable(self._clock()) is None:
                    if self._pending is None:
                        gap = self._last_fetch_started + self._policy.fetch_gap - self._clock()
                        if gap > 0:
                            await self._sleep(gap)
                            continue
                    await self._refresh(self._reason(self._clock()))
                    break
        snapshot = self._usable(self._clock())
        if snapshot is None:
            # The next caller may start a fetch once the gap has passed.
            wait = self._last_fetch_started + self._policy.fetch_gap - self._clock()
            raise KeySetUnavailable(retry_after=max(1, math.ceil(wait)))
        return snapshot

    def _due(self, snapshot: _Snapshot) -> float:
        """When a held set should be fetched again: refresh ahead, or revalidation if sooner."""
        lifetime = snapshot.expires_at - snapshot.fetched_at
        due = snapshot.fetched_at + self._policy.refresh_ahead * lifetime
        if self._policy.revalidate > 0:
            due = min(due, snapshot.fetched_at + self._policy.revalidate)
        return due

    def _next_background_fetch(self) -> float:
        """When the next background fetch may start: when due, paced by backoff and the gap."""
        due = self._due(self._snapshot) if self._snapshot else -math.inf
        return max(due, self._retry_at, self._last_fetch_started + self._policy.fetch_gap)

    def _reason(self, now: float) -> str:
        """The cause of a fetch starting now, for the `rs_jwks_fetches` metric."""
        snapshot = self._snapshot
        if snapshot is None:
            return "initial"
        if now >= snapshot.expires_at:
            return "expired"
        lifetime = snapshot.expires_at - snapshot.fetched_at
        revalidate = self._policy.revalidate
        if 0 < revalidate < self._policy.refresh_ahead * lifetime:
            return "revalidate"
        return "refresh_ahead"

    def _usable(self, now: float) -> _Snapshot | None:
        snapshot = self._snapshot
        if snapshot is None or now >= snapshot.expires_at + self._policy.stale_if_error:
            return None
        return snapshot

    async def _refresh_within_cooldown(self, reason: str) -> bool:
        """Join the pending fetch or start one if the cooldown allows; True if one ran.

        The cooldown counts from the last fetch a kid caused: background fetches (every
        `revalidate` seconds) must not keep a key the issuer just rotated in from being found.
        """
        if self._pending is None and not self._claim_kid_fetch():
            return False
        await self._refresh(reason)
        return True

    def _claim_kid_fetch(self) -> bool:
        """Whether a kid (unknown, or failing its signature) may start a fetch now; if so,
        the cooldown counts from now."""
        now = self._clock()
        held = self._snapshot
        if (
            now - self._last_kid_fetch < self._policy.cooldown
            or now - self._last_fetch_started < self._policy.fetch_gap
            # Just fetched (maybe for this very caller): nothing newer to find, and a
            # second fetch would make the caller wait past one deadline.
            or (held is not None and now - held.fetched_at < self._policy.fetch_gap)
            or now < self._retry_at
        ):
            return False
        self._last_kid_fetch = now
        return True

    async def _refresh(self, reason: str) -> None:
        # Shielded: a caller that gives up (deadline, disconnect) does not cancel the fetch
        # that other callers share.
        await asyncio.shield(self._start_refresh(reason))

    def _start_refresh(self, reason: str) -> asyncio.Task[None]:
        """Start a fetch unless one is pending (single flight); callers join the pending one."""
        if self._pending is None:
            self._last_fetch_started = self._clock()
            fetch = self._fetch_and_store(reason)
            self._pending = asyncio.get_running_loop().create_task(fetch)
            self._pending.add_done_callback(self._clear_pending)
        return self._pending

    def _clear_pending(self, _: asyncio.Task[None]) -> None:
        self._pending = None
        self._settled.set()

    async def _fetch_and_store(self, reason: str) -> None:
        try:
            # One deadline over the whole fetch: httpx's timeouts are per operation, so an
            # issuer trickling a byte every few seconds would otherwise never time out.
            async with asyncio.timeout(self._policy.timeout):
                await self._fetch()
        except TimeoutError:
            self._fetch_failed(reason, f"no complete answer within {self._policy.timeout:g} s")
            return
        except (FetchError, KeySetDataError) as exc:
            self._fetch_failed(reason, str(exc))
            return
        except Exception as exc:
            # A bug here must neither end the keeper nor reach a caller as a 500; its
            # traceback is logged like any failure, once per state change, not every retry.
            self._fetch_failed(reason, f"unexpected {type(exc).__name__}: {exc}", exc)
            return
        self.stats.fetches[reason, "ok"] += 1
        if self._failures:
            failures = f"{self._failures} failure{'s' if self._failures > 1 else ''}"
            log.info("JWKS fetch from %s recovered after %s", self._source, failures)
        self._failures = 0
        self._retry_at = -math.inf
        self._last_fetch_failed = False
        self._outage_logged = None

    @property
    def _source(self) -> str:
        """Where the logs say keys come from: the configured JWKS URL, else the issuer whose
        metadata names one; without user information (a JWKS behind Basic carries a password)."""
        return without_user_information(self._configured_url or self._issuer)

    def _fetch_failed(self, reason: str, problem: str, error: BaseException | None = None) -> None:
        """Count the failure, schedule the next background retry, and say what is true."""
        self.stats.fetches[reason, "error"] += 1
        self._failures += 1
        self._last_fetch_failed = True
        exponent = min(self._failures - 1, _MAX_BACKOFF_EXPONENT)
        delay = min(self._policy.retry_max, self._policy.retry_base * 2**exponent)
        now = self._clock()
        self._retry_at = now + delay * random.uniform(0.5, 1.0)  # noqa: S311
        held = self._usable(now)
        state = "keeping" if held else ("none" if self._snapshot is None else "too_old")
        if (state, problem) == self._outage_logged:
            return  # once per state or problem, not once per failure
        self._outage_logged = state, problem
        if held is not None:
            left = held.expires_at + self._policy.stale_if_error - now
            log.warning(
                "JWKS fetch from %s failed: %s; keeping the last good key set "
                "(usable for %d s more)",
                self._source,
                problem,
                left,
                exc_info=error,
            )
        elif self._snapshot is None:
            log.warning(
                "JWKS fetch from %s failed: %s; no key set yet; retrying",
                self._source,
                problem,
                exc_info=error,
            )
        else:
            log.warning(
                "JWKS fetch from %s failed: %s; the last key set is past its stale-if-error "
                "limit and no longer used; retrying",
                self._source,
                problem,
                exc_info=error,
            )

    async def _fetch(self) -> None:
        # The location known: the one configured, else the one the held set came from (a
        # location found in the metadata becomes known only once it has answered).
        known = self._configured_url or (self._snapshot.url if self._snapshot else None)
        rediscover, self._rediscover = self._rediscover, False
        if known is None:
            url = await self._discover_jwks_url()
        elif rediscover:
            # The issuer may have moved its keys (or its metadata was missing when the
            # fallback was taken). If the metadata fails now, the location known stays.
            url = known
            with contextlib.suppress(FetchError, KeySetDataError):
                url = await self._discover_jwks_url()
        else:
            url = known
        try:
            await self._fetch_from(url)
        except BaseException:  # a deadline too
            # The next try looks the location up again, unless it was configured or this
            # try just looked (metadata that hangs, or a new location that fails, must not
            # keep the known location from being fetched: the tries alternate). With none
            # known, every try looks.
            self._rediscover = self._configured_url is None and known is not None and not rediscover
            raise

    async def _fetch_from(self, url: str) -> None:
        # RFC 7517's own media type first: a server choosing by Accept may serve only it.
        headers = {"Accept": "application/jwk-set+json, application/json"}
        previous = self._snapshot
        # An ETag names what one location sent: another may use the same one for other keys.
        if_none_match = previous.etag if previous is not None and previous.url == url else None
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        status, response_headers, body = await self._get(url, headers)
        now = self._clock()
        if status == 304:
            if previous is None or if_none_match is None:
                # Not the answer to an If-None-Match of ours: it says nothing of the keys.
                raise FetchError("JWKS endpoint answered 304 to a request without If-None-Match")
            # RFC 9111 section 4.3.4: what a 304 does not carry keeps its stored value, so
            # without a Cache-Control the held set's lifetime stands.
            lifetime = previous.expires_at - previous.fetched_at
            if "cache-control" in response_headers:
                lifetime = self._ttl(response_headers)
            self._snapshot = _Snapshot(previous.keys, now, now + lifetime, if_none_match, url)
            return
        if status != 200:
            raise FetchError(f"JWKS endpoint answered {status}")
        keys, compromised = parse_jwks(body)
        if not keys:
            # Refused, yet a key it shows compromised must stop verifying now, not when the
            # held set runs out (stale_if_error): it is exactly the one anyone can sign with.
            self._distrust(compromised)
            raise KeySetDataError("JWKS holds no usable RS256 signing key")
        if previous is None or _fingerprint(keys) != _fingerprint(previous.keys):
            self._generation += 1
        etag = response_headers.get("etag")
        if etag is not None and not _SENDABLE_ETAG.fullmatch(etag):
            etag = None  # one that cannot be sent back: the next fetch is a full one
        self._snapshot = _Snapshot(keys, now, now + self._ttl(response_headers), etag, url)

    def _distrust(self, compromised: "Compromised") -> None:
        """Drop the keys published with their private members (by kid, and by modulus under
        any kid) from the held set; the new generation ends every cached verification."""
        held = self._snapshot
        if held is None:
            return
        keys = {kid: key for kid, key in held.keys.items() if not compromised.covers(kid, key)}
        if len(keys) == len(held.keys):
            return
        # The ETag named the set with them in it: the next fetch is a full one.
        self._snapshot = dataclasses.replace(held, keys=keys, etag=None)
        self._generation += 1

    async def _discover_jwks_url(self) -> str:
        """RFC 8414: `jwks_uri` from the issuer's metadata, else the well-known default."""
        refusal: Exception | None = None
        for url, own in self._metadata_urls():
            try:
                # A place outside the issuer's path gets half the fetch's deadline: one that
                # never answers (or never ends its body) must leave time for the issuer's own.
                async with asyncio.timeout(None if own else self._policy.timeout / 2):
                    status, _, body = await self._get(url, {"Accept": "application/json"})
                if status == 200:
                    return self._jwks_url_from(body)
                if status != 404:
                    raise FetchError(f"metadata endpoint answered {status}")
            except (FetchError, KeySetDataError, TimeoutError) as exc:
                # A place outside the issuer's path belongs to whatever else the host serves
                # (a sign-in wall, an app): what it answers (a page too large or compressed
                # for `_get` too, or none in time) says nothing of the issuer. (TimeoutError is
                # only that half deadline's: the fetch's own ends the fetch, as a cancellation.)
                if own:
                    refusal = refusal or exc
        if refusal is not None:
            raise refusal
        return self._fallback_url

    def _metadata_urls(self) -> list[tuple[str, bool]]:
        """Where the metadata may be, and whether the place is the issuer's own. RFC 8414
        section 3.1 puts the well-known part between the host and the issuer's path; an
        issuer with a path may instead serve it under its path (behind a proxy that maps the
        path to it, as ours), or serve OpenID Connect Discovery's document there (section 4)."""
        parts = urlsplit(self._base)
        well_known = f"/.well-known/oauth-authorization-server{parts.path}"
        inserted = urlunsplit((parts.scheme, parts.netloc, well_known, "", ""))
        if not parts.path:
            return [(inserted, True)]
        return [
            (inserted, False),
            (f"{self._base}/.well-known/oauth-authorization-server", True),
            (f"{self._base}/.well-known/openid-configuration", True),
        ]

    def _jwks_url_from(self, body: bytes) -> str:
        try:
            metadata = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise KeySetDataError("metadata is not JSON") from exc
        if not isinstance(metadata, dict):
            raise KeySetDataError("metadata is not a JSON object")
        # RFC 8414 section 3.3: metadata naming another issuer must not be used.
        named = metadata.get("issuer")
        if named != self._issuer:
            raise KeySetDataError(f"metadata names issuer {_brief(named)}, not {self._issuer!r}")
        jwks_uri = metadata.get("jwks_uri", self._fallback_url)
        if not isinstance(jwks_uri, str):
            raise KeySetDataError("metadata jwks_uri is not a string")
        try:
            require_safe_url(jwks_uri, self._allow_insecure)
        except ValueError as exc:
            raise KeySetDataError(str(exc)) from exc
        return jwks_uri

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[int, httpx.Headers, bytes]:
        limit = self._policy.max_bytes
        # Uncompressed only: the size limit counts bytes as they arrive, and a compressed
        # body would be inflated a chunk at a time before it is counted (a 0.5 MB gzip body
        # of 500 MB took 150 MB of memory on every retry).
        headers = {**headers, "Accept-Encoding": "identity"}
        if self._owns_client and self._client.is_closed:
            # Closed by `aclose` (leaving `async with`), yet asked for keys: entered again, or
            # `verify` outside it, which still fetches (docs/verifier.md). `aclose` closes it.
            self._client = _new_client()
        try:
            async with self._client.stream(
                "GET", url, headers=headers, timeout=self._policy.timeout, follow_redirects=False
            ) as response:
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise KeySetDataError(f"the response is {encoding}-encoded; identity was asked")
                declared = declared_length(response.headers.get("content-length", ""))
                if declared is not None and declared > limit:
                    raise KeySetDataError(f"response larger than {limit} bytes")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > limit:
                        raise KeySetDataError(f"response larger than {limit} bytes")
                return response.status_code, response.headers, bytes(body)
        # Anything else is unexpected (an ETag httpx could not send is never held): the
        # catch-all in `_fetch_and_store` logs it with its traceback and retries.
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from exc

    def _ttl(self, headers: httpx.Headers) -> float:
        policy = self._policy
        cache_control = headers.get("cache-control")
        if cache_control and _NO_CACHE.search(cache_control):
            return policy.min_ttl
        ttl = policy.default_ttl
        if cache_control and (match := _MAX_AGE.search(cache_control)):
            ttl = float(match.group(1))
        # RFC 9111 section 4.2.3: a response a cache in between already held for `Age`
        # seconds has that much less of its lifetime left.
        age = headers.get("age", "").strip()
        if age.isascii() and age.isdigit():
            ttl -= float(age)
        return min(max(ttl, policy.min_ttl), policy.max_ttl)


@dataclass(frozen=True)
class Compromised:
    """What a JWKS showed published with its private members: their kids, and their moduli,
    since the same key under another kid (or none) is just as much anyone's to sign with."""

    kids: frozenset[str] = frozenset()
    moduli: frozenset[int] = frozenset()

    def covers(self, kid: str, key: RSAKey) -> bool:
        return kid in self.kids or (bool(self.moduli) and _modulus(key) in self.moduli)


def parse_jwks(body: bytes) -> tuple[dict[str, RSAKey], Compromised]:
    """Usable RSA signature keys by kid (unusable entries skipped, so it may be empty), and
    what it shows compromised (entries published with private members)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise KeySetDataError("JWKS is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySetDataError("JWKS has no keys array")
    if len(document["keys"]) > MAX_KEYS:
        raise KeySetDataError(f"JWKS holds over {MAX_KEYS} keys")
    keys: dict[str, RSAKey] = {}
    compromised: set[str] = set()
    leaked_moduli: set[int] = set()
    duplicated: set[str] = set()
    for entry in document["keys"]:
        if isinstance(entry, dict) and any(member in entry for member in _PRIVATE_MEMBERS):
            kid = entry.get("kid")
            log.warning(
                "JWKS entry with kid %s publishes private key members: the key is compromised "
                "(anyone can sign with it); skipped, and its kid not trusted",
                _brief(kid),
            )
            if isinstance(kid, str):
                compromised.add(kid)  # even if a clean entry repeats it
            if isinstance(entry.get("n"), str):
                leaked_moduli.add(_integer(entry["n"]))  # under any kid, or none
            continue
        parsed = _parse_key(entry)
        if parsed is None:
            continue
        kid, key = parsed
        if kid in keys:
            duplicated.add(kid)  # two keys under one kid: trust neither
        keys[kid] = key
    found = Compromised(frozenset(compromised), frozenset(leaked_moduli - {0}))
    for kid, key in list(keys.items()):
        if kid in duplicated or found.covers(kid, key):
            del keys[kid]
    return keys, found


def _parse_key(entry: Any) -> tuple[str, RSAKey] | None:
    if not isinstance(entry, dict) or entry.get("kty") != "RSA":
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        return None
    if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    n, e = entry.get("n"), entry.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        return None
    modulus, exponent = _integer(n), _integer(e)
    if not MIN_RSA_BITS <= modulus.bit_length() <= MAX_RSA_BITS or modulus % 2 == 0:
        return None  # an even modulus has the factor 2: anyone can sign with it
    if exponent.bit_length() > MAX_RSA_EXPONENT_BITS:
        return None
    try:
        # Only the public members are taken (an entry with private ones was skipped).
        key = RSAKey.import_key({"kty": "RSA", "n": n, "e": e})
    except (JoseError, ValueError, TypeError):
        return None
    return kid, key


def _integer(b64url_integer: str) -> int:
    """A JWK integer member's value; 0 if it is not base64url."""
    try:
        return int.from_bytes(b64url_decode(b64url_integer), "big")
    except ValueError:
        return 0


def _modulus(key: RSAKey) -> int:
    return int(key.public_key.public_numbers().n)


def _fingerprint(keys: dict[str, RSAKey]) -> set[tuple[str, str, str]]:
    """The key material by kid, to tell a changed set from a refetched one."""
    return {(kid, str(key.as_dict()["n"]), str(key.as_dict()["e"])) for kid, key in keys.items()}


def _new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"User-Agent": "resource-server"})


def _brief(value: object) -> str:
    """A value from the network, short enough for a log line."""
    text = repr(value)
    return text if len(text) <= 100 else f"{text[:97]}..."
