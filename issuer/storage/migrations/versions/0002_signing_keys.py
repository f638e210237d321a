"""The database key store: signing keys and the key-set version row that writers lock.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.Integer(), nullable=True),
        sa.Column("retiring_at", sa.Integer(), nullable=True),
        sa.Column("retired_at", sa.Integer(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("private_pem", sa.LargeBinary(), nullable=True),
    )
    meta = op.create_table(
        "key_set_meta",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.bulk_insert(meta, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("key_set_meta")
    op.drop_table("signing_keys")
