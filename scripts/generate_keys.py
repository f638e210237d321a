"""Create the initial key set (an active and a next key); with one present, change nothing."""

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from issuer import key_events
from issuer.keys import KeySetError
from issuer.keystore import ALLOWED_KEY_SIZES
from issuer.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--keys-dir", type=Path, help="keys directory (default: $ISSUER_KEYS_DIR, then ./keys)"
    )
    parser.add_argument("--key-size", type=int, choices=ALLOWED_KEY_SIZES, default=2048)
    args = parser.parse_args(argv)
    try:
        settings = Settings(**({"keys_dir": args.keys_dir} if args.keys_dir else {}))
        manifest = settings.key_store().generate(args.key_size)
    except ValidationError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except (KeySetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if manifest is None:
        print(f"a key set already exists in {settings.keys_dir}; nothing changed")
        return 0
    key_events.announce(settings.redis_url, settings.redis_prefix)
    print(f"created key set in {settings.key_store().describe()}")
    print(f"  active: {manifest.active.kid}")
    assert manifest.next is not None
    print(f"  next:   {manifest.next.kid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
