"""The key-set model: each key's state and times, and the rotation rules. Pure: takes `now`.

    next ──(published >= max-age + leeway)──> active ──(rotation)──> retiring
                                                                        │ TTL + max-age + leeway
                                                                        v
                                      (revoke: at once, from any state) retired

`next` keys are published but do not sign, so every verifier already holds a key when its
first token arrives; `retiring` keys stay published until every token they signed has expired
and every verifier cache has seen the successor; `retired` keys are unpublished and their
private part is deleted. Exactly one key is `active`; at most one is `next`.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# 3000-01-01 UTC: far beyond any real key, far below what dates (and the waits added) hold.
_LAST_TIMESTAMP = 32_503_680_000


class KeySetError(Exception):
    """The key set is missing, malformed or breaks an invariant."""


class PassphraseNeeded(KeySetError):
    """A stored private key is encrypted and no passphrase was given to open it."""


class KeyStoreUnavailable(KeySetError):
    """The store could not be read just now (a database blip): nothing is known about the
    key set, and the same read may succeed a moment later."""


class UnsafeRotation(KeySetError):
    """A rotation step now would break verifiers; `safe_at` says when it will not."""

    def __init__(self, reason: str, safe_at: int):
        super().__init__(reason)
        self.safe_at = safe_at


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


@dataclass(frozen=True)
class RotationPolicy:
    """The waits that make a rotation invisible to verifiers (all in seconds)."""

    access_token_ttl: int
    jwks_max_age: int
    # Covers verifiers' clock-skew leeway on `exp` (60 s) and the issuer's key-reload poll.
    leeway: int = 120

    @property
    def publish_lead(self) -> int:
        """How long a `next` key is published before it may sign."""
        return self.jwks_max_age + self.leeway

    @property
    def retire_after(self) -> int:
        """How long a `retiring` key stays published after it stopped signing."""
        return self.access_token_ttl + self.jwks_max_age + self.leeway


@dataclass(frozen=True)
class KeyRecord:
    """One key's identity, state and the times the state changed (unix seconds)."""

    kid: str
    state: KeyState
    created_at: int
    activated_at: int | None = None
    retiring_at: int | None = None
    retired_at: int | None = None
    revoked: bool = False

    def __post_init__(self) -> None:
        # Times are printed and added to: one outside what a date can hold would fail there,
        # with an error that is not a KeySetError (and so not reported as a broken key set).
        for name in ("created_at", "activated_at", "retiring_at", "retired_at"):
            value = getattr(self, name)
            if value is not None and not _is_timestamp(value):
                raise KeySetError(f"invalid key set: {name} of {self.kid} is {value!r}")

    @property
    def published(self) -> bool:
        return self.state is not KeyState.RETIRED

    def may_activate_at(self, policy: RotationPolicy) -> int | None:
        return self.created_at + policy.publish_lead if self.state is KeyState.NEXT else None

    def may_retire_at(self, policy: RotationPolicy) -> int | None:
        if self.state is not KeyState.RETIRING or self.retiring_at is None:
            return None
        return self.retiring_at + policy.retire_after


