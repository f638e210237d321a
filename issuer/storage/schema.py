"""The database schema's version: Alembic migrations, and the start-up check.

An empty database is migrated to the current schema at start-up (the embedded default needs
no extra command); a database at an older revision is refused with the command that migrates
it, so a new issuer never runs against tables it does not expect. A revision these migrations
do not know was written by a newer issuer: starting and migrating both refuse it.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

MIGRATE_COMMAND = "make migrate (or: python scripts/migrate.py)"


class SchemaMismatch(RuntimeError):
    """The database schema is not the one this issuer was built for."""


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
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` in one transaction (all or nothing); `SchemaMismatch`
    if a newer issuer has already migrated the database past what this one knows."""
    with engine.begin() as connection:
        _refuse_newer(MigrationContext.configure(connection).get_current_revision())
        command.upgrade(_config(connection), revision)


def _refuse_newer(revision: str | None) -> None:
    """`SchemaMismatch` if `revision` is none of this issuer's: a newer one wrote it."""
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if revision is not None and revision not in known:
        raise SchemaMismatch(
            f"the database schema is at revision {revision}, newer than this issuer "
            f"({head()}); upgrade the issuer"
        )


def prepare(engine: Engine) -> None:
    """Create the schema in an empty database; refuse an older or unknown one."""
    revision, wanted = current(engine), head()
    if revision == wanted:
        return
    if revision is None and not inspect(engine).get_table_names():
        upgrade(engine)
        return
    _refuse_newer(revision)
    raise SchemaMismatch(
        f"the database schema is at revision {revision or '(none)'}, this issuer needs "
        f"{wanted}; migrate it with: {MIGRATE_COMMAND}"
    )
