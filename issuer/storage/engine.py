"""Database engine and the declarative base shared by every table."""

import contextlib
import logging
import math
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base of the issuer's tables."""


# A Unix time in seconds: 64-bit on PostgreSQL, whose INTEGER ends in January 2038 (a 30-day
# refresh token issued from December 2037 would not fit); SQLite's INTEGER is 64-bit already.
UnixTime = BigInteger().with_variant(Integer(), "sqlite")
# A surrogate id drawn for every row of a table that grows with use: 64-bit on PostgreSQL,
# whose SERIAL sequence stops at 2^31 - 1 and never gives back the ids of deleted rows; on
# SQLite INTEGER (the 64-bit rowid: a BIGINT primary key would not be one).
RowId = BigInteger().with_variant(Integer(), "sqlite")


class DatabaseFileError(OSError):
    """The SQLite database file cannot be created; the message names it and why."""


def too_long(row: Base) -> list[str]:
    """The columns of `row` holding text longer than their declared length: PostgreSQL
    refuses such a row and SQLite would store it, so it is refused before either sees it."""
    return [
        column.name
        for column in row.__table__.columns
        if isinstance(length := getattr(column.type, "length", None), int)
        and isinstance(value := getattr(row, column.key), str)
        and len(value) > length
    ]


def make_engine(url: str, timeout: float | None = None, *, bound_statements: bool = True) -> Engine:
    """An engine for `url`; SQLite gets settings that make it safe under concurrent use.

    `timeout` (seconds) bounds every wait on a PostgreSQL server, for a service that must
    answer 503 rather than hang: connecting, a statement, a lock, an unanswered packet, and a
    free pooled connection. The statement that times out is cancelled by the server and its
    transaction rolled back, so nothing is half done. Scripts and migrations pass none.
    Without `bound_statements`, statements and lock waits take as long as they take (the
    issuer waiting at start for another process creating the schema); the rest is bounded.
    Statement parameters are never put in error messages (they hold hashes and token ids).
    A SQLite file that cannot be created is a `DatabaseFileError` naming it and why.
    """
    if not url.startswith("sqlite"):
        if timeout is None:
            return create_engine(url, pool_pre_ping=True, hide_parameters=True)
        return create_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            pool_timeout=timeout,
            connect_args=_postgres_timeouts(url, timeout, bound_statements),
        )
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT},
        hide_parameters=True,
    )
    _create_private(engine.url.database)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, opens transactions (see _begin below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers (logins) run while a script writes a user.
        _enter_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # An explicit BEGIN makes DDL transactional (a migration applies whole or not at all).
        # Write transactions here start with their write, so a concurrent commit can never
        # leave them on a stale snapshot (SQLITE_BUSY_SNAPSHOT); writers queue on the lock.
        # One that must read before it writes takes the write lock at BEGIN (see exclusive).
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_IMMEDIATE = "issuer_begin_immediate"
# How long a statement waits for another connection's lock on a SQLite database, seconds.
_SQLITE_BUSY_TIMEOUT = 30


def _enter_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, waiting as any statement waits for a lock. Turning a new
    database to WAL needs it alone, and SQLite answers "database is locked" at once, past its
    busy timeout, while another connection writes or turns it (processes starting together
    on a fresh database: one of them failed)."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def exclusive(engine: Engine, lock_id: int) -> Iterator[Connection]:
    """A transaction that no other `exclusive(..., lock_id)` on the database runs beside, in
    any process, and whose reads see everything the one before it committed.

    PostgreSQL: a transaction-level advisory lock on `lock_id`, released at commit or
    rollback (each statement after it reads afresh under READ COMMITTED). SQLite: the
    database's write lock, taken at BEGIN (BEGIN IMMEDIATE) before the first read; every
    other writer waits for it too.
    """
    with engine.connect() as connection:
        connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            yield connection


def _postgres_timeouts(url: str, timeout: float, bound_statements: bool) -> dict[str, Any]:
    milliseconds = max(1, round(timeout * 1000))
    # Server options given in the URL (a search_path) are kept: these are added to them.
    given = make_url(url).query.get("options", "")
    options = []
    if bound_statements:
        options = [f"-c statement_timeout={milliseconds}", f"-c lock_timeout={milliseconds}"]
    if isinstance(given, str) and given:
        options.append(given)  # after ours: an operator's own timeouts there win
    return {
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq's unit and minimum
        "options": " ".join(options),
        # A server gone without a word (no RST): sent data unacknowledged, or a silent idle
        # connection, ends the connection instead of waiting on it for ever.
        "tcp_user_timeout": milliseconds,
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }


def _create_private(path: str | None) -> None:
    """Create a SQLite database file readable by its owner only (it holds password hashes).

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    if os.path.isdir(path):  # SQLite would say "unable to open database file", naming none
        raise DatabaseFileError(f"cannot use the database {path}: it is a directory")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as exc:
            target = os.path.realpath(path)
            if isinstance(exc, FileNotFoundError) and target != path:
                # A symbolic link to a file not there yet (O_EXCL does not follow it): the
                # file it names is created, private, as SQLite would create it.
                _create_private(target)
                return
            raise DatabaseFileError(
                f"cannot use the database {path}: {exc.strerror or exc}"
            ) from None
        # Not changed behind the operator's back (a group may be meant to read it), but
        # one made before files were created private is worth a word.
        if mode & 0o077:
            log.warning(
                "the database %s is readable by others (mode %o) and holds password "
                "hashes; make it private: chmod 600 %s",
                path,
                mode,
                path,
            )
    except OSError as exc:
        # A missing or unwritable directory: SQLite would fail too, naming neither.
        raise DatabaseFileError(
            f"cannot create the database {path}: {exc.strerror or exc}"
        ) from None


_CONFIRMATIONS, _CONFIRMATION_GAP = 4, 0.3


def commit_confirmed(session: Session, committed: Callable[[], bool]) -> None:
    """Commit; when the connection drops on the way, the outcome is unknown (the server may
    have committed and its answer been lost): `committed` asks on a fresh connection, and
    only a transaction that did not happen is an error. Else a client would be told 503 for
    a refresh token that was spent, and its retry would count as reuse."""
    try:
        session.commit()
    except DBAPIError as exc:
        lost = isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
        if not lost:
            raise  # the server refused the transaction: it did not happen
        # The server may still be finishing the commit (an fsync, a synchronous replica):
        # asked a few times over a second before the answer is "it did not happen".
        for attempt in range(_CONFIRMATIONS):
            try:
                if committed():
                    break
            except SQLAlchemyError:
                pass
            if attempt + 1 < _CONFIRMATIONS:
                time.sleep(_CONFIRMATION_GAP)
        else:
            raise
        log.warning("a commit's answer was lost, but the transaction took place")


def insert_ignoring_conflicts(
    session: Session, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on either database: a row someone else just wrote is
    the same outcome as writing it."""
    insert = postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(model).values(rows).on_conflict_do_nothing())


def make_sessions(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(engine, expire_on_commit=False)
