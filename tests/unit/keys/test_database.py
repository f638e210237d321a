"""The database key store, on SQLite and PostgreSQL: same lifecycle, a database lock."""

import threading

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import make_transient

from issuer.keys.database import DatabaseKeyStore, KeySetMeta, SigningKeyRow
from issuer.keys.model import (
    KeySetError,
    KeyState,
    KeyStoreUnavailable,
    RotationPolicy,
    UnsafeRotation,
)
from issuer.keys.ring import KeyRing
from issuer.storage import schema
from issuer.storage.engine import make_engine, make_sessions

POLICY = RotationPolicy(access_token_ttl=900, jwks_max_age=600, leeway=120)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine, clock, new_key):
    return DatabaseKeyStore(engine, PASSPHRASE, clock=clock, new_key=new_key)


def rows(engine) -> dict[str, SigningKeyRow]:
    with make_sessions(engine)() as session:
        return {row.kid: row for row in session.scalars(select(SigningKeyRow))}


def test_generate_after_the_key_rows_were_deleted_makes_a_new_set(store, engine):
    # The scripts audit: with the rows deleted and the version row left, generate_keys.py
    # refused with "no key set in the database; create one with scripts/generate_keys.py".
    store.generate()
    with make_sessions(engine)() as session:
        session.execute(delete(SigningKeyRow))
        session.commit()
    assert not store.exists()
    manifest = store.generate()
    assert manifest is not None
    assert store.load().signing_kid == manifest.active.kid


def test_the_database_store_requires_a_passphrase(engine):
    with pytest.raises(KeySetError, match="ISSUER_KEYS_PASSPHRASE"):
        DatabaseKeyStore(engine, None)


def test_generate_stores_encrypted_keys_and_is_idempotent(store, engine):
    assert not store.exists()
    manifest = store.generate()
    assert manifest is not None
    stored = rows(engine)
    assert set(stored) == {manifest.active.kid, manifest.next.kid}
    assert all(
        row.private_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY") for row in stored.values()
    )
    assert store.generate() is None
    assert store.load().signing_kid == manifest.active.kid


def test_lifecycle_matches_the_file_store(store, engine, clock):
    first = store.generate()
    with pytest.raises(UnsafeRotation):
        store.rotate(POLICY)
    clock.advance(POLICY.publish_lead)
    second = store.rotate(POLICY)
    clock.advance(POLICY.retire_after)
    store.rotate(POLICY)
    stored = rows(engine)
    assert stored[first.active.kid].state == KeyState.RETIRED
    assert stored[first.active.kid].private_pem is None  # the private part is deleted
    loaded = store.load()
    # The key pre-published by the first rotation signs now; the initial next key retires.
    assert loaded.signing_kid == second.new_kid
    assert stored[first.next.kid].state == KeyState.RETIRING
    assert first.active.kid.encode() not in loaded.jwks.body


def test_every_field_of_a_change_is_stored_as_the_step_made_it(store, clock):
    # The times and the revoked flag decide when a key retires and the JWKS max-age after a
    # revocation: a row that lost one would read back as another key set.
    first = store.generate()
    clock.advance(POLICY.publish_lead)
    store.rotate(POLICY)
    clock.advance(60)
    step = store.revoke(first.active.kid)  # retiring: revoked and retired at once
    stored = store.read_manifest()
    assert stored == step.manifest
    revoked = stored.get(first.active.kid)
    assert revoked.revoked and revoked.retired_at == revoked.retiring_at + 60
    assert stored.active.activated_at == revoked.retiring_at


def test_encrypt_rewrites_unencrypted_rows_with_the_passphrase(store, engine):
    manifest = store.generate()
    store_unencrypted(engine)
    before = store.read_manifest()
    assert sorted(store.encrypt()) == sorted((manifest.active.kid, manifest.next.kid))
    assert all(
        row.private_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
        for row in rows(engine).values()
    )
    assert store.read_manifest() == before
    assert store.load().signing_kid == manifest.active.kid
    assert store.encrypt() == []


def test_revoke_removes_the_key_at_once(store, engine):
    first = store.generate()
    store.revoke(first.active.kid)
    assert rows(engine)[first.active.kid].private_pem is None
    assert store.load().signing_kid == first.next.kid


def test_wrong_passphrase_cannot_load(store, engine):
    store.generate()
    with pytest.raises(KeySetError, match="wrong ISSUER_KEYS_PASSPHRASE"):
        DatabaseKeyStore(engine, "not the passphrase").load()


def test_generate_on_a_set_with_a_private_key_lost_names_it_and_changes_nothing(store, engine):
    # As with key files: "a key set already exists" (exit 0) for a set the issuer cannot load.
    manifest = store.generate()
    with make_sessions(engine)() as session:
        session.get(SigningKeyRow, manifest.next.kid).private_pem = None
        session.commit()
    before = contents(engine)
    with pytest.raises(KeySetError, match=f"{manifest.next.kid} is missing.*was not changed"):
        store.generate()
    with pytest.raises(KeySetError, match=f"{manifest.next.kid} is missing"):
        store.verify()
    assert contents(engine) == before


def test_keyring_sees_a_change_made_through_another_store(store, engine, new_key):
    store.generate()
    ring = KeyRing(DatabaseKeyStore(engine, PASSPHRASE))
    assert not ring.reload_if_changed()
    other_engine = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        other = DatabaseKeyStore(other_engine, PASSPHRASE, new_key=new_key)
        other.rotate(POLICY, force=True)
        assert ring.reload_if_changed()
        assert ring.current.signing_kid == other.read_manifest().active.kid
    finally:
        other_engine.dispose()


