"""Key files: creation, atomic writes, crash safety, encryption, rotation, change detection."""

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest

from issuer.keys import files as keystore_module
from issuer.keys.files import MANIFEST, FileKeyStore, write_atomic
from issuer.keys.model import (
    KeyManifest,
    KeySetError,
    KeyState,
    KeyStoreUnavailable,
    PassphraseNeeded,
    RotationPolicy,
    UnsafeRotation,
)
from issuer.keys.ring import KeyRing
from issuer.keys.store import KeyFactory
from issuer.oauth.tokens import TokenSigner
from resource_server.errors import InvalidToken
from resource_server.verify import Verifier
from tests.support import FakeClock

POLICY = RotationPolicy(access_token_ttl=900, jwks_max_age=600, leeway=120)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock, new_key: KeyFactory) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys", clock=clock, new_key=new_key)


def pem_files(store: FileKeyStore) -> set[str]:
    return {p.stem for p in store.directory.glob("*.pem")}


def test_generate_creates_active_and_next_keys_with_private_files_0600(store):
    manifest = store.generate()
    assert manifest is not None and manifest.next is not None
    assert pem_files(store) == {manifest.active.kid, manifest.next.kid}
    for kid in pem_files(store):
        pem = store.directory / f"{kid}.pem"
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in pem.read_bytes()
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_generate_with_a_key_set_present_changes_nothing(store):
    first = store.generate()
    before = sorted(p.name for p in store.directory.iterdir())
    assert store.generate() is None
    assert sorted(p.name for p in store.directory.iterdir()) == before
    assert store.read_manifest() == first


