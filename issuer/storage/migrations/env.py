"""Alembic environment: the issuer's tables, on the connection `issuer.storage.schema` hands in."""

from alembic import context

from issuer.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `python scripts/migrate.py` or `make migrate`")

# Batch mode lets the same migrations alter tables on SQLite.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
