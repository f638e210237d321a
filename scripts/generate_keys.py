"""Create the initial key set (an active and a next key); with one present, change nothing
(exit 1 if the issuer could not load it)."""

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
from issuer.builders import open_key_store
from issuer.keys import events as key_events
from issuer.keys.model import KeySetError
from servicekit.observability import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_key_set_arguments(parser)
    args = parser.parse_args(argv)
    settings = key_set_settings(parser, args)
    try:
        configure_logging(settings.log_format)  # the key store's audit lines, on stderr
        with open_key_store(settings) as store:
            manifest = store.generate(args.key_size or DEFAULT_KEY_SIZE)
            where = store.describe()
    except (KeySetError, OSError, *DATABASE_ERRORS) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    if manifest is None:
        report([f"a key set already exists in {where}; nothing changed"])
        return 0
    key_events.announce(settings.redis_url, settings.redis_prefix)
    assert manifest.next is not None
    report(
        [
            f"created key set in {where}",
            f"  active: {manifest.active.kid}",
            f"  next:   {manifest.next.kid}",
        ]
    )
    return 0


if __name__ == "__main__":
    run(main)