def test_generate_with_a_key_set_present_in_a_read_only_directory_changes_nothing(
    store, monkeypatch
):
    # The review: on a keys directory it may not write (a read-only secret volume), with a
    # set the issuer loads, generate_keys.py failed opening `.lock` (exit 1) instead of
    # saying the set exists: nothing is written, so no writer's lock is needed.
    first = store.generate()
    (store.directory / ".lock").unlink()  # a mounted secret has none
    real_open = os.open

    def read_only(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert store.generate() is None
    assert store.read_manifest() == first
    assert not (store.directory / ".lock").exists()


def test_generate_with_a_key_set_present_reads_it_again_if_it_changed_meanwhile(
    store, monkeypatch, tmp_path, clock, new_key
):
    # The review: the set present is read without the writers' lock; a revocation committed
    # between reading the manifest and reading the keys (the revoked key's file deleted)
    # made generate_keys.py report that set broken ("the private key of ... is missing")
    # and exit 1, although both the set before and the set after load.
    first = store.generate()
    assert first is not None
    revoking = FileKeyStore(tmp_path / "keys", clock=clock, new_key=new_key)
    parse, raced = KeyManifest.from_json, []

    def revoked_after_the_manifest_is_read(data: bytes) -> KeyManifest:
        manifest = parse(data)
        if not raced:
            raced.append(True)
            revoking.revoke(first.next.kid)
        return manifest

    monkeypatch.setattr(KeyManifest, "from_json", revoked_after_the_manifest_is_read)
    assert store.generate() is None
    assert raced and first.next.kid not in {r.kid for r in store.read_manifest().published}


@pytest.mark.parametrize("size", [3072, 4096])
def test_larger_key_sizes_are_allowed(store, size):
    store.generate(size)
    assert store.load().signing_key.raw_value.key_size == size


@pytest.mark.parametrize("size", [1024, 2047, 8192])
def test_unsupported_key_sizes_are_refused(store, size):
    with pytest.raises(KeySetError, match="key size"):
        store.generate(size)
    assert not store.exists()


def test_rotation_publishes_the_new_next_key_and_signs_with_the_old_next(store, clock):
    first = store.generate()
    clock.advance(POLICY.publish_lead)
    step = store.rotate(POLICY)
    manifest = step.manifest
    assert manifest.active.kid == first.next.kid
    assert manifest.get(first.active.kid).state is KeyState.RETIRING
    loaded = store.load()
    assert loaded.signing_kid == first.next.kid
    # Signed with that key itself: tokens under its kid verify against the JWKS.
    assert loaded.signing_key.thumbprint() == first.next.kid
    published = {k.kid for k in manifest.published}
    assert published == pem_files(store) == {first.active.kid, first.next.kid, step.new_kid}


def test_unsafe_rotation_changes_nothing(store, clock):
    store.generate()
    before = store.manifest_path.read_bytes()
    files = pem_files(store)
    clock.advance(POLICY.publish_lead - 1)
    with pytest.raises(UnsafeRotation):
        store.rotate(POLICY)
    assert store.manifest_path.read_bytes() == before
    assert pem_files(store) == files


def test_plan_rotation_changes_nothing(store, clock):
    store.generate()
    before = store.manifest_path.read_bytes()
    clock.advance(POLICY.publish_lead)
    plan = store.plan_rotation(POLICY)
    assert any("next -> active" in line for line in plan.changes)
    assert store.manifest_path.read_bytes() == before


def test_retired_keys_lose_their_private_file(store, clock):
    first = store.generate()
    clock.advance(POLICY.publish_lead)
    store.rotate(POLICY)
    clock.advance(POLICY.retire_after)
    store.rotate(POLICY)
    assert first.active.kid not in pem_files(store)
    assert store.read_manifest().get(first.active.kid).state is KeyState.RETIRED


def test_revoke_unpublishes_and_deletes_at_once(store):
    first = store.generate()
    step = store.revoke(first.active.kid)
    assert first.active.kid not in pem_files(store)
    loaded = store.load()
    assert loaded.signing_kid == first.next.kid
    assert first.active.kid.encode() not in loaded.jwks.body
    assert step.new_kid in pem_files(store)


def test_revoking_a_retiring_key_makes_no_key_and_leaves_no_key_file_behind(store):
    first = store.generate()
    store.rotate(POLICY, force=True)
    step = store.revoke(first.active.kid)  # retiring now: the set needs no new key
    assert step.new_kid is None
    assert pem_files(store) == {k.kid for k in store.read_manifest().published}
    assert first.active.kid not in pem_files(store)


def test_rotate_without_a_key_set_says_how_to_create_one(store):
    with pytest.raises(KeySetError, match=r"generate_keys\.py"):
        store.rotate(POLICY)


def test_a_change_without_a_key_set_creates_no_directory(tmp_path, new_key):
    # The audit: `rotate_keys.py --keys-dir /nonexistent/dir` made the directory and a .lock
    # in it, then failed with "no key set".
    store = FileKeyStore(tmp_path / "none" / "keys", passphrase="pp", new_key=new_key)
    for change in (lambda: store.rotate(POLICY, force=True), store.encrypt):
        with pytest.raises(KeySetError, match=r"no key set in .*generate_keys\.py"):
            change()
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("failing_call", range(9))
def test_a_crash_at_any_write_step_leaves_a_usable_set(store, clock, monkeypatch, failing_call):
    """Fail the n-th file operation of a rotation: the set still loads with one active key."""
    store.generate()
    clock.advance(POLICY.publish_lead)
    store.rotate(POLICY)
    clock.advance(POLICY.retire_after)  # the next step also retires a key and deletes its file
    calls = {"n": 0}
    real_replace, real_unlink, real_fsync = os.replace, Path.unlink, os.fsync

    def counting(real):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == failing_call + 1:
                raise OSError("injected crash")
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(keystore_module.os, "replace", counting(real_replace))
    monkeypatch.setattr(keystore_module.os, "fsync", counting(real_fsync))
    monkeypatch.setattr(Path, "unlink", counting(real_unlink))
    with contextlib.suppress(OSError):
        store.rotate(POLICY)
    monkeypatch.undo()
    loaded = store.load()
    assert loaded.manifest.active.kid == loaded.signing_kid
    assert all((store.directory / f"{k.kid}.pem").exists() for k in loaded.manifest.published)


def test_failed_atomic_write_leaves_old_content_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new content", mode=0o600)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_an_atomic_write_renames_a_file_it_wrote_in_the_same_directory(tmp_path, monkeypatch):
    # A rename is atomic only within one file system: a temporary file in /tmp would not be.
    target = tmp_path / "keys" / MANIFEST
    target.parent.mkdir()
    replace, renames = os.replace, []

    def recording_replace(src: str, dst: Path) -> None:
        renames.append((Path(src), Path(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    write_atomic(target, b"new", mode=0o644)
    [(source, destination)] = renames
    assert source.parent == destination.parent == target.parent
    # What a crash before the rename leaves behind, the next change deletes.
    assert keystore_module._OWN_TEMPORARY.fullmatch(source.name)
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == [MANIFEST]


@pytest.mark.parametrize("change", ["generate", "rotate"])
def test_a_change_failing_on_a_full_disk_leaves_no_new_key_behind(store, monkeypatch, change):
    # The scripts audit: the new key was written, the manifest was not (ENOSPC), and the key
    # stayed, never published nor deleted: it took the room the manifest needed, so every
    # retry failed alike and left one more private key.
    if change == "rotate":
        store.generate()
    before = {p.name for p in store.directory.iterdir()} if store.directory.exists() else set()
    real_write_atomic = keystore_module.write_atomic

    def full_disk_for_the_manifest(path: Path, data: bytes, **kwargs: object) -> None:
        if path.name == MANIFEST:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_atomic(path, data, **kwargs)

    monkeypatch.setattr(keystore_module, "write_atomic", full_disk_for_the_manifest)
    with pytest.raises(OSError, match="No space left"):
        store.generate() if change == "generate" else store.rotate(POLICY, force=True)
    assert {p.name for p in store.directory.iterdir()} - {".lock"} == before - {".lock"}


def test_temporary_files_of_a_crashed_write_are_cleaned_by_the_next_change(store, clock):
    first = store.generate()
    leftovers = [".manifest.json.k2x9_q0a.tmp", f".{first.next.kid}.pem.abcd1234.tmp"]
    for name in leftovers:
        (store.directory / name).write_bytes(b"x")
    clock.advance(POLICY.publish_lead)
    store.rotate(POLICY)
    assert not {p.name for p in store.directory.iterdir()} & set(leftovers)


def test_a_change_deletes_no_file_of_the_operator(store):
    # The audit: a rotation deleted every *.pem the manifest did not name and every .*.tmp,
    # the operator's certificate and notes among them, and failed on a directory "old.pem".
    store.generate()
    mine = {"tls.pem": b"cert", ".backup.tmp": b"n", "operator-backup-2024.pem": b"key"}
    for name, content in mine.items():
        (store.directory / name).write_bytes(content)
    (store.directory / "old.pem").mkdir()
    store.rotate(POLICY, force=True)
    for name, content in mine.items():
        assert (store.directory / name).read_bytes() == content
    assert (store.directory / "old.pem").is_dir()


def test_a_cleanup_failure_after_the_commit_is_a_warning_not_a_failed_change(store, caplog):
    first = store.generate()
    store.revoke(first.active.kid)
    # A retired key's file that cannot be deleted (here: a directory by its name).
    (store.directory / f"{first.active.kid}.pem").mkdir()
    step = store.rotate(POLICY, force=True)
    assert store.read_manifest() == step.manifest  # committed, and reported as made
    assert store.load().signing_kid == step.manifest.active.kid
    assert any(
        r.levelname == "WARNING" and first.active.kid in r.getMessage() for r in caplog.records
    )


def test_encrypted_keys_round_trip_with_the_passphrase(tmp_path, new_key):
    store = FileKeyStore(tmp_path / "keys", passphrase="correct horse battery", new_key=new_key)
    manifest = store.generate()
    pem = (store.directory / f"{manifest.active.kid}.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert store.load().signing_kid == manifest.active.kid
    # Told apart: `rotate_keys.py --status` needs no passphrase, but a wrong one is an error.
    with pytest.raises(PassphraseNeeded, match="ISSUER_KEYS_PASSPHRASE"):
        FileKeyStore(store.directory).load()
    with pytest.raises(KeySetError, match="wrong ISSUER_KEYS_PASSPHRASE") as wrong:
        FileKeyStore(store.directory, passphrase="wrong").load()
    assert not isinstance(wrong.value, PassphraseNeeded)


def test_encrypt_without_a_passphrase_is_refused_and_changes_nothing(store):
    # It would re-write the keys unencrypted and report them "encrypted".
    store.generate()
    before = directory_contents(store)
    for change in (store.encrypt, store.plan_encryption):
        with pytest.raises(KeySetError, match="set ISSUER_KEYS_PASSPHRASE"):
            change()
    assert directory_contents(store) == before


def test_a_key_file_holding_only_a_public_key_is_refused(store):
    # The issuer would load it, publish it, and fail every token it signs once it is active.
    manifest = store.generate()
    public = store.load().public_keys[manifest.next.kid].as_pem(private=False)
    (store.directory / f"{manifest.next.kid}.pem").write_bytes(public)
    before = directory_contents(store)
    with pytest.raises(KeySetError, match=f"key {manifest.next.kid} has no private part"):
        store.load()
    with pytest.raises(KeySetError, match=r"no private part.*was not changed"):
        store.rotate(POLICY, force=True)
    assert directory_contents(store) == before


def test_a_plaintext_key_is_refused_when_a_passphrase_is_set(store):
    # The audit: plaintext keys loaded silently although the operator asked for encryption.
    store.generate()
    with pytest.raises(KeySetError, match=r"rotate_keys\.py --encrypt"):
        FileKeyStore(store.directory, passphrase="correct horse battery").load()


def test_encrypt_rewrites_plaintext_keys_and_keeps_the_key_set(store, new_key):
    manifest = store.generate()
    signing = store.load().signing_key.as_dict(private=False)
    encrypting = FileKeyStore(store.directory, passphrase="correct horse battery")
    assert set(encrypting.encrypt()) == {manifest.active.kid, manifest.next.kid}
    for kid in (manifest.active.kid, manifest.next.kid):
        pem = (store.directory / f"{kid}.pem").read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = encrypting.load()
    assert loaded.manifest == manifest  # same keys, same states
    assert loaded.signing_key.as_dict(private=False) == signing
    assert encrypting.encrypt() == []  # nothing left to do
    assert stat.S_IMODE((store.directory / f"{manifest.active.kid}.pem").stat().st_mode) == 0o600


def test_an_interrupted_encrypt_leaves_a_mixed_set_that_running_it_again_completes(
    store, monkeypatch
):
    # Keys are re-written in place, so unlike the other changes a crash does leave neither
    # set: the keys written so far are encrypted, the others not, and the set loads with no
    # passphrase setting until `--encrypt` runs again (docs/keys.md says so).
    manifest = store.generate()
    encrypting = FileKeyStore(store.directory, passphrase="correct horse battery")
    real_replace, calls = os.replace, []

    def crash_at_the_second(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise OSError("injected crash")
        real_replace(*args)

    monkeypatch.setattr(keystore_module.os, "replace", crash_at_the_second)
    with pytest.raises(OSError, match="injected crash"):
        encrypting.encrypt()
    monkeypatch.undo()
    with pytest.raises(KeySetError):
        store.load()
    with pytest.raises(KeySetError):
        encrypting.load()
    assert len(encrypting.encrypt()) == 1
    assert encrypting.load().manifest == manifest


@pytest.mark.parametrize(
    "kid",
    [b"../../etc/passwd", b"abcdefghijklmnopq\\n"],
    ids=["path", "trailing newline"],  # `$` would also match before a final newline
)
def test_manifest_with_a_kid_that_is_no_file_name_of_ours_is_refused(store, kid):
    store.generate()
    data = store.manifest_path.read_bytes().replace(store.read_manifest().active.kid.encode(), kid)
    store.manifest_path.write_bytes(data)
    with pytest.raises(KeySetError, match="invalid kid"):
        store.load()


def test_manifest_needs_exactly_one_active_key():
    with pytest.raises(KeySetError, match="exactly one active"):
        KeyManifest(())


def test_keyring_reloads_only_after_a_change(store, clock):
    store.generate()
    ring = KeyRing(store)
    first = ring.current
    assert not ring.reload_if_changed()
    assert ring.current is first
    assert ring.current.jwks is first.jwks  # the body is built once per change, not per use
    clock.advance(POLICY.publish_lead)
    store.rotate(POLICY)
    assert ring.reload_if_changed()
    assert ring.current.signing_kid != first.signing_kid


def test_keyring_keeps_the_old_set_when_the_new_one_is_broken(store):
    store.generate()
    ring = KeyRing(store)
    first = ring.current
    store.manifest_path.write_bytes(b"{not json")
    assert not ring.reload_if_changed()
    assert ring.current is first


def test_a_failed_read_while_loading_a_revocation_is_retried_not_given_up_on(store, monkeypatch):
    # The review: one ESTALE (or EMFILE under load) reading a key file marked that version
    # broken, and the issuer signed with, and published, the revoked key until the next change.
    store.generate()
    ring = KeyRing(store)
    revoked = store.read_manifest().active.kid
    store.revoke(revoked)
    real_read_bytes, calls = Path.read_bytes, []

    def stale_once(path: Path) -> bytes:
        if path.suffix == ".pem":
            calls.append(path)
            if len(calls) == 1:
                raise OSError(116, "Stale file handle")
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", stale_once)
    with pytest.raises(KeyStoreUnavailable):
        ring.reload_if_changed()
    assert ring.current.signing_kid == revoked  # still the old set, for now
    assert ring.reload_if_changed()  # the next check reads the change
    assert revoked not in ring.current.public_keys and ring.current.signing_kid != revoked


def self_checking_issuer(store: FileKeyStore, clock: FakeClock) -> tuple[KeyRing, Verifier, str]:
    """A key ring over a new set, the Verifier the issuer checks its own tokens with (for
    introspection), and a token signed with the set's active key."""
    store.generate()
    ring = KeyRing(store)
    verifier = Verifier(ring, "https://issuer.test", audience=None, leeway=0, clock=clock)
    token = (
        TokenSigner(ring, "https://issuer.test", 900, clock=clock)
        .issue(subject="alice", client_id="webapp", audience="billing", scope=("read",))
        .access_token
    )
    return ring, verifier, token


async def test_a_token_verified_before_its_key_was_revoked_is_refused_after_the_reload(
    store, clock
):
    # The issuer checks its own tokens (introspection) with a Verifier over the ring, which
    # remembers verified tokens until the ring swaps in another key set.
    ring, verifier, token = self_checking_issuer(store, clock)
    assert (await verifier.verify(token)).sub == "alice"
    store.revoke(ring.current.signing_kid)
    assert ring.reload_if_changed()
    with pytest.raises(InvalidToken, match="does not publish"):
        await verifier.verify(token)


async def test_a_revocation_loaded_during_a_verification_is_not_outlived_by_it(
    store, clock, monkeypatch
):
    # The watcher loads a changed set on another thread; were the swap made there too, it
    # could land between a verification's key and its generation, and the token checked
    # with the revoked key would be remembered as valid under the new set until its exp.
    import resource_server.verify as verify_module

    ring, verifier, token = self_checking_issuer(store, clock)
    store.revoke(ring.current.signing_kid)
    loading, go = threading.Event(), threading.Event()
    real_load, real_check = store.load, verify_module._verify_signature

    def held_load() -> object:
        loading.set()
        go.wait(5)
        return real_load()

    def check_then_let_the_reload_run(token: str, key: object) -> object:
        payload = real_check(token, key)
        go.set()
        time.sleep(0.3)  # the interpreter lock is free: the watcher's thread finishes now
        return payload

    monkeypatch.setattr(store, "load", held_load)
    monkeypatch.setattr(verify_module, "_verify_signature", check_then_let_the_reload_run)
    wake = asyncio.Event()
    wake.set()
    watcher = asyncio.create_task(ring.watch(3600, wake))
    try:
        while not loading.is_set():
            await asyncio.sleep(0.01)
        assert (await verifier.verify(token)).sub == "alice"  # its key was handed out first
        while ring.generation == 0:
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert verifier.remembered(token) is None
    with pytest.raises(InvalidToken, match="does not publish"):
        await verifier.verify(token)


@pytest.mark.parametrize("removed", ["directory", "manifest"])
def test_keyring_reports_a_key_set_that_went_away_once(store, caplog, removed):
    # The audit: `rm -rf` of the keys dir under a running issuer was never logged.
    store.generate()
    ring = KeyRing(store)
    first = ring.current
    if removed == "directory":
        shutil.rmtree(store.directory)
    else:
        store.manifest_path.unlink()
    with caplog.at_level(logging.ERROR, logger="issuer.keys.ring"):
        assert not ring.reload_if_changed()
        assert not ring.reload_if_changed()
    assert ring.current is first  # still signing with the set it holds
    reports = [r for r in caplog.records if "cannot be loaded" in r.getMessage()]
    assert len(reports) == 1 and str(store.directory) in reports[0].getMessage()


async def test_the_key_watcher_outlasts_a_store_it_cannot_read_and_says_so_once(
    store, monkeypatch, caplog
):
    # A database blip must not end the watcher: the issuer would go on signing with, and
    # publishing, a revoked key until restarted.
    manifest = store.generate()
    ring = KeyRing(store)
    store.revoke(manifest.active.kid)
    real_version, checks = store.version, []

    def away_twice() -> object:
        checks.append(1)
        if len(checks) <= 2:
            raise KeyStoreUnavailable("the database is away")
        return real_version()

    monkeypatch.setattr(store, "version", away_twice)
    wake = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="issuer.keys.ring"):
        watcher = asyncio.create_task(ring.watch(3600, wake))
        try:
            deadline = time.monotonic() + 5
            while not any("works again" in r.getMessage() for r in caplog.records):
                assert not watcher.done(), "the watcher ended"
                assert time.monotonic() < deadline, "the watcher never read the store again"
                wake.set()  # instead of waiting out the interval
                await asyncio.sleep(0.01)
        finally:
            watcher.cancel()
    assert manifest.active.kid not in ring.current.public_keys
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [m for m in messages if "failed" in m[1]] == [
        (
            "ERROR",
            "checking the key set for changes failed (the database is away); retrying every 3600 s",
        )
    ]
    assert ("WARNING", "checking the key set for changes works again") in messages


def test_key_set_changes_are_audited(store, clock, caplog):
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        first = store.generate()
        clock.advance(POLICY.publish_lead)
        store.rotate(POLICY)
        store.revoke(first.next.kid)
    lines = [r.getMessage() for r in caplog.records if r.name == "issuer.audit"]
    assert any("key set created" in line for line in lines)
    assert any("next -> active" in line for line in lines)
    assert any("revoked" in line for line in lines)
    assert all("PRIVATE" not in line for line in lines)


def directory_contents(store: FileKeyStore) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store.directory.iterdir() if p.name != ".lock"}


# Each way a store's passphrase can fail to open the stored set: (stored with, given now).
PASSPHRASE_MISMATCHES = {
    "no passphrase for an encrypted set": ("correct horse battery", None),
    "wrong passphrase": ("correct horse battery", "wrong"),
    "passphrase for an unencrypted set": (None, "correct horse battery"),
}
# Every change a script can ask for, and `generate`, which a script runs on an existing set.
CHANGES = {
    "rotate": lambda store, manifest: store.rotate(POLICY, force=True),
    "revoke": lambda store, manifest: store.revoke(manifest.active.kid),
    "generate": lambda store, manifest: store.generate(),
    "dry run": lambda store, manifest: store.plan_rotation(POLICY, force=True),
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("mismatch", PASSPHRASE_MISMATCHES)
def test_a_passphrase_that_does_not_open_the_set_changes_nothing(
    tmp_path, new_key, mismatch, change
):
    # The audit: a rotation without the passphrase wrote a plaintext key beside encrypted ones
    # and exited 0; the issuer could not load the result.
    stored, given = PASSPHRASE_MISMATCHES[mismatch]
    directory = tmp_path / "keys"
    manifest = FileKeyStore(directory, passphrase=stored, new_key=new_key).generate()
    store = FileKeyStore(directory, passphrase=given, new_key=new_key)
    before = directory_contents(store)
    with pytest.raises(KeySetError, match=r"ISSUER_KEYS_PASSPHRASE.*was not changed"):
        CHANGES[change](store, manifest)
    assert directory_contents(store) == before
    assert FileKeyStore(directory, passphrase=stored).load().signing_kid == manifest.active.kid


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_generate_on_a_set_the_issuer_cannot_load_names_the_key_and_changes_nothing(store, damage):
    # The audit: with the active key's file deleted, `generate_keys.py` said "a key set already
    # exists" and exited 0, while the issuer could not load the set.
    manifest = store.generate()
    pem = store.directory / f"{manifest.active.kid}.pem"
    if damage == "missing":
        pem.unlink()
    else:
        pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    before = directory_contents(store)
    named = re.escape(str(pem)) if damage == "missing" else re.escape(manifest.active.kid)
    with pytest.raises(KeySetError, match=f"{named}.*was not changed"):
        store.generate()
    with pytest.raises(KeySetError, match=named):
        store.verify()  # what `rotate_keys.py --status` checks
    assert directory_contents(store) == before


def test_encrypt_refuses_a_passphrase_the_encrypted_keys_do_not_open(store):
    manifest = store.generate()
    encrypted = FileKeyStore(store.directory, passphrase="correct horse battery")
    pem = store.load().signing_key.as_pem(private=True, password="correct horse battery")
    (store.directory / f"{manifest.active.kid}.pem").write_bytes(pem)  # half encrypted
    before = directory_contents(store)
    with pytest.raises(KeySetError, match="wrong ISSUER_KEYS_PASSPHRASE"):
        FileKeyStore(store.directory, passphrase="wrong").encrypt()
    assert directory_contents(store) == before  # not encrypted with two passphrases
    assert encrypted.encrypt() == [manifest.next.kid]
    assert encrypted.load().signing_kid == manifest.active.kid


def test_a_key_whose_private_file_is_lost_can_still_be_revoked(store):
    manifest = store.generate()
    (store.directory / f"{manifest.active.kid}.pem").unlink()
    with pytest.raises(KeySetError, match="missing"):
        store.load()
    store.revoke(manifest.active.kid)  # the repair: the next key takes over
    assert store.load().signing_kid == manifest.next.kid


def test_no_change_is_made_that_the_issuer_could_not_load_a_revocation_included(store):
    # The audit: with another published key's file lost, `--revoke` of the active key said
    # "revoked", while the issuer could not load the new set and kept signing with the old key.
    manifest = store.generate()
    lost = manifest.next.kid
    (store.directory / f"{lost}.pem").unlink()
    before = directory_contents(store)
    for change in (
        lambda: store.revoke(manifest.active.kid),
        lambda: store.plan_revocation(manifest.active.kid),  # --dry-run says the same
        lambda: store.rotate(POLICY, True),
        lambda: store.plan_rotation(POLICY, True),
    ):
        with pytest.raises(KeySetError, match=f"revoke {lost} first.*was not changed"):
            change()
        assert directory_contents(store) == before
    assert store.revoke(lost).unloadable == ()  # the repair goes ahead
    assert store.load().signing_kid == manifest.active.kid
    store.revoke(manifest.active.kid)  # and then the revocation that was asked for
    assert manifest.active.kid not in store.load().public_keys


def test_a_repair_that_leaves_another_key_lost_says_the_set_is_still_unloadable(store):
    # The review: with two private files lost, revoking one was accepted silently, and the
    # issuer went on signing with the previous set.
    manifest = store.generate()
    for kid in (manifest.active.kid, manifest.next.kid):
        (store.directory / f"{kid}.pem").unlink()
    assert store.plan_revocation(manifest.active.kid).unloadable != ()
    step = store.revoke(manifest.active.kid)
    assert step.unloadable == (manifest.next.kid,)
    assert store.revoke(manifest.next.kid).unloadable == ()  # the last repair
    assert store.load().signing_kid not in (manifest.active.kid, manifest.next.kid)


@pytest.mark.parametrize("damage", ["corrupt", "another passphrase"])
def test_a_key_that_does_not_open_can_still_be_revoked_and_nothing_else(store, damage):
    manifest = store.generate()
    pem = store.directory / f"{manifest.active.kid}.pem"
    if damage == "corrupt":
        pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    else:
        pem.write_bytes(store.load().signing_key.as_pem(private=True, password="other"))
    with pytest.raises(KeySetError, match="was not changed"):
        store.rotate(POLICY, force=True)
    store.plan_revocation(manifest.active.kid)
    store.revoke(manifest.active.kid)  # the repair: the next key takes over
    assert store.load().signing_kid == manifest.next.kid


def test_a_deeply_nested_manifest_is_an_unreadable_key_set(store):
    store.generate()
    store.manifest_path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(KeySetError, match="unreadable key manifest"):
        store.read_manifest()


@pytest.mark.parametrize("value", [b"Infinity", b"1e300"])
def test_keyring_keeps_the_old_set_when_a_manifest_time_is_out_of_range(store, value):
    # The audit: OverflowError escaped the ring, so the watcher logged it on every poll.
    manifest = store.generate()
    ring = KeyRing(store)
    first = ring.current
    old = f'"created_at": {manifest.active.created_at}'.encode()
    store.manifest_path.write_bytes(
        store.manifest_path.read_bytes().replace(old, b'"created_at": ' + value, 1)
    )
    assert not ring.reload_if_changed()
    assert ring.current is first
    with pytest.raises(KeySetError, match="created_at"):
        store.read_manifest()


@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["world-writable", "sticky"])
def test_a_keys_directory_every_user_may_write_is_refused(store, mode):
    # The audit: in a keys directory every local user may write, anyone could put their own
    # key (and manifest) in place of ours; the issuer loaded it, published it and signed
    # with it, so they could sign tokens it accepts.
    manifest = store.generate()
    store.directory.chmod(mode)
    before = directory_contents(store)
    for change in (*CHANGES.values(), lambda store, manifest: store.load()):
        with pytest.raises(KeySetError, match=r"every user may write.*chmod o-w"):
            change(store, manifest)
    assert directory_contents(store) == before
    store.directory.chmod(0o700)
    assert store.load().signing_kid == manifest.active.kid


def test_a_read_only_keys_directory_every_user_may_write_is_used(store, monkeypatch):
    # A Kubernetes secret volume is 1777 on a read-only file system: nobody may add a key.
    manifest = store.generate()
    store.directory.chmod(0o1777)
    statvfs = os.statvfs

    def read_only(path: object) -> object:
        found = statvfs(path)
        return type("Found", (), {"f_flag": found.f_flag | os.ST_RDONLY})()

    monkeypatch.setattr(os, "statvfs", read_only)
    assert store.load().signing_kid == manifest.active.kid


def test_a_keys_directory_another_user_owns_is_refused_unless_root_reads_it(store, monkeypatch):
    # The review: someone who made the directory first (ISSUER_KEYS_DIR=/tmp/keys) and left
    # it o-w passed the mode check, and could replace the keys at will.
    manifest = store.generate()
    os.chown(store.directory, 4242, -1)
    assert store.load().signing_kid == manifest.active.kid  # root: the operator's own run
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(KeySetError, match=r"belongs to another user \(uid 4242\).*chown 1000"):
        store.load()
    os.chown(store.directory, 0, -1)
    assert store.load().signing_kid == manifest.active.kid  # root's: allowed


def test_what_root_writes_into_another_users_keys_directory_stays_that_users(store):
    # The audit: root may run the scripts on the service user's directory, but the new key,
    # manifest and .lock it wrote were root's (mode 0600): the issuer could not read the new
    # key (its restart failed) and the service user's next rotation could not open the lock.
    store.generate()
    for path in (store.directory, *store.directory.iterdir()):
        os.chown(path, 4242, 4343)
    (store.directory / ".lock").unlink()
    step = store.rotate(POLICY, force=True)
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in store.directory.iterdir()}
    assert {f"{step.new_kid}.pem", MANIFEST, ".lock"} <= owners.keys()
    assert set(owners.values()) == {(4242, 4343)}


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symbolic", "hard"])
def test_root_gives_the_directorys_owner_no_file_its_lock_links_to(store, tmp_path, link):
    # The review: root gave `.lock` to the directory's owner, following a link the owner put
    # there: `.lock` naming /etc/shadow handed it to the issuer's user.
    store.generate()
    for path in (store.directory, *store.directory.iterdir()):
        os.chown(path, 4242, 4343)
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root's")
    (store.directory / ".lock").unlink()
    link(victim, store.directory / ".lock")
    before = directory_contents(store)
    with pytest.raises(KeySetError, match=r"\.lock is "):
        store.rotate(POLICY, force=True)
    assert (victim.stat().st_uid, victim.stat().st_gid) == (0, 0)
    assert directory_contents(store) == before


def test_no_key_set_is_generated_into_a_directory_every_user_may_write(store):
    store.directory.mkdir(mode=0o700)
    store.directory.chmod(0o777)
    with pytest.raises(KeySetError, match="every user may write"):
        store.generate()
    assert list(store.directory.iterdir()) == []


def test_a_key_file_holding_another_key_than_its_kid_is_refused(store):
    # The audit: the active key's file holding the next key (restored under the wrong name)
    # loaded; the JWKS published one key under two kids, neither of them its thumbprint for
    # one, and revoking the next key left it published, and signing, as the active one.
    manifest = store.generate()
    active, upcoming = manifest.active.kid, manifest.next.kid
    shutil.copyfile(store.directory / f"{upcoming}.pem", store.directory / f"{active}.pem")
    with pytest.raises(KeySetError, match=f"{active} is another key.*thumbprint {upcoming}"):
        store.load()
    before = directory_contents(store)
    with pytest.raises(KeySetError, match="was not changed"):
        store.revoke(upcoming)
    assert directory_contents(store) == before
    store.revoke(active)  # the repair: the next key, in its own file, takes over
    assert store.load().signing_kid == upcoming


def test_a_change_holds_the_lock_that_serializes_writers(store, monkeypatch):
    # Two scripts rotating at once would each read the same set and commit their own step.
    store.generate()
    lock = store.directory / ".lock"
    # No other user may open it: any open file can be flocked, and held against the issuer.
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    commit, held = store._commit, []

    def probing_commit(manifest: KeyManifest, new_pems: dict[str, bytes]) -> None:
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(True)
        else:
            held.append(False)
        finally:
            os.close(fd)
        commit(manifest, new_pems)

    monkeypatch.setattr(store, "_commit", probing_commit)
    store.rotate(POLICY, force=True)
    assert held == [True]


def test_a_lock_that_cannot_be_opened_is_reported_as_what_it_is(store):
    store.generate()
    (store.directory / ".lock").unlink()
    (store.directory / ".lock").mkdir()
    with pytest.raises(IsADirectoryError):  # not "a symbolic link"
        store.rotate(POLICY, force=True)


def test_generate_makes_the_keys_directory_and_its_missing_parents(tmp_path, new_key):
    store = FileKeyStore(tmp_path / "srv" / "issuer" / "keys", new_key=new_key)
    manifest = store.generate()
    assert manifest is not None
    assert store.load().signing_kid == manifest.active.kid


def test_generate_makes_the_directory_a_symbolic_link_names(tmp_path, new_key):
    # The scripts audit: ISSUER_KEYS_DIR a link to a directory not made yet (a volume's path)
    # gave "error: [Errno 17] File exists", while rotate_keys.py said to run generate_keys.py.
    (tmp_path / "keys").symlink_to(tmp_path / "volume" / "keys")
    store = FileKeyStore(tmp_path / "keys", new_key=new_key)
    manifest = store.generate()
    assert manifest is not None
    assert (tmp_path / "volume" / "keys" / MANIFEST).is_file()
    assert stat.S_IMODE((tmp_path / "volume" / "keys").stat().st_mode) == 0o700
    assert store.load().signing_kid == manifest.active.kid


def test_a_refused_change_names_the_keys_directory(store):
    manifest = store.generate()
    (store.directory / f"{manifest.next.kid}.pem").unlink()
    where = re.escape(str(store.directory))
    with pytest.raises(KeySetError, match=f"the key set in {where} was not changed"):
        store.rotate(POLICY, force=True)


def test_a_keys_directory_of_the_issuers_own_user_is_used(store, monkeypatch):
    manifest = store.generate()
    os.chown(store.directory, 4242, -1)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    assert store.load().signing_kid == manifest.active.kid


def test_the_manifest_may_be_read_by_all_and_written_by_its_owner_alone(store):
    store.generate()
    store.rotate(POLICY, force=True)
    assert stat.S_IMODE(store.manifest_path.stat().st_mode) == 0o644


def test_a_key_file_that_cannot_be_read_is_not_taken_for_a_lost_one(store):
    manifest = store.generate()
    pem = store.directory / f"{manifest.next.kid}.pem"
    pem.unlink()
    pem.mkdir()
    with pytest.raises(KeySetError, match=f"cannot read key {manifest.next.kid}"):
        store.load()
