"""Unix times in 64 bits on PostgreSQL: its INTEGER ends in January 2038, and a refresh token
or session whose end passes it could not be stored. SQLite's INTEGER is 64-bit already.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIMES = {
    "refresh_token_families": ("created_at", "updated_at", "revoked_at"),
    "refresh_tokens": (
        "access_expires_at",
        "created_at",
        "idle_expires_at",
        "family_expires_at",
        "used_at",
        "revoked_at",
    ),
    "revoked_access_tokens": ("expires_at",),
    "authorization_codes": (
        "auth_time",
        "created_at",
        "expires_at",
        "used_at",
        "access_expires_at",
    ),
    "browser_sessions": ("auth_time", "created_at", "expires_at"),
    "consents": ("granted_at",),
    "signing_keys": ("created_at", "activated_at", "retiring_at", "retired_at"),
}


def upgrade() -> None:
    _retype(sa.BigInteger())


def downgrade() -> None:
    _retype(sa.Integer())


def _retype(wanted: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    name = wanted.compile(dialect=op.get_bind().dialect)
    for table, columns in TIMES.items():
        # One statement a table: PostgreSQL rewrites a table once per ALTER TABLE.
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {name}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
