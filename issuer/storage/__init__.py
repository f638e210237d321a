"""Storage: the database engine and declarative base, the schema's migrations, Redis, and the
lookup key a handed-out secret (refresh token, code, session id) is stored as.

Storage knows no tables: each model module imports `Base` from `issuer.storage.engine`, and
`issuer.models` imports them all for Alembic and the schema tests.
"""
