"""Disable or enable a client, or give a confidential client a new secret
(ISSUER_DATABASE_URL).

A disabled client cannot authenticate or sign users in, and its tokens introspect inactive;
each issuer notices within a few seconds (its client cache). A new secret is printed once,
alone on the last line; the old one stops working within the same few seconds. Clients are
never deleted: no new registration can take an old one's id, and with it its tokens.

Exit codes: 0 done, 1 error (no such client, a public client asked for a secret, the
database), 2 usage.
"""

import argparse
import sys

from issuer.admin import (
    DATABASE_ERRORS,
    SecretNotShown,
    change_client,
    check_secret_can_be_shown,
    error_line,
    report,
    run,
    text_argument,
    write_out,
)
from issuer.oauth.clients import ClientError
from issuer.settings import Settings
from servicekit.configuration import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("client_id", type=text_argument)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--disable", action="store_true", help="the client can no longer act")
    action.add_argument("--enable", action="store_true", help="the client can act again")
    action.add_argument(
        "--new-secret", action="store_true", help="replace a confidential client's secret"
    )
    args = parser.parse_args(argv)
    settings = load_settings(Settings)
    disabled = True if args.disable else False if args.enable else None
    try:
        if args.new_secret:
            check_secret_can_be_shown()
        client, secret = change_client(
            settings, args.client_id, disabled=disabled, new_secret=args.new_secret
        )
    except (ClientError, SecretNotShown, *DATABASE_ERRORS) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    if secret is None:
        report([f"client {client.client_id!r} {'disabled' if args.disable else 'enabled'}"])
        return 0
    failed = write_out(
        [f"client {client.client_id!r} has a new secret (shown once; store it now):", secret]
    )
    if failed is not None:
        print(
            f"error: the secret of client {client.client_id!r} was replaced, but the new one "
            f"could not be written ({failed.strerror or failed}); the old one no longer works: "
            "run this again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    run(main)
