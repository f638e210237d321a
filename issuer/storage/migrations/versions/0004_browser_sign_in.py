"""Browser and native apps: authorization codes, browser sessions, consents, and the clients'
redirect URIs.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("redirect_uris", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("post_logout_redirect_uris", sa.Text(), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("require_consent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(512), nullable=True),
        sa.Column("scope", sa.String(2000), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.Integer(), nullable=True),
        sa.Column("access_jti", sa.String(64), nullable=True),
        sa.Column("access_expires_at", sa.Integer(), nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    op.create_table(
        "browser_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
    )
    op.create_index("ix_browser_sessions_user_id", "browser_sessions", ["user_id"])
    op.create_index("ix_browser_sessions_expires_at", "browser_sessions", ["expires_at"])
    op.create_table(
        "consents",
        sa.Column("user_id", sa.Integer(), primary_key=True),
        sa.Column("client_id", sa.String(100), primary_key=True),
        sa.Column("scope", sa.String(2000), primary_key=True),
        sa.Column("granted_at", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("consents")
    op.drop_table("browser_sessions")
    op.drop_table("authorization_codes")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("require_consent")
        batch.drop_column("post_logout_redirect_uris")
        batch.drop_column("redirect_uris")
