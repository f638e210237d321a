"""Refresh-token families (the lock rotation and revocation share), clients' resource
audiences (who may introspect), and case-folded usernames.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from issuer.storage.schema import MigrationRefused

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_token_families",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
    )
    op.create_index("ix_refresh_token_families_user_id", "refresh_token_families", ["user_id"])
    # Every family that has tokens gets its row; revocation is family-wide, so any revoked
    # token marks the family revoked.
    op.execute(
        "INSERT INTO refresh_token_families (family_id, client_id, user_id, created_at, revoked_at)"
        " SELECT family_id, MIN(client_id), MIN(user_id), MIN(created_at), MAX(revoked_at)"
        " FROM refresh_tokens GROUP BY family_id"
    )
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("resource_audiences", sa.String(2000), nullable=False, server_default="")
        )
    # Usernames are case-folded (RFC 8265 UsernameCaseMapped; they are ASCII here). Two
    # accounts differing only in case must be merged by hand first: refuse, changing nothing.
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT lower(username) FROM users GROUP BY lower(username) HAVING COUNT(*) > 1"
            )
        )
        .scalars()
        .all()
    )
    if clashes:
        raise MigrationRefused(
            "usernames that differ only in case must be merged or renamed before this "
            f"migration: {', '.join(sorted(clashes))}"
        )
    op.execute("UPDATE users SET username = lower(username)")


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("resource_audiences")
    op.drop_table("refresh_token_families")
