"""Register an OAuth client in the issuer's database and print its secret once.

The secret is the last line of standard output, alone (none for --public). It is stored only
as a hash: keep it now, it cannot be shown again.
"""

import argparse
import sys

from issuer.admin import (
    DATABASE_ERRORS,
    SecretNotShown,
    access_token_ttl_argument,
    check_secret_can_be_shown,
    client_exists,
    create_client,
    error_line,
    run,
    text_argument,
    write_out,
)
from issuer.oauth.clients import GRANT_TYPES, ClientError, ClientExists
from issuer.oauth.errors import InvalidScope
from issuer.settings import Settings
from servicekit.configuration import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # CLIENT_ID first: --grant, --audience and --resource-server take every value after
        # them, so a client id written after one of them would be read as one more value.
        usage="%(prog)s CLIENT_ID [options]",
    )
    parser.add_argument("client_id", type=text_argument)
    # `--grant TYPE ...`: several after one flag, or the flag repeated, or both.
    parser.add_argument(
        "--grant",
        action="extend",
        nargs="+",
        choices=GRANT_TYPES,
        dest="grants",
        metavar="TYPE",
        help="allowed grant types (repeatable); default: authorization_code and refresh_token "
        "with --redirect-uri, else password and refresh_token with --public, else "
        "client_credentials",
    )
    parser.add_argument(
        "--redirect-uri",
        type=text_argument,
        action="append",
        default=[],
        metavar="URI",
        help="where the authorization endpoint may send the user back (repeatable; https, or "
        "http on 127.0.0.1 / [::1] for native apps, any port)",
    )
    parser.add_argument(
        "--post-logout-redirect-uri",
        type=text_argument,
        action="append",
        default=[],
        metavar="URI",
        help="where GET /logout may send the user afterwards (repeatable)",
    )
    parser.add_argument(
        "--require-consent",
        action="store_true",
        help="ask the user to approve the requested scopes (remembered per scope set)",
    )
    parser.add_argument(
        "--scope", type=text_argument, default="", help='allowed scopes, e.g. "read write"'
    )
    parser.add_argument(
        "--audience",
        type=text_argument,
        action="extend",
        nargs="+",
        default=[],
        metavar="AUD",
        help="`aud` of its tokens (several after the flag, or the flag repeated)",
    )
    parser.add_argument(
        "--resource-server",
        type=text_argument,
        action="extend",
        nargs="+",
        default=[],
        metavar="AUD",
        help="this client is the resource server for audience AUD: it may introspect tokens "
        "issued for AUD (repeatable)",
    )
    parser.add_argument("--public", action="store_true", help="a public client (no secret)")
    parser.add_argument("--name", type=text_argument, default="", help="a display name")
    parser.add_argument(
        "--access-token-ttl",
        type=access_token_ttl_argument,
        help="shorter access token TTL, seconds",
    )
    parser.add_argument(
        "--exist-ok", action="store_true", help="succeed without changes if the client exists"
    )
    args = parser.parse_args(argv)
    if args.redirect_uri:
        default_grants: tuple[str, ...] = ("authorization_code", "refresh_token")
    elif args.public:
        default_grants = ("password", "refresh_token")
    else:
        default_grants = ("client_credentials",)
    # On stderr: a script capturing the secret (`| tail -1`) gets nothing, not this.
    exists = f"client {args.client_id!r} already exists; nothing changed"
    settings = load_settings(Settings)
    try:
        if not args.public:
            check_secret_can_be_shown()
        if args.exist_ok and client_exists(settings, args.client_id):
            print(exists, file=sys.stderr)
            return 0
        created = create_client(
            settings,
            args.client_id,
            tuple(args.grants or default_grants),
            scope=args.scope,
            audiences=tuple(args.audience),
            public=args.public,
            name=args.name,
            access_token_ttl=args.access_token_ttl,
            resource_audiences=tuple(args.resource_server),
            redirect_uris=tuple(args.redirect_uri),
            post_logout_redirect_uris=tuple(args.post_logout_redirect_uri),
            require_consent=args.require_consent,
        )
    except ClientExists as exc:
        if not args.exist_ok:
            print(f"error: {error_line(exc)}", file=sys.stderr)
            return 1
        print(exists, file=sys.stderr)  # registered by another run since we looked
        return 0
    except (
        ClientError,
        InvalidScope,
        SecretNotShown,
        *DATABASE_ERRORS,
    ) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    client = created.client
    lines = [
        f"created {'public' if client.is_public else 'confidential'} client {client.client_id!r}",
        f"  grant types: {client.grant_types}",
        f"  scope: {client.scopes or '(none)'}",
        *(f"  redirect URI: {uri}" for uri in client.redirect_uri_list),
    ]
    if client.access_token_ttl is not None:
        # A longer TTL than the issuer's is not taken: say so rather than ignore it unsaid.
        ttl = client.token_ttl(settings.access_token_ttl)
        capped = " (ISSUER_ACCESS_TOKEN_TTL is shorter)" if ttl < client.access_token_ttl else ""
        lines.append(f"  access token TTL: {ttl} s{capped}")
    if created.secret is not None:
        lines += ["client secret (shown once; store it now):", created.secret]
    failed = write_out(lines)
    if failed is not None and created.secret is not None:
        print(
            f"error: client {client.client_id!r} was registered, but its secret could not be "
            f"written ({failed.strerror or failed}); give it a new one with "
            f"scripts/manage_client.py {client.client_id} --new-secret",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    run(main)
