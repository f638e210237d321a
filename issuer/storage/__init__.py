"""Storage: the database engine and declarative base, the schema's migrations, Redis, and the
lookup key a handed-out secret (refresh token, code, session id) is stored as.

Storage knows no tables: each model module imports `Base` from `issuer.storage.engine`, the
migrations spell out their own tables, and `issuer.models` (the composition root) imports every
model for the test that compares them with the migrated schema.
"""
