"""The key store: key-set changes and loading, over a storage backend.

`KeySetStore` holds what every backend shares: generating keys, applying the lifecycle steps of
`issuer.keys.model` under the backend's exclusive lock, encrypting private keys with the
passphrase (no change is made unless every stored key opens with it), and loading a consistent
snapshot into `LoadedKeys` (signing key and JWKS body, built once per change). Backends:
`issuer.keys.files.FileKeyStore` (a keys directory, flock) and
`issuer.keys.database.DatabaseKeyStore` (tables, a database row lock).
"""

import contextlib
import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from joserfc.jwk import RSAKey

from issuer.keys.jwks import JWKSDocument
from issuer.keys.model import (
    KeyManifest,
    KeySetError,
    PassphraseNeeded,
    RotationPolicy,
    Step,
    initial_manifest,
    revocation,
    rotation_step,
)

log = logging.getLogger(__name__)
audit = logging.getLogger("issuer.audit")

ALLOWED_KEY_SIZES = (2048, 3072, 4096)
_PLANNED_KID = "<new key>"
# How often `verify` reads a set that keeps changing under it before it reports what it read.
_VERIFY_ATTEMPTS = 3

Version = tuple[int, ...]
KeyFactory = Callable[[int], RSAKey]


@dataclass(frozen=True)
class Snapshot:
    """A consistent read of the key set: states, version and the stored PEMs of published
    keys (a missing one is absent)."""

    manifest: KeyManifest
    version: Version
    pems: dict[str, bytes]


@dataclass(frozen=True)
class LoadedKeys:
    """A key set ready for use: the signing key object and the prepared JWKS."""

    manifest: KeyManifest
    signing_kid: str
    signing_key: RSAKey
    jwks: JWKSDocument
    version: Version
    # Public halves of every published key, for checking our own tokens (introspection).
    public_keys: dict[str, RSAKey]


