"""Key files: creation, atomic writes, rotation, loading and change detection."""

import os
import stat
from pathlib import Path

import pytest

from issuer.keys import KeyManifest, KeySetError, KeyState
from issuer.keystore import KeyRing, KeyStore, write_atomic
from tests.support import FakeClock


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> KeyStore:
    return KeyStore(tmp_path / "keys", clock=clock)


def test_generate_creates_one_active_key_with_private_files_0600(store):
    manifest = store.generate()
    assert manifest is not None
    assert manifest.active.state is KeyState.ACTIVE
    pem = store.directory / f"{manifest.active.kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in pem.read_bytes()


def test_generate_with_a_key_set_present_changes_nothing(store):
    first = store.generate()
    before = sorted(p.name for p in store.directory.iterdir())
    assert store.generate() is None
    assert sorted(p.name for p in store.directory.iterdir()) == before
    assert store.read_manifest() == first


def test_rotate_signs_with_a_new_key_and_keeps_the_old_one_published(store, clock):
    first = store.generate()
    clock.advance(100)
    rotated = store.rotate()
    assert rotated.active.kid != first.active.kid
    old = next(k for k in rotated.keys if k.kid == first.active.kid)
    assert old.state is KeyState.RETIRING
    assert old.retiring_at == int(clock())
    loaded = store.load()
    assert loaded.signing_kid == rotated.active.kid
    assert {first.active.kid, rotated.active.kid} <= set(loaded.jwks.body.decode().split('"'))


def test_rotate_without_a_key_set_says_how_to_create_one(store):
    with pytest.raises(KeySetError, match=r"generate_keys\.py"):
        store.rotate()


@pytest.mark.parametrize("size", [1024, 2047, 8192])
def test_unsupported_key_sizes_are_refused(store, size):
    with pytest.raises(KeySetError, match="key size"):
        store.generate(size)
    assert not store.exists()


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


def test_manifest_with_a_path_like_kid_is_refused(store):
    store.generate()
    data = store.manifest_path.read_bytes().replace(
        store.read_manifest().active.kid.encode(), b"../../etc/passwd"
    )
    store.manifest_path.write_bytes(data)
    with pytest.raises(KeySetError, match="invalid kid"):
        store.load()


def test_manifest_needs_exactly_one_active_key():
    with pytest.raises(KeySetError, match="exactly one active"):
        KeyManifest(())


def test_keyring_reloads_only_after_a_change(store):
    store.generate()
    ring = KeyRing(store)
    first = ring.current
    assert not ring.reload_if_changed()
    assert ring.current is first
    store.rotate()
    assert ring.reload_if_changed()
    assert ring.current.signing_kid != first.signing_kid


def test_keyring_keeps_the_old_set_when_the_new_one_is_broken(store):
    store.generate()
    ring = KeyRing(store)
    first = ring.current
    store.manifest_path.write_bytes(b"{not json")
    assert not ring.reload_if_changed()
    assert ring.current is first
