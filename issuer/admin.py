"""What the account scripts do: create and change users and clients in the configured
database, from arguments checked by the argparse types here."""

import argparse
import contextlib
import getpass
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from issuer.accounts.passwords import PasswordHasher, PasswordPolicyError, check_password_policy
from issuer.accounts.users import User, UserError, UserExists, UserRepository, check_email
from issuer.builders import open_database
from issuer.keys.store import ALLOWED_KEY_SIZES
from issuer.oauth.clients import Client, ClientError, ClientRepository, NewClient
from issuer.oauth.codes import AuthorizationCodes
from issuer.oauth.refresh_tokens import RefreshTokenStore
from issuer.oauth.scopes import parse_scope
from issuer.oidc.sessions import BrowserSessions
from issuer.settings import Settings
from issuer.storage.engine import DatabaseFileError, make_sessions
from issuer.storage.schema import SchemaMismatch
from servicekit.configuration import load_settings

# What a script may meet opening or using the database: each said in one line, exit 1.
DATABASE_ERRORS = (DatabaseFileError, SchemaMismatch, SQLAlchemyError)


# The shell's status for a command stopped by SIGINT (128 + 2).
INTERRUPTED = 130


def run(main: Callable[[], int]) -> NoReturn:
    """A script's entry point: exits with `main`'s status, and on Ctrl-C with one line and
    status 130 rather than a traceback. What was committed by then stands (each write is whole
    or not at all; a sign-out everywhere after a user change finishes when run again)."""
    try:
        status = main()
    except KeyboardInterrupt:
        _end_prompt_line()
        print("error: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    sys.exit(status)


def error_line(exc: BaseException) -> str:
    """What a script says of an error, in one line: for a database error, the driver's own
    first line (SQLAlchemy's adds the statement and a link to its documentation)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return lines[0].strip() if lines else type(cause).__name__


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
    if email is not None:
        check_email(email)  # before the --exist-ok look-up, as the password is
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


@dataclass(frozen=True)
class SignedOut:
    """What signing a user out everywhere ended."""

    sessions: int
    codes: int  # authorization codes not yet exchanged
    refresh_families: int


class SignOutUnfinished(Exception):
    """An account was disabled or given a new password, but its sessions, codes and refresh
    tokens could not all be ended (the database failed between the writes)."""


def change_user(
    settings: Settings,
    username: str,
    *,
    disabled: bool | None = None,
    password: str | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[User, SignedOut | None]:
    """Disable or enable an account, or set its password. Disabling and a new password sign
    the user out everywhere: browser sessions end, codes not yet exchanged are dropped,
    refresh tokens (and the access tokens issued with them) are revoked, and access tokens
    issued until then no longer introspect active or open /userinfo (`User.honours`), so
    enabling the account again brings none of them back.
    `UserError` if there is no such user."""
    if password is not None:
        check_password_policy(password)
    with open_database(settings) as engine:
        sessions = make_sessions(engine)
        users = UserRepository(sessions)
        user = users.get_by_username(username)
        if user is None:
            raise UserError(f"no user {username!r}")
        if password is not None:
            hasher = PasswordHasher(settings.bcrypt_rounds, workers=1)
            try:
                users.set_password_hash(user.id, hasher.hash(password), int(clock()))
            finally:
                hasher.close()
        if disabled is not None:
            users.set_disabled(user.id, disabled, int(clock()))
        if password is None and not disabled:
            return user, None
        refresh_tokens = RefreshTokenStore(
            sessions, settings.refresh_token_ttl, settings.refresh_token_idle_ttl
        )
        codes = AuthorizationCodes(sessions, settings.authorization_code_ttl)
        try:
            signed_out = SignedOut(
                sessions=BrowserSessions(sessions, settings.session_ttl).end_all(user.id),
                codes=codes.discard_user(user.id),
                refresh_families=refresh_tokens.revoke_user(user.id, int(clock())),
            )
        except DATABASE_ERRORS as exc:
            # The change above is committed; what it signs out is not yet. Said plainly, or
            # an operator reading "error:" would think nothing changed and stop there.
            changed = "disabled" if disabled else "given a new password"
            raise SignOutUnfinished(
                f"user {user.username!r} {changed}, but signing out everywhere did not finish "
                f"({error_line(exc)}): run the same command again to finish it"
            ) from exc
        return user, signed_out


def change_client(
    settings: Settings, client_id: str, *, disabled: bool | None = None, new_secret: bool = False
) -> tuple[Client, str | None]:
    """Disable or enable a client, or give a confidential one a new secret (returned, to be
    shown once). `ClientError` if there is no such client, or a public one asks a secret."""
    with open_database(settings) as engine:
        clients = ClientRepository(make_sessions(engine))
        client = clients.get(client_id)
        if client is None:
            raise ClientError(f"no client {client_id!r}")
        secret = None
        if new_secret:
            if client.is_public:
                raise ClientError(f"client {client_id!r} is public: it has no secret to replace")
            secret = clients.new_secret(client_id)
        if disabled is not None:
            clients.set_disabled(client_id, disabled)
        return client, secret


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


DEFAULT_KEY_SIZE = 2048


def add_key_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The key scripts' --keys-dir and --key-size."""
    parser.add_argument(
        "--keys-dir",
        type=directory_argument,
        help="keys directory of the files backend (default: $ISSUER_KEYS_DIR, then ./keys)",
    )
    # No default here: rotate_keys.py refuses the flag where no key is made.
    parser.add_argument(
        "--key-size",
        type=int,
        choices=ALLOWED_KEY_SIZES,
        help=f"RSA key size in bits of new keys (default: {DEFAULT_KEY_SIZE})",
    )


def key_set_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """The key scripts' settings, --keys-dir over ISSUER_KEYS_DIR. With the database backend
    the flag is refused (exit 2): taken and ignored, the script would act on the database's
    key set for an operator who named a directory."""
    keys_dir = args.keys_dir
    settings = load_settings(Settings, **({} if keys_dir is None else {"keys_dir": keys_dir}))
    if keys_dir is not None and settings.keys_backend == "database":
        parser.error(
            "--keys-dir applies to the files backend; ISSUER_KEYS_BACKEND is database, so "
            "the key set is in ISSUER_DATABASE_URL"
        )
    return settings


def directory_argument(value: str) -> str:
    """argparse type of --keys-dir: an empty value (an unset shell variable) would be the
    current directory."""
    if not value.strip():  # as ISSUER_KEYS_DIR is checked
        raise argparse.ArgumentTypeError("must name a directory (an empty one would be .)")
    return text_argument(value)


def access_token_ttl_argument(value: str) -> int:
    """argparse type of --access-token-ttl: whole seconds, within ISSUER_ACCESS_TOKEN_TTL's
    bounds (a larger number would not even fit the database column)."""
    try:
        return _ACCESS_TOKEN_TTL.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].lower()
        raise argparse.ArgumentTypeError(f"{value!r}: {reason}") from None


