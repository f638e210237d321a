"""The only code that touches key files: loading, atomic writes, locking, change detection.

Layout of a keys directory:

    manifest.json   states and times of every key (the commit point of every change)
    <kid>.pem       one PKCS#8 private key per unretired key, mode 0600, optionally encrypted
    .lock           flock(2) target that serializes writers

Every change runs under the lock in this order: write the new key's PEM (atomically), write the
manifest (atomically; the commit point), then delete private keys the manifest no longer
needs. A crash at any point leaves the previous or the next manifest, each with its keys.
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from joserfc.jwk import RSAKey

from issuer.jwks import JWKSDocument
from issuer.keys import (
    KeyManifest,
    KeySetError,
    RotationPolicy,
    Step,
    initial_manifest,
    revocation,
    rotation_step,
)

log = logging.getLogger(__name__)
audit = logging.getLogger("issuer.audit")

MANIFEST = "manifest.json"
ALLOWED_KEY_SIZES = (2048, 3072, 4096)
# kids are RFC 7638 thumbprints (base64url); anything else in a manifest is refused before
# it is used to build a file name.
_KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_PLANNED_KID = "<new key>"

Version = tuple[int, int, int, int]


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


class KeyStore:
    """A keys directory: creates, rotates, revokes and loads the key set."""

    def __init__(
        self,
        directory: Path,
        passphrase: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.directory = directory
        self._passphrase = passphrase or None
        self._clock = clock

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def version(self) -> Version | None:
        """A cheap fingerprint of the manifest that changes with every committed write."""
        try:
            return _version(os.stat(self.manifest_path))
        except FileNotFoundError:
            return None

    def read_manifest(self) -> KeyManifest:
        manifest, _ = self._read_manifest()
        return manifest

    def generate(self, key_size: int = 2048) -> KeyManifest | None:
        """Create an active and a next key; `None` when a key set exists (nothing changes)."""
        _check_key_size(key_size)
        with self._locked():
            if self.exists():
                return None
            active, upcoming = _new_key(key_size), _new_key(key_size)
            manifest = initial_manifest(active.thumbprint(), upcoming.thumbprint(), self._now())
            self._write_key(active)
            self._write_key(upcoming)
            self._commit(manifest)
            audit.info(
                "key set created dir=%s active=%s next=%s",
                self.directory,
                active.thumbprint(),
                upcoming.thumbprint(),
            )
            return manifest

    def plan_rotation(self, policy: RotationPolicy, force: bool = False) -> Step:
        """What `rotate` would do now, without changing anything."""
        return rotation_step(self.read_manifest(), _PLANNED_KID, self._now(), policy, force)

    def rotate(self, policy: RotationPolicy, force: bool = False, key_size: int = 2048) -> Step:
        """One rotation step (see `issuer.keys.rotation_step`); raises `UnsafeRotation`."""
        return self._apply(
            lambda manifest, kid: rotation_step(manifest, kid, self._now(), policy, force), key_size
        )

    def plan_revocation(self, kid: str) -> Step:
        return revocation(self.read_manifest(), kid, _PLANNED_KID, self._now())

    def revoke(self, kid: str, key_size: int = 2048) -> Step:
        """Unpublish `kid` at once and delete its private key."""
        return self._apply(
            lambda manifest, new_kid: revocation(manifest, kid, new_kid, self._now()), key_size
        )

    def load(self) -> LoadedKeys:
        """Read the manifest and every published key; raise `KeySetError` if unusable."""
        manifest, version = self._read_manifest()
        keys = [(record.kid, self._read_key(record.kid)) for record in manifest.published]
        active = manifest.active.kid
        return LoadedKeys(
            manifest=manifest,
            signing_kid=active,
            signing_key=dict(keys)[active],
            jwks=JWKSDocument.from_keys(keys),
            version=version,
            public_keys={kid: RSAKey.import_key(key.as_dict(private=False)) for kid, key in keys},
        )

    def _apply(self, make_step: Callable[[KeyManifest, str], Step], key_size: int) -> Step:
        _check_key_size(key_size)
        with self._locked():
            current = self.read_manifest()
            key = _new_key(key_size)
            step = make_step(current, key.thumbprint())
            if step.new_kid is not None:
                self._write_key(key)
            self._commit(step.manifest)
            audit.info("key set changed dir=%s: %s", self.directory, "; ".join(step.changes))
            return step

    def _commit(self, manifest: KeyManifest) -> None:
        write_atomic(self.manifest_path, manifest.to_json(), mode=0o644)
        self._delete_unneeded_files(manifest)

    def _delete_unneeded_files(self, manifest: KeyManifest) -> None:
        """Private keys of retired (or never committed) keys, and temporary files of crashes."""
        needed = {f"{record.kid}.pem" for record in manifest.published}
        for path in self.directory.iterdir():
            stale_key = path.suffix == ".pem" and path.name not in needed
            stale_tmp = path.name.startswith(".") and path.name.endswith(".tmp")
            if stale_key or stale_tmp:
                path.unlink(missing_ok=True)
        _fsync_directory(self.directory)

    def _read_manifest(self) -> tuple[KeyManifest, Version]:
        try:
            with open(self.manifest_path, "rb") as f:
                version = _version(os.fstat(f.fileno()))
                data = f.read()
        except FileNotFoundError:
            raise KeySetError(
                f"no key set in {self.directory}; create one with scripts/generate_keys.py"
            ) from None
        manifest = KeyManifest.from_json(data)
        for record in manifest.keys:
            if not _KID_PATTERN.match(record.kid):
                raise KeySetError(f"invalid kid in manifest: {record.kid!r}")
        return manifest, version

    def _read_key(self, kid: str) -> RSAKey:
        path = self.directory / f"{kid}.pem"
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeySetError(f"cannot read key {kid}: {exc.strerror}") from exc
        encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
        if encrypted and self._passphrase is None:
            raise KeySetError(f"key {kid} is encrypted; set ISSUER_KEYS_PASSPHRASE")
        try:
            key = RSAKey.import_key(pem, password=self._passphrase if encrypted else None)
        except (ValueError, TypeError) as exc:
            hint = " (wrong ISSUER_KEYS_PASSPHRASE?)" if encrypted else ""
            raise KeySetError(f"cannot load key {kid}{hint}") from exc
        if not key.is_private:
            raise KeySetError(f"key {kid} has no private part")
        return key

    def _write_key(self, key: RSAKey) -> None:
        pem = key.as_pem(private=True, password=self._passphrase)
        write_atomic(self.directory / f"{key.thumbprint()}.pem", pem, mode=0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _now(self) -> int:
        return int(self._clock())


def _new_key(key_size: int) -> RSAKey:
    return RSAKey.generate_key(key_size, private=True)


def _check_key_size(key_size: int) -> None:
    if key_size not in ALLOWED_KEY_SIZES:
        raise KeySetError(f"key size must be one of {ALLOWED_KEY_SIZES}, not {key_size}")


class KeyRing:
    """The key set a running issuer uses, swapped in whole when the files change."""

    def __init__(self, store: KeyStore):
        self.store = store
        self.current = store.load()
        self._broken_version: Version | None = None

    def reload_if_changed(self) -> bool:
        """Reload when the manifest changed; keep the old set if the new one is unusable."""
        if self.store.version() == self.current.version:
            return False
        try:
            self.current = self.store.load()
        except KeySetError:
            log.exception(
                "key set in %s changed but cannot be loaded; keeping the previous one",
                self.store.directory,
            )
            return False
        audit.info("key set reloaded signing_kid=%s", self.current.signing_kid)
        return True

    async def get(self, kid: str) -> RSAKey | None:
        """The published public key `kid` (a `KeySource` for the shared `Verifier`)."""
        return self.current.public_keys.get(kid)

    async def reload_after_bad_signature(self, kid: str, tried: RSAKey) -> RSAKey | None:
        return None  # our own keys never change under a kid

    async def watch(self, interval: float) -> None:
        """Poll for changes forever; a stat per interval, files read only after a change."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload_if_changed)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` so that `path` holds either its old or its new content, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(st: os.stat_result) -> Version:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
