"""The key set in a directory (`ISSUER_KEYS_DIR`): the only code that touches key files.

    manifest.json   states and times of every key (the commit point of every change)
    <kid>.pem       one PKCS#8 private key per unretired key, mode 0600, optionally encrypted
    .lock           flock(2) target that serializes writers

Every change runs under the lock in this order: write the new keys' PEMs (atomically), write
the manifest (atomically; the commit point), then delete the private keys of retired keys and
temporary files of our own writes. A crash at any point leaves the previous or the next
manifest, each with its keys. Nothing else in the directory is ours to delete: the operator may
keep other files there.
"""

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from issuer.keys.model import KeyManifest, KeySetError, KeyStoreUnavailable
from issuer.keys.store import KeyFactory, KeySetStore, Snapshot, Version

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# kids are RFC 7638 thumbprints (base64url); anything else in a manifest is refused before
# it is used to build a file name.
_KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
# The temporary files `write_atomic` makes here, left behind only by a crash.
_OWN_TEMPORARY = re.compile(r"\.(manifest\.json|[A-Za-z0-9_-]{16,128}\.pem)\.[a-z0-9_]+\.tmp")


class FileKeyStore(KeySetStore):
    """A keys directory shared by the issuer processes of one machine."""

    def __init__(
        self,
        directory: Path,
        passphrase: str | None = None,
        clock: Callable[[], float] = time.time,
        new_key: KeyFactory | None = None,
    ):
        super().__init__(passphrase, clock, new_key)
        self.directory = directory

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def describe(self) -> str:
        return str(self.directory)

    def _missing_from(self, kid: str) -> str:
        return f"no file {self.directory / f'{kid}.pem'}"

    def version(self) -> Version | None:
        try:
            return _version(os.stat(self.manifest_path))
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _exclusive(self, create: bool = False) -> Iterator[None]:
        if create:
            # A symbolic link to a directory not made yet: the directory it names (mkdir of
            # the link itself fails with "File exists").
            Path(os.path.realpath(self.directory)).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._refuse_unsafe_directory()
        lock = self.directory / ".lock"
        try:
            # Not followed: the directory's owner could point `.lock` at any file, which
            # root would then open and give to them.
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError:
            # No directory: a failed change leaves nothing behind (generate_keys.py makes it).
            raise self._no_key_set() from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise KeySetError(f"{lock} is a symbolic link; remove it") from None
        try:
            owner = self._owner()
            if owner is not None:
                found = os.fstat(fd)
                if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
                    # A hard link to another file (root's /etc/shadow): not given away.
                    raise KeySetError(f"{lock} is not a file of this directory's own; remove it")
            _give_to_owner(fd, owner)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _refuse_unsafe_directory(self) -> None:
        """Whoever may write the directory may put their own key and manifest in place of
        ours: the issuer would publish and sign with a key they hold. Refused: a directory
        every user may write to (a sticky one too: they may add files), unless its file
        system is read-only (a Kubernetes secret's is 1777); and, as OpenSSH's StrictModes
        does, one another user owns (who made /tmp/keys first), unless this process is
        root's (root may run the scripts on the service user's directory)."""
        try:
            found = os.stat(self.directory)
        except FileNotFoundError:
            return  # no key set: said by the caller
        if found.st_mode & stat.S_IWOTH and not os.statvfs(self.directory).f_flag & os.ST_RDONLY:
            raise KeySetError(
                f"every user may write to the keys directory {self.directory}, so anyone could "
                f"replace the signing keys; make it the issuer's own: chmod o-w {self.directory}"
            )
        user = os.geteuid()
        if user != 0 and found.st_uid not in (user, 0):
            raise KeySetError(
                f"the keys directory {self.directory} belongs to another user (uid "
                f"{found.st_uid}), who could replace the signing keys; make it the issuer's "
                f"own: chown {user} {self.directory}"
            )

    def _read(self, with_pems: bool) -> Snapshot:
        self._refuse_unsafe_directory()
        try:
            with open(self.manifest_path, "rb") as f:
                version = _version(os.fstat(f.fileno()))
                data = f.read()
        except FileNotFoundError:
            raise self._no_key_set() from None
        manifest = KeyManifest.from_json(data)
        for record in manifest.keys:
            if not _KID_PATTERN.fullmatch(record.kid):
                raise KeySetError(f"invalid kid in manifest: {record.kid!r}")
        pems = {}
        if with_pems:
            for record in manifest.published:
                try:
                    pems[record.kid] = (self.directory / f"{record.kid}.pem").read_bytes()
                except FileNotFoundError:
                    continue  # reported by `load`, as the database store does
                except OSError as exc:
                    # A failed read (EMFILE under load, EIO, ESTALE) says nothing of the set:
                    # given up on as broken, a revocation it was reading never took effect.
                    raise KeyStoreUnavailable(
                        f"cannot read key {record.kid}: {exc.strerror}"
                    ) from exc
        return Snapshot(manifest, version, pems)

    def _no_key_set(self) -> KeySetError:
        return KeySetError(
            f"no key set in {self.directory}; create one with scripts/generate_keys.py"
        )

    def _commit(self, manifest: KeyManifest, new_pems: dict[str, bytes]) -> None:
        owner = self._owner()
        created: list[Path] = []
        try:
            for kid, pem in new_pems.items():
                path = self.directory / f"{kid}.pem"
                if not path.exists():  # a new key, not one re-encrypted in place
                    created.append(path)
                write_atomic(path, pem, mode=0o600, owner=owner)
            write_atomic(self.manifest_path, manifest.to_json(), mode=0o644, owner=owner)
        except BaseException:
            self._delete_unnamed(created)
            raise
        self._delete_unneeded_files(manifest)

    def _delete_unnamed(self, created: list[Path]) -> None:
        """After a failed change, delete the new key files the manifest does not name: left,
        each took the room its manifest needed on a full disk, so every retry failed alike
        and left one more private key that nothing ever deleted."""
        try:
            named = {r.kid for r in KeyManifest.from_json(self.manifest_path.read_bytes()).keys}
        except FileNotFoundError:
            named = set()  # the first key set, never committed
        except (KeySetError, OSError):
            return  # what the manifest names is not known: nothing is deleted
        for path in created:
            if path.name.removesuffix(".pem") not in named:
                _delete(path)

    def _owner(self) -> tuple[int, int] | None:
        """Whom the files root writes here must belong to: the directory's owner (the issuer's
        user), who could not read a key of root's, mode 0600, nor open root's `.lock`."""
        if os.geteuid() != 0:
            return None
        found = os.stat(self.directory)
        return found.st_uid, found.st_gid

    def _delete_unneeded_files(self, manifest: KeyManifest) -> None:
        """Private keys of retired keys and temporary files of crashed writes: only files this
        store made. The change is committed already, so a failure here is a warning (the next
        change tries again), never a failed change."""
        retired = {f"{record.kid}.pem" for record in manifest.keys if not record.published}
        try:
            for path in list(self.directory.iterdir()):
                if path.name in retired or _OWN_TEMPORARY.fullmatch(path.name):
                    _delete(path)
            _fsync_directory(self.directory)
        except OSError as exc:
            log.warning("the key set in %s changed; cleaning up failed: %s", self.directory, exc)


def _delete(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not delete %s after a key-set change: %s", path, exc.strerror or exc)


def write_atomic(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write `data` so that `path` holds either its old or its new content, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        _give_to_owner(fd, owner)
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


def _give_to_owner(fd: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.fchown(fd, *owner)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(st: os.stat_result) -> Version:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
