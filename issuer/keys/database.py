"""The key set in the database (`ISSUER_KEYS_BACKEND=database`): replicas on different
machines share it without a shared disk.

Private keys are stored encrypted with `ISSUER_KEYS_PASSPHRASE` (required here). Writers take
a row lock on `key_set_meta` (a database lock, so it holds across machines) and bump its
`version` in the same transaction as the key rows; readers poll that version.
"""

import contextlib
import time
from collections.abc import Callable, Iterator

from sqlalchemy import Boolean, Engine, Integer, LargeBinary, String, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from issuer.keys.model import KeyManifest, KeyRecord, KeySetError, KeyState, KeyStoreUnavailable
from issuer.keys.store import KeyFactory, KeySetStore, Snapshot, Version
from issuer.storage.engine import Base, UnixTime, make_sessions


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(UnixTime)
    activated_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    retiring_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    retired_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Encrypted PKCS#8; NULL once the key is retired.
    private_pem: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    def record(self) -> KeyRecord:
        try:
            state = KeyState(self.state)
        except ValueError:  # written by hand: a broken key set, as a manifest's would be
            raise KeySetError(f"invalid key set: state of {self.kid} is {self.state!r}") from None
        return KeyRecord(
            kid=self.kid,
            state=state,
            created_at=self.created_at,
            activated_at=self.activated_at,
            retiring_at=self.retiring_at,
            retired_at=self.retired_at,
            revoked=self.revoked,
        )


class KeySetMeta(Base):
    __tablename__ = "key_set_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class DatabaseKeyStore(KeySetStore):
    """The key set in the issuer's database."""

    def __init__(
        self,
        engine: Engine,
        passphrase: str | None,
        clock: Callable[[], float] = time.time,
        new_key: KeyFactory | None = None,
    ):
        if not passphrase:
            raise KeySetError("the database key store needs ISSUER_KEYS_PASSPHRASE to be set")
        super().__init__(passphrase, clock, new_key)
        self._sessions = make_sessions(engine)
        self._session: Session | None = None  # the writer's, while it holds the lock

    def describe(self) -> str:
        return "the database"

    def version(self) -> Version | None:
        with self._reading() as session:
            value = session.scalar(select(KeySetMeta.version).where(KeySetMeta.id == 1))
        return (value,) if value else None

    def exists(self) -> bool:
        # Rows, not only a version: with the rows deleted (an operator starting over), the
        # version stays, and generate_keys.py refused, saying to run generate_keys.py.
        if self.version() is None:
            return False
        with self._reading() as session:
            return session.scalar(select(SigningKeyRow.kid).limit(1)) is not None

    @contextlib.contextmanager
    def _exclusive(self, create: bool = False) -> Iterator[None]:
        with self._sessions() as session:
            # The row lock (SQLite: the database write lock) serializes writers on all machines.
            session.execute(
                update(KeySetMeta).where(KeySetMeta.id == 1).values(version=KeySetMeta.version)
            )
            self._session = session
            try:
                yield
            finally:
                self._session = None

    def _read(self, with_pems: bool) -> Snapshot:
        with self._reading() as session:
            # Version first: a change committed between the two reads then shows up as a newer
            # version at the next poll, never as an old version with new rows.
            version = session.scalar(select(KeySetMeta.version).where(KeySetMeta.id == 1))
            # kid too: generate() makes two keys in one second, and an order the database may
            # choose either way gave one set two JWKS bodies (and ETags) across replicas.
            rows = list(
                session.scalars(
                    select(SigningKeyRow).order_by(SigningKeyRow.created_at, SigningKeyRow.kid)
                )
            )
        if not rows or not version:
            raise KeySetError(
                "no key set in the database; create one with scripts/generate_keys.py"
            )
        manifest = KeyManifest(tuple(row.record() for row in rows))
        pems = {row.kid: row.private_pem for row in rows if with_pems and row.private_pem}
        return Snapshot(manifest, (version,), pems)

    def _commit(self, manifest: KeyManifest, new_pems: dict[str, bytes]) -> None:
        session = self._session
        assert session is not None, "_commit runs inside _exclusive"
        rows = {row.kid: row for row in session.scalars(select(SigningKeyRow))}
        for record in manifest.keys:
            row = rows.get(record.kid)
            if row is None:
                row = SigningKeyRow(kid=record.kid, private_pem=new_pems[record.kid])
                session.add(row)
            elif record.kid in new_pems:
                row.private_pem = new_pems[record.kid]  # re-encrypted
            row.state = record.state.value
            row.created_at = record.created_at
            row.activated_at = record.activated_at
            row.retiring_at = record.retiring_at
            row.retired_at = record.retired_at
            row.revoked = record.revoked
            if not record.published:
                row.private_pem = None  # retired: the private part is deleted
        session.execute(
            update(KeySetMeta).where(KeySetMeta.id == 1).values(version=KeySetMeta.version + 1)
        )
        session.commit()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        if self._session is not None:
            yield self._session
            return
        try:
            with self._sessions() as session:
                yield session
        except SQLAlchemyError as exc:
            raise KeyStoreUnavailable(f"cannot read the key set from the database: {exc}") from exc
