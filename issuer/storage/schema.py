"""The database schema's version: Alembic migrations, and the start-up check.

An empty database is migrated to the current schema at start-up (the embedded default needs
no extra command); a database at an older revision is refused with the command that migrates
it, so a new issuer never runs against tables it does not expect. A revision these migrations
do not know was written by a newer issuer: starting and migrating both refuse it.

Migrating, and deciding whether to, happen under one lock (`SCHEMA_LOCK`), so replicas and
scripts starting together on an empty database create the schema once, and all go on.
"""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect

from issuer.storage.engine import exclusive

MIGRATE_COMMAND = "make migrate (or: python scripts/migrate.py)"
# The PostgreSQL advisory lock every issuer and script holds while it changes the schema or
# decides not to (SQLite: its write lock). Any constant will do if it never changes.
SCHEMA_LOCK = 1_553_712_009


class SchemaMismatch(RuntimeError):
    """The database schema is not the one this issuer was built for."""


class MigrationRefused(RuntimeError):
    """A migration found data it cannot carry over unchanged (it says what to mend first); the
    transaction is rolled back, so the database stays at the revision it was at."""


class DowngradeRefused(ValueError):
    """A target revision older than the database's: these migrations only go up."""

    def __init__(self, current: str, target: str):
        super().__init__(f"the database is at revision {current}, past {target}")
        self.current = current
        self.target = target


class _DialectChatter(logging.Filter):
    """Alembic announces its dialect at every look at the version ("Context impl
    PostgresqlImpl.", "Will assume transactional DDL."): noise on every start and script run.
    The migrations it runs are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl ", "Will assume "))


# On the logger, not a handler, so that it holds whatever handles the lines.
logging.getLogger("alembic.runtime.migration").addFilter(_DialectChatter())


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to `revision` in one transaction (all or nothing); return the
    revision found before. `SchemaMismatch` if a newer issuer has already migrated the
    database past what this one knows; `DowngradeRefused` if `revision` is older than the
    database's (Alembic's upgrade would do nothing, silently). Two at once run one after the
    other (the schema lock), the second finding the work done."""
    with exclusive(engine, SCHEMA_LOCK) as connection:
        before = _revision(connection)
        _refuse_newer(before)
        _refuse_older(before, revision)
        command.upgrade(_config(connection), revision)
    return before


def _refuse_newer(revision: str | None) -> None:
    """`SchemaMismatch` if `revision` is none of this issuer's: a newer one wrote it."""
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if revision is not None and revision not in known:
        raise SchemaMismatch(
            f"the database schema is at revision {revision}, newer than this issuer "
            f"({head()}); upgrade the issuer"
        )


def _refuse_older(current: str | None, revision: str) -> None:
    if current is None:
        return
    script = ScriptDirectory.from_config(_config())
    try:
        targets = script.get_revisions(revision)
    except CommandError:
        return  # a revision Alembic cannot resolve: its upgrade says so
    older = {s.revision for s in script.iterate_revisions(current, "base")} - {current}
    if not targets or any(t is not None and t.revision in older for t in targets):  # () is base
        raise DowngradeRefused(current, revision)


def prepare(engine: Engine) -> None:
    """Create the schema in an empty database; refuse an older or unknown one."""
    revision, wanted = current(engine), head()
    if revision is None:
        revision = _create_if_empty(engine)
    if revision == wanted:
        return
    _refuse_newer(revision)
    raise SchemaMismatch(
        f"the database schema is at revision {revision or '(none)'}, this issuer needs "
        f"{wanted}; migrate it with: {MIGRATE_COMMAND}"
    )


def _create_if_empty(engine: Engine) -> str | None:
    """Migrate an empty database to the head, and return the revision the database is at.

    Replicas and scripts starting together all find it empty: the first to take the schema
    lock creates the schema, the others wait and then find it made (they looked at it before
    without the lock, so nobody migrates a database someone else is migrating)."""
    with exclusive(engine, SCHEMA_LOCK) as connection:
        revision = _revision(connection)
        if revision is None and not inspect(connection).get_table_names():
            command.upgrade(_config(connection), "head")
            return head()
        return revision