@dataclass(frozen=True)
class KeyManifest:
    """The whole key set's states; the single source of truth for which key signs."""

    keys: tuple[KeyRecord, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        active = [k for k in self.keys if k.state is KeyState.ACTIVE]
        if len(active) != 1:
            raise KeySetError(f"a key set needs exactly one active key, found {len(active)}")
        if sum(k.state is KeyState.NEXT for k in self.keys) > 1:
            raise KeySetError("a key set has at most one next key")
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise KeySetError("duplicate kid in key set")

    @property
    def active(self) -> KeyRecord:
        return next(k for k in self.keys if k.state is KeyState.ACTIVE)

    @property
    def next(self) -> KeyRecord | None:
        return next((k for k in self.keys if k.state is KeyState.NEXT), None)

    @property
    def published(self) -> tuple[KeyRecord, ...]:
        return tuple(k for k in self.keys if k.published)

    def get(self, kid: str) -> KeyRecord | None:
        return next((k for k in self.keys if k.kid == kid), None)

    @property
    def last_revocation(self) -> int | None:
        """When a key was last revoked (unix seconds), if ever."""
        times = [k.retired_at for k in self.keys if k.revoked and k.retired_at is not None]
        return max(times, default=None)

    def to_json(self) -> bytes:
        doc = {"version": 1, "keys": [_record_to_dict(k) for k in self.keys]}
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> "KeyManifest":
        try:
            doc = json.loads(data)
            records = tuple(_record_from_dict(item) for item in doc["keys"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise KeySetError(f"unreadable key manifest: {exc}") from exc
        return cls(records)


@dataclass(frozen=True)
class Step:
    """A proposed change of the key set, with the lines that describe it."""

    manifest: KeyManifest
    changes: tuple[str, ...]
    new_kid: str | None  # the key to create, if any
    # Published keys still without a private part after a repair step: until each is revoked
    # or restored the issuer cannot load the set, and keeps the one before.
    unloadable: tuple[str, ...] = ()


def initial_manifest(active_kid: str, next_kid: str, now: int) -> KeyManifest:
    """A new key set: one active key and one published next key."""
    return KeyManifest(
        (
            KeyRecord(active_kid, KeyState.ACTIVE, now, activated_at=now),
            KeyRecord(next_kid, KeyState.NEXT, now),
        )
    )


def rotation_step(
    manifest: KeyManifest, new_kid: str, now: int, policy: RotationPolicy, force: bool = False
) -> Step:
    """next -> active, active -> retiring, a new next, and overdue retiring keys -> retired.

    Without a next key (a set from before next keys existed) the step only publishes one.
    Raises `UnsafeRotation` when the next key has not been published long enough.
    """
    changes: list[str] = []
    keys = list(_retire_overdue(manifest.keys, now, policy, changes))
    upcoming = manifest.next
    if upcoming is None:
        keys.append(KeyRecord(new_kid, KeyState.NEXT, now))
        ready = format_timestamp(now + policy.publish_lead)
        changes.append(f"publish {new_kid} as next (may activate from {ready})")
        return Step(KeyManifest(tuple(keys)), tuple(changes), new_kid)
    safe_at = upcoming.created_at + policy.publish_lead
    if now < safe_at and not force:
        raise UnsafeRotation(
            f"next key {upcoming.kid} has been published for {now - upcoming.created_at} s; "
            f"verifiers may not hold it until it has been published for {policy.publish_lead} s",
            safe_at,
        )
    rotated = []
    for key in keys:
        if key.state is KeyState.ACTIVE:
            rotated.append(replace(key, state=KeyState.RETIRING, retiring_at=now))
            until = format_timestamp(now + policy.retire_after)
            changes.append(f"{key.kid}: active -> retiring (published until {until})")
        elif key.state is KeyState.NEXT:
            rotated.append(replace(key, state=KeyState.ACTIVE, activated_at=now))
            changes.append(f"{key.kid}: next -> active (signs from now)")
        else:
            rotated.append(key)
    rotated.append(KeyRecord(new_kid, KeyState.NEXT, now))
    ready = format_timestamp(now + policy.publish_lead)
    changes.append(f"{new_kid}: new next key (may activate from {ready})")
    return Step(KeyManifest(tuple(rotated)), tuple(changes), new_kid)


def revocation(manifest: KeyManifest, kid: str, new_kid: str, now: int) -> Step:
    """Unpublish `kid` at once; if it was active or next, the set is refilled so it stays valid."""
    target = manifest.get(kid)
    if target is None:
        raise KeySetError(f"no key {kid} in the key set")
    if target.state is KeyState.RETIRED:
        raise KeySetError(f"key {kid} is already retired")
    changes = [f"{kid}: {target.state} -> retired (revoked; removed from the JWKS now)"]
    keys = []
    for key in manifest.keys:
        if key.kid == kid:
            keys.append(replace(key, state=KeyState.RETIRED, retired_at=now, revoked=True))
        elif target.state is KeyState.ACTIVE and key.state is KeyState.NEXT:
            keys.append(replace(key, state=KeyState.ACTIVE, activated_at=now))
            changes.append(f"{key.kid}: next -> active (replaces the revoked key)")
        else:
            keys.append(key)
    create = None
    if target.state in (KeyState.ACTIVE, KeyState.NEXT):
        if target.state is KeyState.ACTIVE and manifest.next is None:
            keys.append(KeyRecord(new_kid, KeyState.ACTIVE, now, activated_at=now))
            changes.append(f"{new_kid}: new active key (replaces the revoked key)")
        else:
            keys.append(KeyRecord(new_kid, KeyState.NEXT, now))
            changes.append(f"{new_kid}: new next key")
        create = new_kid
    return Step(KeyManifest(tuple(keys)), tuple(changes), create)


def _retire_overdue(
    keys: tuple[KeyRecord, ...], now: int, policy: RotationPolicy, changes: list[str]
) -> list[KeyRecord]:
    result = []
    for key in keys:
        retire_at = key.may_retire_at(policy)
        if retire_at is not None and now >= retire_at:
            result.append(replace(key, state=KeyState.RETIRED, retired_at=now))
            changes.append(f"{key.kid}: retiring -> retired (removed from the JWKS)")
        else:
            result.append(key)
    return result


@dataclass(frozen=True)
class JwksLifetime:
    max_age: int
    # When `max_age` changes next (the end of a revocation's window), or None: never by itself.
    until: int | None


def jwks_lifetime(
    manifest: KeyManifest, now: int, max_age: int, after_revocation: int
) -> JwksLifetime:
    """The JWKS `max-age` to serve now: shorter for one `max_age` after a revocation.

    Caches that fetched before the revocation keep the revoked key for up to the `max_age`
    they were given; those that fetch during that window come back within
    `after_revocation`, so a second revocation (or a correction) reaches them quickly too.
    """
    revoked_at = manifest.last_revocation
    if revoked_at is not None and now < revoked_at + max_age:
        return JwksLifetime(revocation_max_age(max_age, after_revocation), revoked_at + max_age)
    return JwksLifetime(max_age, None)


def revocation_max_age(max_age: int, after_revocation: int) -> int:
    """The JWKS `max-age` served during a revocation's window."""
    return min(max_age, after_revocation)


def format_timestamp(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _record_to_dict(record: KeyRecord) -> dict[str, Any]:
    return {
        "kid": record.kid,
        "state": record.state.value,
        "created_at": record.created_at,
        "activated_at": record.activated_at,
        "retiring_at": record.retiring_at,
        "retired_at": record.retired_at,
        "revoked": record.revoked,
    }


def _record_from_dict(item: dict[str, Any]) -> KeyRecord:
    kid = item["kid"]
    if not isinstance(kid, str) or not kid:
        raise TypeError("kid must be a non-empty string")
    return KeyRecord(
        kid=kid,
        state=KeyState(item["state"]),
        created_at=item["created_at"],
        activated_at=item.get("activated_at"),
        retiring_at=item.get("retiring_at"),
        retired_at=item.get("retired_at"),
        revoked=_flag(item.get("revoked", False)),
    )


def _flag(value: object) -> bool:
    """A JSON boolean (bool() would read the string "false" as true)."""
    if not isinstance(value, bool):
        raise TypeError(f"revoked must be true or false, not {value!r}")
    return value


def _is_timestamp(value: object) -> bool:
    """Whole unix seconds from 1970 up to the year 3000 (JSON also parses 1e300, Infinity)."""
    return type(value) is int and 0 <= value <= _LAST_TIMESTAMP
