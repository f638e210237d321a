"""The key-set model: each key's state and times, and the rotation rules. Pure: takes `now`.

A key is `next` (published, not yet signing), `active` (signing and published; exactly one),
`retiring` (published, no longer signing) or `retired` (unpublished, private part deleted).
"""

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class KeySetError(Exception):
    """The key set is missing, malformed or breaks an invariant."""


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


@dataclass(frozen=True)
class KeyRecord:
    """One key's identity, state and the times the state changed (unix seconds)."""

    kid: str
    state: KeyState
    created_at: int
    activated_at: int | None = None
    retiring_at: int | None = None

    @property
    def published(self) -> bool:
        return self.state is not KeyState.RETIRED


@dataclass(frozen=True)
class KeyManifest:
    """The whole key set's states; the single source of truth for which key signs."""

    keys: tuple[KeyRecord, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        active = [k for k in self.keys if k.state is KeyState.ACTIVE]
        if len(active) != 1:
            raise KeySetError(f"a key set needs exactly one active key, found {len(active)}")
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise KeySetError("duplicate kid in key set")

    @property
    def active(self) -> KeyRecord:
        return next(k for k in self.keys if k.state is KeyState.ACTIVE)

    @property
    def published(self) -> tuple[KeyRecord, ...]:
        return tuple(k for k in self.keys if k.published)

    def to_json(self) -> bytes:
        doc = {"version": 1, "keys": [_record_to_dict(k) for k in self.keys]}
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> "KeyManifest":
        try:
            doc = json.loads(data)
            records = tuple(_record_from_dict(item) for item in doc["keys"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeySetError(f"unreadable key manifest: {exc}") from exc
        return cls(records)


def initial_manifest(kid: str, now: int) -> KeyManifest:
    """A new key set with one active key."""
    return KeyManifest((KeyRecord(kid, KeyState.ACTIVE, now, activated_at=now),))


def rotate(manifest: KeyManifest, new_kid: str, now: int) -> KeyManifest:
    """One rotation step: `new_kid` becomes active, the active key keeps being published."""
    keys = [
        replace(k, state=KeyState.RETIRING, retiring_at=now) if k.state is KeyState.ACTIVE else k
        for k in manifest.keys
    ]
    keys.append(KeyRecord(new_kid, KeyState.ACTIVE, now, activated_at=now))
    return KeyManifest(tuple(keys))


def _record_to_dict(record: KeyRecord) -> dict[str, Any]:
    return {
        "kid": record.kid,
        "state": record.state.value,
        "created_at": record.created_at,
        "activated_at": record.activated_at,
        "retiring_at": record.retiring_at,
    }


def _record_from_dict(item: dict[str, Any]) -> KeyRecord:
    kid = item["kid"]
    if not isinstance(kid, str) or not kid:
        raise TypeError("kid must be a non-empty string")
    return KeyRecord(
        kid=kid,
        state=KeyState(item["state"]),
        created_at=int(item["created_at"]),
        activated_at=_optional_int(item.get("activated_at")),
        retiring_at=_optional_int(item.get("retiring_at")),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
