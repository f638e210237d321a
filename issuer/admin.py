"""What the account scripts do: create users and clients in the configured database, from
arguments checked by the argparse types here."""

import argparse
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from issuer.accounts.passwords import PasswordHasher, check_password_policy
from issuer.accounts.users import UserExists, UserRepository
from issuer.builders import open_database
from issuer.oauth.clients import ClientError, ClientRepository, NewClient
from issuer.oauth.scopes import parse_scope
from issuer.settings import Settings
from issuer.storage.engine import make_sessions


def create_user(
    settings: Settings,
    username: str,
    password: str,
    email: str | None = None,
    scope: str = "",
    exist_ok: bool = False,
) -> bool:
    """Create a user; False (and no change) if it exists and `exist_ok`, found before or
    at the insert (another creation of the same name may run at once)."""
    check_password_policy(password)
    scopes = parse_scope(scope)
    with open_database(settings) as engine:
        users = UserRepository(make_sessions(engine))
        if exist_ok and users.get_by_username(username) is not None:
            return False
        hasher = PasswordHasher(settings.bcrypt_rounds, workers=1)
        try:
            users.create(username, hasher.hash(password), email=email, scopes=scopes)
        except UserExists:
            if exist_ok:
                return False
            raise
        finally:
            hasher.close()
        return True


def create_client(
    settings: Settings, client_id: str, grant_types: tuple[str, ...], **options: Any
) -> NewClient:
    """Register a client (options as `ClientRepository.create`); the secret is shown once.
    `ClientExists` if the id is taken, even by a registration that ran at the same time."""
    if client_id == settings.default_client_id:
        # Tokens issued with no client carry this id: a client by that name would own them.
        raise ClientError(
            f"client_id {client_id!r} is reserved for tokens issued without a client "
            "(ISSUER_DEFAULT_CLIENT_ID)"
        )
    with open_database(settings) as engine:
        return ClientRepository(make_sessions(engine)).create(client_id, grant_types, **options)


def client_exists(settings: Settings, client_id: str) -> bool:
    with open_database(settings) as engine:
        return ClientRepository(make_sessions(engine)).get(client_id) is not None


# A client's TTL can only shorten the issuer's (the grant takes the smaller), so it takes the
# bounds of ISSUER_ACCESS_TOKEN_TTL itself, read from the setting rather than copied.
_ACCESS_TOKEN_TTL: TypeAdapter[int] = TypeAdapter(
    Annotated[(int, *Settings.model_fields["access_token_ttl"].metadata)]
)


def text_argument(value: str) -> str:
    """argparse type of a text argument that is stored: argv bytes that are not UTF-8 arrive
    as surrogate escapes, which no database can store."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"not valid UTF-8: {value!r}") from None
    return value


def access_token_ttl_argument(value: str) -> int:
    """argparse type of --access-token-ttl: whole seconds, within ISSUER_ACCESS_TOKEN_TTL's
    bounds (a larger number would not even fit the database column)."""
    try:
        return _ACCESS_TOKEN_TTL.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].lower()
        raise argparse.ArgumentTypeError(f"{value!r}: {reason}") from None
