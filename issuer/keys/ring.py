"""`KeyRing`: the key set a running issuer signs with, swapped in whole when the store changes."""

import asyncio
import contextlib
import logging

from joserfc.jwk import RSAKey

from issuer.keys.model import KeySetError, KeyStoreUnavailable
from issuer.keys.store import KeySetStore, LoadedKeys

log = logging.getLogger(__name__)
audit = logging.getLogger("issuer.audit")
# No version found broken yet: not None, which is a version too (the store has no key set,
# its directory or manifest deleted), and was taken as already reported.
_NONE_BROKEN = object()


class KeyRing:
    """The loaded key set; also the `KeySource` our own `Verifier` checks our tokens with."""

    def __init__(self, store: KeySetStore):
        self.store = store
        self.current: LoadedKeys = store.load()
        # Bumped with every key set swapped in; ends the verifier's cached verifications.
        self.generation = 0
        self._broken_version: object = _NONE_BROKEN  # a Version, None, or _NONE_BROKEN
        self._failing = False  # the last check could not read the store

    def reload_if_changed(self) -> bool:
        """Reload when the store changed; keep the old set if the new one is unusable. A store
        that cannot be read just now (`KeyStoreUnavailable`) is read again at the next check:
        only a set that was read and found unusable is given up on until it changes again.
        Loads and swaps on the calling thread, for a caller that also verifies on it; `watch`
        loads on a worker thread and swaps on the event loop."""
        loaded = self._load_if_changed()
        if loaded is not None:
            self._swap(loaded)
        return loaded is not None

    def _load_if_changed(self) -> LoadedKeys | None:
        """The store's set if it changed and is usable: the slow part, safe on any thread."""
        version = self.store.version()
        if version in (self.current.version, self._broken_version):
            return None
        try:
            return self.store.load()
        except KeyStoreUnavailable:
            raise  # not this version's fault: `watch` tries it again
        except KeySetError as exc:
            self._broken_version = version  # log a broken set once, not on every poll
            log.error(
                "key set in %s cannot be loaded (%s); keeping the previous one",
                self.store.describe(),
                exc,
            )
            return None

    def _swap(self, loaded: LoadedKeys) -> None:
        # On the event loop when watching: a verification there reads its key and this
        # generation with no swap in between, so it is never remembered under a set that no
        # longer holds its key (a revoked one, say).
        self.current = loaded
        self.generation += 1
        audit.info("key set reloaded signing_kid=%s", self.current.signing_kid)

    async def key(self, kid: str, rejected: RSAKey | None = None) -> RSAKey | None:
        """The published public key `kid`; our own keys never change under a kid."""
        return None if rejected is not None else self.current.public_keys.get(kid)

    async def watch(self, interval: float, wake: asyncio.Event | None = None) -> None:
        """Poll for changes forever: one cheap version check per interval, or when woken."""
        wake = wake or asyncio.Event()
        while True:
            # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await wake.wait()
            wake.clear()
            try:
                loaded = await asyncio.to_thread(self._load_if_changed)
            except Exception as exc:  # a database blip must not end the watcher
                # Said once an outage, not on every poll; a change is read as soon as it ends.
                if not self._failing:
                    log.error(
                        "checking the key set for changes failed (%s); retrying every %g s",
                        exc,
                        interval,
                        exc_info=not isinstance(exc, KeyStoreUnavailable),
                    )
                self._failing = True
            else:
                if loaded is not None:
                    self._swap(loaded)
                if self._failing:
                    log.warning("checking the key set for changes works again")
                self._failing = False
