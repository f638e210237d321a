"""Create the initial signing key set; with one present, change nothing and say so."""

import argparse
import os
import sys
from pathlib import Path

from issuer.keys import KeySetError
from issuer.keystore import ALLOWED_KEY_SIZES, KeyStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--keys-dir",
        type=Path,
        default=Path(os.environ.get("ISSUER_KEYS_DIR", "keys")),
        help="keys directory (default: $ISSUER_KEYS_DIR, then ./keys)",
    )
    parser.add_argument("--key-size", type=int, choices=ALLOWED_KEY_SIZES, default=2048)
    args = parser.parse_args(argv)
    store = KeyStore(args.keys_dir)
    try:
        manifest = store.generate(args.key_size)
    except (KeySetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if manifest is None:
        print(f"a key set already exists in {args.keys_dir}; nothing changed")
        return 0
    print(f"created key set in {args.keys_dir}; active kid {manifest.active.kid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
