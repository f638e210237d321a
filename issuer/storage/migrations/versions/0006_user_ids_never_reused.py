"""User ids are never given again on SQLite: tokens, sessions, consents and codes name a user
by id, and without AUTOINCREMENT SQLite handed a deleted highest id to the next user, who then
inherited the deleted user's live tokens. PostgreSQL's sequence never gives an id twice: there
this migration does nothing.

SQLite cannot add AUTOINCREMENT in place, so the table is rebuilt; a batch rebuild does not
carry AUTOINCREMENT over, so a later migration that rebuilds `users` must pass
`table_kwargs={"sqlite_autoincrement": True}` again.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Every column naming a user: the sequence starts above them all, so a user deleted before
# this migration, whose tokens may still be presented, does not lend its id either.
USER_IDS = (
    ("users", "id"),
    ("refresh_token_families", "user_id"),
    ("refresh_tokens", "user_id"),
    ("authorization_codes", "user_id"),
    ("browser_sessions", "user_id"),
    ("consents", "user_id"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "users", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    highest = max(
        bind.scalar(sa.select(sa.func.max(sa.column(column))).select_from(sa.table(table))) or 0
        for table, column in USER_IDS
    )
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'users'")
    bind.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', :seq)"),
        {"seq": highest},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "users", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
