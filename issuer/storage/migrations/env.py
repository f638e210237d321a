"""Alembic environment: the issuer's tables, on the connection `issuer.storage.schema` hands in.

The migrations spell out their tables, so upgrading needs no models and storage imports none.
A caller that wants Alembic to compare against the models (autogenerate) hands in
`issuer.models.Base.metadata` as the `target_metadata` attribute, beside the connection.
"""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `python scripts/migrate.py` or `make migrate`")

# Batch mode lets the same migrations alter tables on SQLite.
context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
