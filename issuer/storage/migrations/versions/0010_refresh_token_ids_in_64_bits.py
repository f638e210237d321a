"""Refresh-token row ids in 64 bits on PostgreSQL: every login and every rotation draws one
from the table's sequence, which never gives back the ids of deleted rows, and its 32-bit
SERIAL stopped at 2^31 - 1 (about 25 days at 1,000 rotations a second); from then on every
login and every refresh failed. SQLite's rowid is 64-bit already: there this does nothing.

The column's new type rewrites `refresh_tokens` (the live families' tokens) once, under its
lock, within the migration's transaction. Replicas of the version before that still serve
meanwhile may answer one 500 on each pooled connection that had prepared a statement reading
the id (PostgreSQL: "cached plan must not change result type"); the next use prepares anew.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    _retype("INTEGER")


def _retype(name: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE refresh_tokens ALTER COLUMN id TYPE {name}")
    # The sequence has a type of its own, which bounds it: the column's alone is not enough.
    # Its name as PostgreSQL quotes it (schema-qualified).
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('refresh_tokens', 'id')"))
    op.execute(f"ALTER SEQUENCE {sequence} AS {name}")
