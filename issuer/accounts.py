"""Account administration used by the scripts: creating users against the configured database."""

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from issuer.clients import ClientRepository, NewClient
from issuer.db import make_engine, make_sessions
from issuer.passwords import PasswordHasher, check_password_policy
from issuer.schema import prepare
from issuer.settings import Settings
from issuer.users import UserRepository

# The tutorial's account, created only by `make run` for the README's curl flow.
DEMO_USERNAME = "johndoe"
DEMO_PASSWORD = "secret123"


def refuse_demo_account(users: UserRepository, hasher: PasswordHasher) -> None:
    """Production (an https issuer) must not start while the demo account can log in."""
    user = users.get_by_username(DEMO_USERNAME)
    if user is not None and hasher.verify(DEMO_PASSWORD, user.password_hash).ok:
        raise RuntimeError(
            f"refusing to start: the demo account {DEMO_USERNAME!r} with its published password "
            "exists and ISSUER_URL is https (production). Delete the user or change its password."
        )


def create_user(
    settings: Settings,
    username: str,
    password: str,
    email: str | None = None,
    scope: str = "",
    exist_ok: bool = False,
) -> bool:
    """Create a user; False (and no change) if it exists and `exist_ok`."""
    check_password_policy(password)
    with _database(settings) as sessions:
        users = UserRepository(sessions)
        if exist_ok and users.get_by_username(username) is not None:
            return False
        hasher = PasswordHasher(settings.bcrypt_rounds, workers=1)
        try:
            users.create(username, hasher.hash(password), email=email, scope=scope)
        finally:
            hasher.close()
        return True


def create_client(
    settings: Settings,
    client_id: str,
    grant_types: tuple[str, ...],
    scope: str = "",
    audiences: tuple[str, ...] = (),
    public: bool = False,
    name: str = "",
    access_token_ttl: int | None = None,
) -> NewClient:
    """Register a client; the returned secret is shown once and never stored."""
    with _database(settings) as sessions:
        return ClientRepository(sessions).create(
            client_id, grant_types, scope, audiences, public, name, access_token_ttl
        )


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the configured database (schema checked), closed afterwards."""
    engine = make_engine(settings.database_url)
    try:
        prepare(engine)
        yield make_sessions(engine)
    finally:
        engine.dispose()
