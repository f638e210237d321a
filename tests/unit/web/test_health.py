"""Liveness and readiness: /readyz is ready only while the issuer can do its work."""

from pathlib import Path

from issuer.app import create_app
from issuer.settings import Settings
from tests.support import fresh_key_set, running


async def test_a_database_that_takes_no_writes_is_not_ready(tmp_path: Path, postgres_url):
    # The audit: on a server that takes no writes (a standby after a failover), every
    # sign-in, code, refresh token and revocation was answered 503, and /readyz said ready.
    fresh_key_set(tmp_path / "keys")
    settings = Settings(keys_dir=tmp_path / "keys", database_url=postgres_url)
    async with running(create_app(settings)) as client:  # creates the schema
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "database": True, "keys": True}
    read_only = postgres_url + "%20-cdefault_transaction_read_only%3Don"
    settings = settings.model_copy(update={"database_url": read_only})
    async with running(create_app(settings)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "database": False, "keys": True}
        # HEAD, as probes may ask it, says the same.
        assert (await client.head("/readyz")).status_code == 503
