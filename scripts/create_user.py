"""Create a user in the issuer's database (ISSUER_DATABASE_URL)."""

import argparse
import sys

from issuer.accounts.passwords import PasswordPolicyError
from issuer.accounts.users import UserError, normalize_username
from issuer.admin import (
    DATABASE_ERRORS,
    NoPassword,
    create_user,
    error_line,
    read_password,
    report,
    run,
    text_argument,
)
from issuer.oauth.errors import InvalidScope
from issuer.settings import Settings
from servicekit.configuration import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("username", type=text_argument)
    parser.add_argument("--email", type=text_argument, help="the email address /userinfo gives")
    parser.add_argument(
        "--scope", type=text_argument, default="", help='space-separated scopes, e.g. "read write"'
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting",
    )
    parser.add_argument(
        "--exist-ok", action="store_true", help="succeed without changes if the user already exists"
    )
    args = parser.parse_args(argv)
    settings = load_settings(Settings)
    try:
        created = create_user(
            settings,
            args.username,
            read_password(args.password_stdin),
            email=args.email,
            scope=args.scope,
            exist_ok=args.exist_ok,
        )
    except (
        NoPassword,
        UserError,
        PasswordPolicyError,
        InvalidScope,
        *DATABASE_ERRORS,
    ) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    # The name as stored and as it signs in (RFC 8265 UsernameCaseMapped): `Alice` is `alice`.
    name = normalize_username(args.username) or args.username
    if created:
        report([f"created user {name!r}"])
    else:
        report([f"user {name!r} already exists; nothing changed"])
    return 0


if __name__ == "__main__":
    run(main)
