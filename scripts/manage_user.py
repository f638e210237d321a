"""Disable or enable a user, or set a new password (ISSUER_DATABASE_URL).

Disabling and a new password sign the user out everywhere: browser sessions end, codes not
yet exchanged are dropped, and refresh tokens are revoked with the access tokens issued with
them. Access tokens already issued otherwise stay valid at resource servers until they expire
(ISSUER_ACCESS_TOKEN_TTL); introspection and /userinfo refuse a disabled user's at once. Users
are never deleted: no new account can take an old one's id, and with it its tokens' `sub`.

Exit codes: 0 done, 1 error (no such user, a refused password, the database), 2 usage.
"""

import argparse
import sys

from issuer.accounts.passwords import PasswordPolicyError
from issuer.accounts.users import UserError
from issuer.admin import (
    DATABASE_ERRORS,
    NoPassword,
    SignOutUnfinished,
    change_user,
    error_line,
    read_password,
    report,
    run,
    text_argument,
)
from issuer.settings import Settings
from servicekit.configuration import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("username", type=text_argument)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--disable", action="store_true", help="the user can no longer sign in")
    action.add_argument("--enable", action="store_true", help="the user can sign in again")
    action.add_argument("--set-password", action="store_true", help="prompt for a new password")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="with --set-password: read the password from standard input instead of prompting",
    )
    args = parser.parse_args(argv)
    if args.password_stdin and not args.set_password:
        parser.error("--password-stdin goes with --set-password")
    settings = load_settings(Settings)
    try:
        password = read_password(args.password_stdin) if args.set_password else None
        disabled = True if args.disable else False if args.enable else None
        user, signed_out = change_user(
            settings, args.username, disabled=disabled, password=password
        )
    except (
        NoPassword,
        SignOutUnfinished,
        UserError,
        PasswordPolicyError,
        *DATABASE_ERRORS,
    ) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    done = "disabled" if args.disable else "enabled" if args.enable else "given a new password"
    lines = [f"user {user.username!r} {done}"]
    if signed_out is not None:
        lines.append(
            f"signed out everywhere: {signed_out.sessions} browser session(s) ended, "
            f"{signed_out.codes} authorization code(s) dropped, {signed_out.refresh_families} "
            "refresh token family(ies) revoked; access tokens already issued expire within "
            f"{settings.access_token_ttl} s"
        )
    report(lines)
    return 0


if __name__ == "__main__":
    run(main)
