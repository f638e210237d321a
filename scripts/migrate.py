"""Migrate the issuer's database (ISSUER_DATABASE_URL) to the schema this version needs."""

import argparse
import re
import sys

from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from issuer.admin import error_line, report, run
from issuer.settings import Settings
from issuer.storage import schema
from issuer.storage.engine import DatabaseFileError, make_engine
from issuer.storage.schema import DowngradeRefused, MigrationRefused, SchemaMismatch
from servicekit.configuration import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--revision", type=_revision, default="head", help="target revision (default: head)"
    )
    args = parser.parse_args(argv)
    settings = load_settings(Settings)
    try:
        engine = make_engine(settings.database_url)
        before = schema.upgrade(engine, args.revision)  # as found under the schema lock
    except DowngradeRefused as exc:
        print(f"error: {exc}; migrate.py does not downgrade", file=sys.stderr)
        return 2
    except CommandError as exc:  # a --revision these migrations cannot reach
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2
    except (DatabaseFileError, SchemaMismatch) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    except (MigrationRefused, SQLAlchemyError) as exc:
        print(f"error: nothing was migrated: {error_line(exc)}", file=sys.stderr)
        return 1
    try:
        after = schema.current(engine)
    except SQLAlchemyError as exc:  # the migration itself was committed
        print(
            f"error: migrated, but the revision could not be read back: {error_line(exc)}",
            file=sys.stderr,
        )
        return 1
    if before == after:
        report([f"database schema: already at {_name(after)}; nothing to do"])
    else:
        report([f"database schema: {_name(before)} -> {_name(after)}"])
    return 0


def _name(revision: str | None) -> str:
    # Alembic's name for no revision at all, which is also what `--revision` takes.
    return revision or "base (empty)"


def _revision(value: str) -> str:
    # Alembic meets an empty revision with an AssertionError, not a message.
    if not value:
        raise argparse.ArgumentTypeError("a revision must not be empty")
    # Relative targets ("head-1", "0005+1") would name a revision only Alembic's walk knows,
    # past the check that refuses a downgrade: name the revision itself.
    if _RELATIVE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: name a revision (such as 0006) or head, not a step from one"
        )
    return value


_RELATIVE = re.compile(r".+[+-]\d+")


if __name__ == "__main__":
    run(main)
