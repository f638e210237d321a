"""The account scripts' operations: creating the same user or client from several runs at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from issuer.accounts.users import UserError, UserExists, UserRepository
from issuer.admin import client_exists, create_client, create_user
from issuer.builders import open_database
from issuer.oauth.clients import ClientExists, ClientRepository
from issuer.settings import Settings

RUNS = 6


@pytest.fixture
def settings(database_url: str) -> Settings:
    settings = Settings(database_url=database_url, bcrypt_rounds=4)
    with open_database(settings):
        pass  # the schema, created once before the runs race
    return settings


def looking_together(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> None:
    """Every run finishes its existence check before any inserts: the race, every time."""
    barrier, look = threading.Barrier(RUNS), getattr(cls, name)

    def look_then_wait(self: object, key: str) -> object:
        found = look(self, key)
        barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(cls, name, look_then_wait)


def test_concurrent_creations_of_one_user_with_exist_ok_all_succeed(settings, monkeypatch):
    # The audit: of 6 concurrent `create_user.py racer --exist-ok`, one said "created" and five
    # "already exists" with exit 1: the name was free when each looked.
    looking_together(monkeypatch, UserRepository, "get_by_username")
    with ThreadPoolExecutor(RUNS) as pool:
        created = list(
            pool.map(
                lambda _: create_user(settings, "racer", "wonderland1", exist_ok=True), range(RUNS)
            )
        )
    assert sorted(created) == [False] * (RUNS - 1) + [True]


def test_concurrent_creations_of_one_user_without_exist_ok_say_it_exists(settings, monkeypatch):
    looking_together(monkeypatch, UserRepository, "get_by_username")

    def create(_: int) -> bool | Exception:
        try:
            return create_user(settings, "racer", "wonderland1")
        except UserExists as exc:
            return exc

    with ThreadPoolExecutor(RUNS) as pool:
        outcomes = list(pool.map(create, range(RUNS)))
    assert outcomes.count(True) == 1
    assert all("user 'racer' already exists" in str(o) for o in outcomes if o is not True)


def test_a_client_registered_meanwhile_is_reported_as_existing(settings, monkeypatch):
    # The script's --exist-ok looks first (`client_exists`), then inserts; a registration of
    # the same id between the two must be told from other refusals.
    looking_together(monkeypatch, ClientRepository, "get")

    def register(_: int) -> bool:
        assert not client_exists(settings, "racer")
        try:
            create_client(settings, "racer", ("client_credentials",))
        except ClientExists:
            return False
        return True

    with ThreadPoolExecutor(RUNS) as pool:
        assert sorted(pool.map(register, range(RUNS))) == [False] * (RUNS - 1) + [True]


def test_an_email_that_is_not_an_address_is_refused_even_for_an_existing_user(settings):
    # As the password is: --exist-ok does not make a bad argument good.
    assert create_user(settings, "ada", "wonderland1", email="ada@example.com")
    with pytest.raises(UserError, match="not an email address"):
        create_user(settings, "ada", "wonderland1", email="not an email", exist_ok=True)