def test_a_database_blip_while_loading_a_change_is_retried_not_given_up_on(
    store, engine, new_key, monkeypatch
):
    # The audit: one dropped connection while a replica loaded a revocation marked that
    # version broken, and the replica signed with the revoked key until the next change.
    store.generate()
    ring = KeyRing(DatabaseKeyStore(engine, PASSPHRASE))
    revoked = store.read_manifest().active.kid
    store.revoke(revoked)
    real_read, calls = ring.store._read, []

    def dropped_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            with ring.store._reading():
                raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return real_read(*args, **kwargs)

    monkeypatch.setattr(ring.store, "_read", dropped_once)
    with pytest.raises(KeyStoreUnavailable):
        ring.reload_if_changed()
    assert ring.current.signing_kid == revoked  # still the old set, for now
    assert ring.reload_if_changed()  # the next check reads the change
    assert revoked not in ring.current.public_keys


def test_concurrent_rotations_are_serialized_by_the_database_lock(store, engine, new_key):
    store.generate()
    url = engine.url.render_as_string(hide_password=False)
    errors: list[BaseException] = []

    def rotate() -> None:
        own_engine = make_engine(url)
        try:
            DatabaseKeyStore(own_engine, PASSPHRASE, new_key=new_key).rotate(POLICY, force=True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    manifest = store.read_manifest()
    states = [k.state for k in manifest.keys]
    assert states.count(KeyState.ACTIVE) == 1 and states.count(KeyState.NEXT) == 1
    assert len(manifest.keys) == 2 + 4
    assert store.load().signing_kid == manifest.active.kid


def contents(engine) -> tuple[list[tuple[object, ...]], int | None]:
    """Every stored field of every key row, and the version: what "nothing changed" means."""
    with make_sessions(engine)() as session:
        keys = [
            (r.kid, r.state, r.created_at, r.activated_at, r.retiring_at, r.revoked, r.private_pem)
            for r in session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.kid))
        ]
        return keys, session.scalar(select(KeySetMeta.version))


def store_unencrypted(engine) -> None:
    """As a set written before the passphrase was required (or by hand) would be stored."""
    with make_sessions(engine)() as session:
        for row in session.scalars(select(SigningKeyRow)):
            key = RSAKey.import_key(row.private_pem, password=PASSPHRASE)
            row.private_pem = key.as_pem(private=True)
        session.commit()


CHANGES = {
    "rotate": lambda store, manifest: store.rotate(POLICY, force=True),
    "revoke": lambda store, manifest: store.revoke(manifest.active.kid),
    "generate": lambda store, manifest: store.generate(),
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize(
    "mismatch", ["no passphrase", "wrong passphrase", "passphrase for an unencrypted set"]
)
def test_a_passphrase_that_does_not_open_the_set_changes_nothing(
    store, engine, new_key, mismatch, change
):
    # The audit: `ISSUER_KEYS_PASSPHRASE=wrong rotate_keys.py --force` succeeded, adding a key
    # encrypted with "wrong" beside keys encrypted with the real passphrase.
    manifest = store.generate()
    if mismatch == "passphrase for an unencrypted set":
        store_unencrypted(engine)
    given = {"no passphrase": None, "wrong passphrase": "not the passphrase"}.get(
        mismatch, PASSPHRASE
    )
    before = contents(engine)
    with pytest.raises(KeySetError, match="ISSUER_KEYS_PASSPHRASE"):
        # Without a passphrase the store refuses to open at all.
        CHANGES[change](DatabaseKeyStore(engine, given, new_key=new_key), manifest)
    assert contents(engine) == before


def test_a_row_with_an_unknown_state_is_a_broken_key_set(store, engine):
    # The audit: a row whose state is no state of ours (written by hand: "Active") raised a
    # ValueError, not a broken key set: the scripts printed a traceback, and a replica's
    # watcher logged it with a traceback and read the set again at every poll.
    manifest = store.generate()
    ring = KeyRing(store)
    first = ring.current
    with make_sessions(engine)() as session:
        session.execute(
            update(SigningKeyRow).where(SigningKeyRow.kid == manifest.next.kid).values(state="Next")
        )
        session.execute(update(KeySetMeta).values(version=KeySetMeta.version + 1))
        session.commit()
    assert not ring.reload_if_changed()
    assert ring.current is first
    with pytest.raises(KeySetError, match=f"state of {manifest.next.kid}.*'Next'"):
        store.read_manifest()


def test_keys_made_at_the_same_time_are_read_in_one_order(store, engine):
    # generate() gives its two keys the same created_at: ordered by it alone, the database may
    # return them either way, and replicas serve one set under two ETags.
    store.generate()
    with make_sessions(engine)() as session:
        stored = list(session.scalars(select(SigningKeyRow)))
        assert len({row.created_at for row in stored}) == 1
        session.expunge_all()
        session.execute(delete(SigningKeyRow))
        for row in sorted(stored, key=lambda row: row.kid, reverse=True):  # against kid order
            make_transient(row)
            session.add(row)
            session.flush()
        session.commit()
    assert [key.kid for key in store.read_manifest().keys] == sorted(row.kid for row in stored)
