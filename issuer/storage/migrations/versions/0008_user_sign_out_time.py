"""Users carry when they were last signed out everywhere (disabled, or given a new password),
so access tokens issued before it stop introspecting active and opening /userinfo, and
enabling the account again brings none of them back. Accounts signed out before this
revision have no such time: their tokens expire within the access-token lifetime anyway.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UNIX_TIME = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("users", sa.Column("signed_out_at", UNIX_TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("signed_out_at")
