"""Rotate signing keys one safe step at a time; safe to run from cron.

A step: next -> active, active -> retiring, a new next key, retiring keys past their time ->
retired. It refuses (exit 3) while the next key is too new for verifiers to hold, and says
when it will be safe.

Exit codes: 0 done, 1 error, 2 usage, 3 refused as unsafe now (retry later or --force).
"""

import argparse
import sys

from issuer.admin import (
    DATABASE_ERRORS,
    DEFAULT_KEY_SIZE,
    add_key_set_arguments,
    error_line,
    key_set_settings,
    report,
    run,
)
from issuer.builders import open_key_store, rotation_policy
from issuer.keys import events as key_events
from issuer.keys.model import KeySetError, PassphraseNeeded, UnsafeRotation, revocation_max_age
from issuer.keys.report import format_time, status_lines
from servicekit.observability import configure_logging

EXIT_UNSAFE = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_key_set_arguments(parser)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="show each key and change nothing")
    action.add_argument(
        "--revoke", metavar="KID", type=_kid, help="remove a compromised key from the JWKS now"
    )
    action.add_argument(
        "--encrypt",
        action="store_true",
        help="re-write unencrypted private keys encrypted with ISSUER_KEYS_PASSPHRASE",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would change")
    parser.add_argument(
        "--force", action="store_true", help="rotate even if verifiers may not hold the next key"
    )
    args = parser.parse_args(_attach_revoke_value(sys.argv[1:] if argv is None else argv))
    # Taken and ignored, they would let an operator believe they had been acted on.
    if args.force and (args.status or args.revoke is not None or args.encrypt):
        parser.error("--force applies to a rotation only")
    if args.dry_run and args.status:
        parser.error("--status changes nothing; --dry-run does not apply to it")
    if args.key_size is not None and (args.status or args.encrypt):
        parser.error("--key-size applies to the new key of a rotation or a revocation")
    key_size = args.key_size or DEFAULT_KEY_SIZE
    settings = key_set_settings(parser, args)
    try:
        configure_logging(settings.log_format)  # the key store's audit lines, on stderr
        policy = rotation_policy(settings)
        with open_key_store(settings) as store:
            if args.status:
                # Only its output, as a dry run's: one that cannot be written is exit 1.
                shown = report(status_lines(store.read_manifest(), policy), done=False)
                try:
                    store.verify()  # the table alone would look like a healthy set
                except PassphraseNeeded:
                    # Not a fault of the set: a status check need not hold the secret.
                    print(
                        "the private keys are encrypted and were not opened; "
                        "set ISSUER_KEYS_PASSPHRASE to check them too",
                        file=sys.stderr,
                    )
                return shown
            if args.encrypt:
                if args.dry_run:
                    plain = store.plan_encryption()
                    return report(
                        [f"would encrypt (dry run): {', '.join(plain) or 'nothing'}"], done=False
                    )
                encrypted = store.encrypt()
                if encrypted:
                    report([f"encrypted: {', '.join(encrypted)}"])
                else:
                    report(["all keys were encrypted"])
                return 0
            if args.revoke is not None:
                step = (
                    store.plan_revocation(args.revoke)
                    if args.dry_run
                    else store.revoke(args.revoke, key_size)
                )
            else:
                step = (
                    store.plan_rotation(policy, args.force)
                    if args.dry_run
                    else store.rotate(policy, args.force, key_size)
                )
    except UnsafeRotation as exc:
        print(f"refused: {exc}", file=sys.stderr)
        print(
            f"safe from {format_time(exc.safe_at)}; run again then, or use --force", file=sys.stderr
        )
        return EXIT_UNSAFE
    except (KeySetError, OSError, *DATABASE_ERRORS) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    if not args.dry_run:
        key_events.announce(settings.redis_url, settings.redis_prefix)
    lines = ["would change (dry run):" if args.dry_run else "changed:"]
    lines += [f"  {line}" for line in step.changes]
    if args.revoke is not None and not step.unloadable:
        lines.append(
            ("Once applied, tokens" if args.dry_run else "Tokens")
            + f" signed by {args.revoke} stop verifying as soon as each verifier refreshes "
            f"its JWKS: at most {settings.jwks_max_age} s (the JWKS max-age) for caches that "
            "honour max-age, about a minute for this project's resource servers (they "
            "revalidate the JWKS every RS_JWKS_REVALIDATE seconds). For the next "
            f"{settings.jwks_max_age} s the issuer serves its JWKS with max-age="
            f"{revocation_max_age(settings.jwks_max_age, settings.jwks_max_age_after_revocation)}"
            ". Users "
            "holding such tokens must log in again."
        )
    status = report(lines, done=not args.dry_run)
    if step.unloadable:
        print(
            f"error: the private key of {', '.join(step.unloadable)} is missing too: until "
            "each is revoked (or its file restored) the issuer cannot load the key set and "
            "keeps the one before, the revoked key included",
            file=sys.stderr,
        )
        return 1
    return status


def _kid(value: str) -> str:
    # An empty KID (an unset shell variable) must not fall through to a rotation.
    if not value:
        raise argparse.ArgumentTypeError("KID must not be empty")
    return value


def _attach_revoke_value(argv: list[str]) -> list[str]:
    """`--revoke KID` as `--revoke=KID`: a kid is base64url and may start with "-"."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] == "--revoke":
            joined[-1] = f"--revoke={arg}"
        else:
            joined.append(arg)
    return joined


if __name__ == "__main__":
    run(main)