class KeySetStore(ABC):
    """Creates, rotates, revokes and loads a key set; backends provide storage and locking."""

    def __init__(
        self,
        passphrase: str | None = None,
        clock: Callable[[], float] = time.time,
        new_key: KeyFactory | None = None,
    ):
        self._passphrase = passphrase or None
        self._clock = clock
        # Randomness is a parameter too: tests hand out keys generated once per session.
        self._new_key = new_key or generate_key

    @abstractmethod
    def version(self) -> Version | None:
        """A cheap fingerprint that changes with every committed change; None if no key set."""

    @abstractmethod
    def describe(self) -> str:
        """Where the key set lives, for messages."""

    @abstractmethod
    @contextlib.contextmanager
    def _exclusive(self, create: bool = False) -> Iterator[None]:
        """Hold the backend's writer lock; what is committed inside is atomic. Only `create`
        (generating a set) may make the place the set lives in."""

    @abstractmethod
    def _read(self, with_pems: bool) -> Snapshot:
        """The key set as stored; `KeySetError` if there is none or it is unreadable."""

    @abstractmethod
    def _commit(self, manifest: KeyManifest, new_pems: dict[str, bytes]) -> None:
        """Store new (or re-encrypted) private keys and the new states atomically; drop retired
        private keys."""

    def exists(self) -> bool:
        return self.version() is not None

    def read_manifest(self) -> KeyManifest:
        return self._read(with_pems=False).manifest

    def generate(self, key_size: int = 2048) -> KeyManifest | None:
        """Create an active and a next key; `None` when a key set exists (nothing changes),
        `KeySetError` if the issuer could not load that set."""
        _check_key_size(key_size)
        # A set present is only read, as the issuer reads it, so without the writers' lock:
        # a keys directory this process may read but not write (a read-only secret volume,
        # root's files) has no `.lock` to take, and the set in it is fine.
        if self.exists():
            self._check_present()
            return None
        with self._exclusive(create=True):
            if self.exists():  # made by another run since we looked
                self._check_present()
                return None
            active, upcoming = self._new_key(key_size), self._new_key(key_size)
            manifest = initial_manifest(active.thumbprint(), upcoming.thumbprint(), self._now())
            self._commit(manifest, {k.thumbprint(): self._encode(k) for k in (active, upcoming)})
        audit.info(
            "key set created in %s: active=%s next=%s",
            self.describe(),
            active.thumbprint(),
            upcoming.thumbprint(),
        )
        return manifest

    def _check_present(self) -> None:
        # Nothing to write, but a set the issuer could not load (a key lost or corrupt, a
        # passphrase that does not open it) is reported now rather than by the issuer that
        # starts with it.
        with self._unchanged_on_error():
            self.verify()

    def plan_rotation(self, policy: RotationPolicy, force: bool = False) -> Step:
        """What `rotate` would do now, without changing anything (refused alike)."""
        return self._plan(
            lambda manifest, kid: rotation_step(manifest, kid, self._now(), policy, force)
        )

    def rotate(self, policy: RotationPolicy, force: bool = False, key_size: int = 2048) -> Step:
        """One rotation step (see `issuer.keys.model.rotation_step`); raises `UnsafeRotation`."""
        return self._apply(
            lambda manifest, kid: rotation_step(manifest, kid, self._now(), policy, force), key_size
        )

    def plan_revocation(self, kid: str) -> Step:
        return self._plan(
            lambda manifest, new_kid: revocation(manifest, kid, new_kid, self._now()), leaving=kid
        )

    def revoke(self, kid: str, key_size: int = 2048) -> Step:
        """Unpublish `kid` at once and delete its private key (which need not open: revoking
        a corrupt key, or one under another passphrase, is how the set is repaired)."""
        return self._apply(
            lambda manifest, new_kid: revocation(manifest, kid, new_kid, self._now()),
            key_size,
            leaving=kid,
        )

    def load(self) -> LoadedKeys:
        """The published keys, ready to sign and serve; `KeySetError` if unusable."""
        snapshot = self._read(with_pems=True)
        manifest = snapshot.manifest
        # A lost private part first: it is found without the passphrase, which a status
        # check need not hold (it would stop at the first encrypted key).
        for record in manifest.published:
            if record.kid not in snapshot.pems:
                self._decode(record.kid, None)
        keys = [(r.kid, self._decode(r.kid, snapshot.pems.get(r.kid))) for r in manifest.published]
        active = manifest.active.kid
        return LoadedKeys(
            manifest=manifest,
            signing_kid=active,
            signing_key=dict(keys)[active],
            jwks=JWKSDocument.from_keys(keys),
            version=snapshot.version,
            public_keys={kid: RSAKey.import_key(key.as_dict(private=False)) for kid, key in keys},
        )

    def verify(self) -> None:
        """`KeySetError` naming the first key the issuer could not load the set for."""
        # Read without the writers' lock, as the issuer reads it: a change committed between
        # reading the manifest and the keys (a revoked key's file deleted) is not the set
        # broken, so a set that changed meanwhile is read again.
        for _ in range(_VERIFY_ATTEMPTS - 1):
            before = self.version()
            try:
                self.load()
            except KeySetError:
                if self.version() == before:
                    raise
            else:
                return
        self.load()

    def plan_encryption(self) -> list[str]:
        """The kids `encrypt` would re-write, without changing anything (refused alike)."""
        # Read without the writers' lock, as the other plans are: a dry run writes nothing, not
        # even a `.lock`, so it also runs on a keys directory it may only read.
        self._require_passphrase()
        return sorted(self._plaintext_keys(self._read(with_pems=True)))

    def encrypt(self) -> list[str]:
        """Re-write every private key encrypted with the passphrase; the kids changed."""
        self._require_passphrase()
        with self._exclusive():
            snapshot = self._read(with_pems=True)
            plain = self._plaintext_keys(snapshot)
            if plain:
                self._commit(snapshot.manifest, {k: self._encode(key) for k, key in plain.items()})
        if plain:
            audit.info("key set encrypted in %s: %s", self.describe(), ", ".join(sorted(plain)))
        return sorted(plain)

    def _plaintext_keys(self, snapshot: Snapshot) -> dict[str, RSAKey]:
        """The keys `encrypt` re-writes, opened (`KeySetError` if any stored key does not)."""
        # Keys already encrypted must open with this passphrase too: else the set would end
        # up encrypted with two passphrases, and load with neither.
        keys = self._open_before_change(snapshot, allow_plaintext=True)
        return {kid: keys[kid] for kid, pem in snapshot.pems.items() if not _is_encrypted(pem)}

    def _require_passphrase(self) -> None:
        if self._passphrase is None:
            raise KeySetError("set ISSUER_KEYS_PASSPHRASE to the passphrase to encrypt with")

    def _apply(
        self,
        make_step: Callable[[KeyManifest, str], Step],
        key_size: int,
        leaving: str | None = None,
    ) -> Step:
        _check_key_size(key_size)
        with self._exclusive():
            snapshot = self._read(with_pems=True)
            self._open_before_change(snapshot, leaving=leaving)
            key = self._new_key(key_size)
            step = make_step(snapshot.manifest, key.thumbprint())
            new_pems = {key.thumbprint(): self._encode(key)} if step.new_kid is not None else {}
            step = self._check_loadable(step, {*snapshot.pems, *new_pems}, leaving)
            self._commit(step.manifest, new_pems)
        audit.info("key set changed in %s: %s", self.describe(), "; ".join(step.changes))
        return step

    def _plan(
        self, make_step: Callable[[KeyManifest, str], Step], leaving: str | None = None
    ) -> Step:
        snapshot = self._read(with_pems=True)
        self._open_before_change(snapshot, leaving=leaving)
        step = make_step(snapshot.manifest, _PLANNED_KID)
        return self._check_loadable(step, {*snapshot.pems, _PLANNED_KID}, leaving)

    def _check_loadable(self, step: Step, stored: set[str], leaving: str | None) -> Step:
        """Refuse a change after which the issuer could not load the set: it would keep
        serving (and signing with) the one before, a revoked key included, while the script
        reported the change made. Revoking a key whose private part is missing is a repair
        step and goes ahead; if another key is missing too, the step says so (`unloadable`)."""
        missing = tuple(sorted(r.kid for r in step.manifest.published if r.kid not in stored))
        repairing = leaving is not None and leaving not in stored
        if missing and repairing:
            return dataclasses.replace(step, unloadable=missing)
        if missing:
            raise KeySetError(
                f"the private key of {', '.join(missing)} is missing, so the issuer could not "
                f"load the key set after this change (it would keep the one before); revoke "
                f"{missing[0]} first, or restore its file; the key set in {self.describe()} "
                "was not changed"
            )
        return step

    def _open_before_change(
        self, snapshot: Snapshot, allow_plaintext: bool = False, leaving: str | None = None
    ) -> dict[str, RSAKey]:
        """Every stored private key but `leaving`, opened: a change goes ahead only if each
        opens with our passphrase, else it would add keys the issuer cannot load beside them.
        (A missing key is left to `load`: revoking it is how an operator repairs the set.)"""
        with self._unchanged_on_error():
            return {
                kid: self._decode(kid, pem, allow_plaintext)
                for kid, pem in snapshot.pems.items()
                if kid != leaving
            }

    @contextlib.contextmanager
    def _unchanged_on_error(self) -> Iterator[None]:
        try:
            yield
        except KeySetError as exc:
            raise KeySetError(f"{exc}; the key set in {self.describe()} was not changed") from exc

    def _missing_from(self, kid: str) -> str:
        """Where the private key of `kid` should have been, for the message saying it is not."""
        return f"not in {self.describe()}"

    def _encode(self, key: RSAKey) -> bytes:
        return key.as_pem(private=True, password=self._passphrase)

    def _decode(self, kid: str, pem: bytes | None, allow_plaintext: bool = False) -> RSAKey:
        if pem is None:
            raise KeySetError(f"the private key of {kid} is missing: {self._missing_from(kid)}")
        encrypted = _is_encrypted(pem)
        if encrypted and self._passphrase is None:
            raise PassphraseNeeded(f"key {kid} is encrypted; set ISSUER_KEYS_PASSPHRASE")
        if not encrypted and self._passphrase is not None and not allow_plaintext:
            # The operator asked for keys at rest to be encrypted: a plaintext one is refused
            # rather than used quietly.
            raise KeySetError(
                f"key {kid} is stored unencrypted although ISSUER_KEYS_PASSPHRASE is set; "
                "encrypt the key set with: python scripts/rotate_keys.py --encrypt"
            )
        try:
            key = RSAKey.import_key(pem, password=self._passphrase if encrypted else None)
        except (ValueError, TypeError) as exc:
            hint = " (wrong ISSUER_KEYS_PASSPHRASE?)" if encrypted else ""
            raise KeySetError(f"cannot load key {kid}{hint}") from exc
        if not key.is_private:
            raise KeySetError(f"key {kid} has no private part")
        if key.thumbprint() != kid:
            # A key restored under another's name: it would be published (and sign) under a
            # kid that is not its own, and outlive the revocation of its real kid.
            raise KeySetError(
                f"the private key stored for {kid} is another key (RFC 7638 thumbprint "
                f"{key.thumbprint()}); restore its own key, or revoke {kid}"
            )
        return key

    def _now(self) -> int:
        return int(self._clock())


def generate_key(key_size: int) -> RSAKey:
    """A new RSA private key of `key_size` bits."""
    return RSAKey.generate_key(key_size, private=True)


def _is_encrypted(pem: bytes) -> bool:
    return b"ENCRYPTED" in pem.split(b"\n", 1)[0]


def _check_key_size(key_size: int) -> None:
    if key_size not in ALLOWED_KEY_SIZES:
        raise KeySetError(f"key size must be one of {ALLOWED_KEY_SIZES}, not {key_size}")
