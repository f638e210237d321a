"""Verified tokens, remembered so a token seen again costs a dictionary lookup, not RSA.

Keyed by the whole token string (a cached entry can only be hit by the identical token),
bounded in size, and consulted only with the checks in `Verifier.verify` (expiry, and the key
that verified it still being held). Only tokens that fully verified are stored, so a flood of
forged tokens cannot fill it.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

Entry = TypeVar("Entry")


class VerifiedTokens(Generic[Entry]):
    def __init__(self, max_entries: int):
        self._max_entries = max_entries
        self._entries: dict[str, Entry] = {}
        # The dict's own lookup, no Python frame: a cache hit is on every request's path.
        self.get: Callable[[str], Entry | None] = self._entries.get

    def put(self, token: str, entry: Entry) -> None:
        if self._max_entries <= 0:
            return
        if len(self._entries) >= self._max_entries:
            # Drop the oldest eighth at once (dicts keep insertion order): amortized O(1).
            for stale in list(self._entries)[: max(1, self._max_entries // 8)]:
                del self._entries[stale]
        self._entries[token] = entry

    def drop(self, token: str) -> None:
        self._entries.pop(token, None)

    def __len__(self) -> int:
        return len(self._entries)
