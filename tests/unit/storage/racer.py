"""One process of a start-up race on a database, for the schema tests: its own module, so a
spawned process imports storage alone, not the app."""

from typing import Any

from issuer.storage import schema
from issuer.storage.engine import make_engine


def race(database_url: str, step: str, barrier: Any, results: Any) -> None:
    """Its own engine, then `schema.<step>` at the barrier; the outcome goes to `results`."""
    engine = make_engine(database_url)
    try:
        barrier.wait(timeout=60)
        getattr(schema, step)(engine)
        results.put("ok")
    except Exception as exc:  # every outcome goes back to the test
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()
