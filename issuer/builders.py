"""The pieces of the composition root that the scripts reuse: the database with its schema
prepared, the configured key store, and the policies derived from `Settings`.

Kept apart from `issuer.services` (which builds the running app) so that a script loads only
what it needs: no web framework, no verifier.
"""

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine

from issuer.keys.database import DatabaseKeyStore
from issuer.keys.files import FileKeyStore
from issuer.keys.model import RotationPolicy
from issuer.keys.store import KeySetStore
from issuer.limits.throttle import ThrottlePolicy
from issuer.settings import Settings
from issuer.storage.engine import make_engine
from issuer.storage.schema import prepare


def rotation_policy(settings: Settings) -> RotationPolicy:
    return RotationPolicy(
        access_token_ttl=settings.access_token_ttl,
        jwks_max_age=settings.jwks_max_age,
        leeway=settings.rotation_leeway,
    )


def throttle_policy(settings: Settings) -> ThrottlePolicy:
    return ThrottlePolicy(
        window=settings.rate_limit_window,
        per_ip=settings.rate_limit_per_ip,
        per_client=settings.rate_limit_per_client,
        per_username=settings.rate_limit_per_username,
        client_auth_failures=settings.rate_limit_client_auth_failures,
        free_failures=settings.login_free_failures,
        backoff_max=settings.login_backoff_max,
    )


@contextlib.contextmanager
def open_database(settings: Settings) -> Iterator[Engine]:
    """An engine on the configured database, its schema created or checked, disposed after."""
    engine = make_engine(settings.database_url)
    try:
        prepare(engine)
        yield engine
    finally:
        engine.dispose()


def key_store(settings: Settings, engine: Engine | None) -> KeySetStore:
    """The configured key store; the database one lives on `engine` (schema prepared)."""
    passphrase = settings.keys_passphrase.get_secret_value() if settings.keys_passphrase else None
    if settings.keys_backend == "database":
        assert engine is not None, "the database key store needs the database"
        return DatabaseKeyStore(engine, passphrase)
    return FileKeyStore(settings.keys_dir, passphrase=passphrase)


@contextlib.contextmanager
def open_key_store(settings: Settings) -> Iterator[KeySetStore]:
    """The key store for a script: the database backend opens (and prepares) the database."""
    if settings.keys_backend == "database":
        with open_database(settings) as engine:
            yield key_store(settings, engine)
    else:
        yield key_store(settings, None)
