"""Authorization codes carry the browser session they were issued in, so signing out there
(/logout) drops the ones not yet exchanged. Codes stored before this revision have none and
end within their own lifetime (a minute at most).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("authorization_codes", sa.Column("session_hash", sa.String(64), nullable=True))
    op.create_index("ix_authorization_codes_session_hash", "authorization_codes", ["session_hash"])


def downgrade() -> None:
    op.drop_index("ix_authorization_codes_session_hash", table_name="authorization_codes")
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("session_hash")
