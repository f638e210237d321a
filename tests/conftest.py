import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from sqlalchemy import create_engine, text

from issuer.keys.store import KeyFactory, generate_key
from tests.support import REDIS_URL, FakeClock

# The machine's PostgreSQL (trust auth); each test gets a schema of its own, dropped after.
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# RSA key generation costs ~50 ms a key: every test draws from keys made once per session.
POOL_SIZE = 16


@pytest.fixture(scope="session")
def key_pool() -> list[RSAKey]:
    return [generate_key(2048) for _ in range(POOL_SIZE)]


@pytest.fixture
def new_key(key_pool: list[RSAKey]) -> KeyFactory:
    """A key factory for key stores: distinct 2048-bit keys from the pool, others made anew."""
    unused = iter(key_pool)

    def factory(size: int) -> RSAKey:
        return next(unused) if size == 2048 else generate_key(size)

    return factory


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def third_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def postgres_schema_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL schema of this test's own."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'issuer.db'}"
    return str(request.getfixturevalue("postgres_url"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e/ is `e2e` (real processes): `make test-fast` skips it."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def bcrypt_costs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The cost of every bcrypt run from here on, as passlib hands it to the bcrypt library."""
    costs: list[int] = []
    hashpw = bcrypt.hashpw

    def spy(password: bytes, config: bytes) -> bytes:
        hashed = hashpw(password, config)
        costs.append(int(config.split(b"$")[2]))  # after it: a refused input did no work
        return hashed

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    return costs


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted after (a
    known address lives 30 days: left, they would pile up run after run)."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
