"""Database engine and the declarative base shared by every table."""

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker


class Base(DeclarativeBase):
    """Declarative base of the issuer's tables."""


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets settings that make it safe under concurrent use."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers (logins) run while a script writes a user.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def make_sessions(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create any missing table (the schema is created at start-up)."""
    # Importing the models registers their tables on Base.metadata.
    import issuer.clients
    import issuer.refresh_tokens
    import issuer.revocations
    import issuer.users  # noqa: F401

    Base.metadata.create_all(engine)
