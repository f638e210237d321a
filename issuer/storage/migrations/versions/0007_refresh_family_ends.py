"""Refresh-token families carry when they end, so the ended ones can be deleted: rows of
every login and every rotation were kept for ever.

A family ends when none of its tokens can be used again and no access token issued with
them still lives (until then a replayed token still revokes those access tokens). Families
already in the database get that time from their tokens.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UNIX_TIME = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("refresh_token_families", sa.Column("ends_at", UNIX_TIME, nullable=True))
    op.create_index("ix_refresh_token_families_ends_at", "refresh_token_families", ["ends_at"])
    op.execute(
        """
        UPDATE refresh_token_families SET ends_at = (
            SELECT MAX(CASE WHEN t.idle_expires_at > t.access_expires_at
                            THEN t.idle_expires_at ELSE t.access_expires_at END)
            FROM refresh_tokens t WHERE t.family_id = refresh_token_families.family_id
        )
        """
    )
    # A family without tokens (none is ever made so) has nothing left to guard.
    op.execute("UPDATE refresh_token_families SET ends_at = created_at WHERE ends_at IS NULL")


def downgrade() -> None:
    op.drop_index("ix_refresh_token_families_ends_at", "refresh_token_families")
    with op.batch_alter_table("refresh_token_families") as batch:
        batch.drop_column("ends_at")
