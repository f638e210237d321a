"""Database engine and the declarative base shared by every table."""

import contextlib
import logging
import os
import stat
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base of the issuer's tables."""


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets settings that make it safe under concurrent use."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    _create_private(engine.url.database)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, opens transactions (see _begin below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers (logins) run while a script writes a user.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # An explicit BEGIN makes DDL transactional (a migration applies whole or not at all).
        # Write transactions here start with their write, so a concurrent commit can never
        # leave them on a stale snapshot (SQLITE_BUSY_SNAPSHOT); writers queue on the lock.
        connection.exec_driver_sql("BEGIN")

    return engine


def _create_private(path: str | None) -> None:
    """Create a SQLite database file readable by its owner only (it holds password hashes).

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileNotFoundError):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            # Not changed behind the operator's back (a group may be meant to read it), but
            # one made before files were created private is worth a word.
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                log.warning(
                    "the database %s is readable by others (mode %o) and holds password "
                    "hashes; make it private: chmod 600 %s",
                    path,
                    mode,
                    path,
                )


def insert_ignoring_conflicts(
    session: Session, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on either database: a row someone else just wrote is
    the same outcome as writing it."""
    insert = postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(model).values(rows).on_conflict_do_nothing())


def make_sessions(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(engine, expire_on_commit=False)