class SecretNotShown(Exception):
    """A secret would be made that standard output cannot show."""


def check_secret_can_be_shown() -> None:
    """Refuse, before anything changes, to make a secret with standard output closed (>&-):
    Python then drops what is printed, and the secret would be lost unsaid."""
    if sys.stdout is None:
        raise SecretNotShown(
            "standard output is closed, so the secret could not be shown; nothing changed"
        )


def write_out(lines: list[str]) -> OSError | None:
    """Print `lines` and flush; the error if they could not all be written (a full disk, a
    closed pipe), after which standard output is let go so that exit is quiet."""
    try:
        if sys.stdout is None:
            raise OSError("standard output is closed")
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    except OSError as exc:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exc
    return None


def report(lines: list[str], done: bool = True) -> int:
    """Print what a script did, which is done by now, and the exit status: a report standard
    output cannot take (a full disk, a closed pipe) is one line on stderr, not a traceback;
    the run still succeeded. A plan (`done=False`: a dry run) is only its output, so one that
    cannot be written is a failure, exit 1."""
    failed = write_out(lines)
    if failed is None or sys.stdout is None:  # closed from the start: no report asked
        return 0
    reason = failed.strerror or failed
    if not done:
        print(f"error: standard output could not be written ({reason})", file=sys.stderr)
        return 1
    print(
        f"warning: standard output could not be written ({reason}); what this run did stands",
        file=sys.stderr,
    )
    return 0


class NoPassword(Exception):
    """No password could be read: no terminal to prompt on, or end of input (Ctrl-C is
    `run`'s to answer, as anywhere else in a script)."""


def _end_prompt_line() -> None:
    # The prompt left the cursor after "Password: "; the error line starts a line of its own.
    if sys.stderr is not None and sys.stderr.isatty():
        print(file=sys.stderr)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        if sys.stdin is None:  # started with standard input closed (<&-)
            raise NoPassword("standard input is closed; nothing to read the password from")
        try:
            password = sys.stdin.readline().rstrip("\r\n")
            password.encode()  # bytes a UTF-8 locale passed on as surrogate escapes
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise PasswordPolicyError("the password is not valid UTF-8") from None
        return password
    try:
        with warnings.catch_warnings():
            # Without a terminal getpass warns and reads the password with echo: refuse.
            warnings.simplefilter("error", getpass.GetPassWarning)
            password = getpass.getpass("Password: ")
            repeated = getpass.getpass("Repeat password: ")
    except getpass.GetPassWarning:
        raise NoPassword(
            "no terminal to prompt for the password on; give it on standard input with "
            "--password-stdin"
        ) from None
    except EOFError:
        _end_prompt_line()
        raise NoPassword("no password given (end of input)") from None
    if repeated != password:
        raise PasswordPolicyError("the passwords do not match")
    return password
