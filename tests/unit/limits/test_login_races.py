"""Password guesses sent at once: no more are checked than the limits allow one at a time.

The audit: 9 wrong passwords for bob one after another got 400 x6, then 429; 40 sent at once
all got 400, every one hashed, past both the backoff and the per-account cap.
"""

import asyncio
import dataclasses
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from issuer.accounts.passwords import HashingBusy, PasswordHasher, Verification
from issuer.accounts.users import UserRepository
from issuer.admin import change_user, create_client, create_user
from issuer.app import create_app
from issuer.builders import open_database, throttle_policy
from issuer.limits.counters import CounterStore, MemoryStore, RedisStore
from issuer.limits.throttle import Throttle, Throttled
from issuer.metrics import IssuerMetrics
from issuer.oauth.errors import InvalidGrant
from issuer.oauth.password_login import PasswordLogin, still_stands
from issuer.settings import Settings
from issuer.storage.engine import make_sessions
from tests.support import REDIS_URL, fresh_key_set, running
from tests.unit.oidc.flow import Pkce, authorize_url, submit_login

ISSUER = "http://issuer.test"
SPA = "https://spa.example/cb"
GUESSES = 40
PASSWORD = "correct-horse"


class CountingHasher(PasswordHasher):
    """The real hasher, keeping a note of every password it checks."""

    def __init__(self, rounds: int):
        super().__init__(rounds)
        self.checked: list[str] = []

    def verify(self, password: str, stored_hash: str | None) -> Verification:
        self.checked.append(password)
        return super().verify(password, stored_hash)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(
        url=ISSUER,
        keys_dir=fresh_key_set(tmp_path / "keys"),
        database_url=f"sqlite:///{tmp_path / 'issuer.db'}",
        bcrypt_rounds=4,
    )
    create_user(settings, "bob", PASSWORD)
    return settings


@pytest.fixture
def users(settings: Settings) -> Iterator[UserRepository]:
    with open_database(settings) as engine:
        yield UserRepository(make_sessions(engine))


@pytest.fixture
def hasher(settings: Settings) -> Iterator[CountingHasher]:
    hasher = CountingHasher(settings.bcrypt_rounds)
    yield hasher
    hasher.close()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    prefix = f"test-races:{uuid.uuid4().hex}:"
    try:
        yield RedisStore(client, prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def password_login(
    settings: Settings, store: CounterStore, users: UserRepository, hasher: PasswordHasher
) -> PasswordLogin:
    # The deployed limits, with a first backoff that cannot end while a burst is in flight.
    policy = dataclasses.replace(throttle_policy(settings), backoff_base=60)
    return PasswordLogin(users, hasher, Throttle(store, policy), IssuerMetrics())


async def attempt(logins: PasswordLogin, password: str, address: str) -> str:
    try:
        await logins.verify("bob", password, address)
    except InvalidGrant:
        return "wrong"
    except Throttled:
        return "throttled"
    return "ok"


async def burst(logins: PasswordLogin, addresses: list[str]) -> Counter[str]:
    """One wrong password from each of `addresses`, all sent at once."""
    outcomes = await asyncio.gather(
        *(attempt(logins, "wrong-guess", address) for address in addresses)
    )
    return Counter(outcomes)


async def test_guesses_sent_at_once_from_one_address_get_the_free_attempts_and_no_more(
    settings, store, users, hasher
):
    logins = password_login(settings, store, users, hasher)
    allowed = settings.login_free_failures + 1  # the free ones, then one that starts a backoff
    outcomes = await burst(logins, ["203.0.113.9"] * GUESSES)
    assert outcomes == {"wrong": allowed, "throttled": GUESSES - allowed}
    assert len(hasher.checked) == allowed
    # As after the same guesses one at a time, the backoff holds even the right password.
    assert await attempt(logins, PASSWORD, "203.0.113.9") == "throttled"


async def test_right_passwords_sent_at_once_are_all_accepted(settings, store, users, hasher):
    # Counted before the hash, attempts in flight looked like failures to each other: past
    # six at once from one address, right passwords got 429 (make bench's login figure too).
    logins = password_login(settings, store, users, hasher)
    outcomes = await asyncio.gather(
        *(attempt(logins, PASSWORD, "203.0.113.9") for _ in range(GUESSES))
    )
    assert Counter(outcomes) == {"ok": GUESSES}
    assert await attempt(logins, "wrong-guess", "203.0.113.9") == "wrong"  # nothing left over


async def test_guesses_sent_at_once_from_many_addresses_stop_at_the_account_cap(
    settings, store, users, hasher
):
    settings = settings.model_copy(update={"rate_limit_per_username": 10})
    logins = password_login(settings, store, users, hasher)
    assert await attempt(logins, PASSWORD, "192.0.2.10") == "ok"  # bob's own address
    hasher.checked.clear()
    outcomes = await burst(logins, [f"198.51.100.{i}" for i in range(GUESSES)])
    assert outcomes == {"wrong": 10, "throttled": GUESSES - 10}
    assert len(hasher.checked) == 10
    assert await attempt(logins, PASSWORD, "198.51.100.200") == "throttled"  # a new address
    assert await attempt(logins, PASSWORD, "192.0.2.10") == "ok"  # bob is not locked out


class GatedHasher(PasswordHasher):
    """One worker, no queue, and each check held until `gate` opens: a pool kept full."""

    def __init__(self, rounds: int):
        super().__init__(rounds, workers=1, queue=0)
        self.gate = threading.Event()

    def verify(self, password: str, stored_hash: str | None) -> Verification:
        self.gate.wait(10)
        return super().verify(password, stored_hash)


async def test_attempts_turned_away_as_busy_are_not_counted(settings, store, users):
    # Sent at once to a free pool: each must take its hashing slot before it is counted, or
    # all pass a capacity check, all are counted, and the pool turns all but one away.
    hasher = GatedHasher(settings.bcrypt_rounds)
    logins = password_login(settings, store, users, hasher)

    async def guess() -> str:
        try:
            return await attempt(logins, "wrong-guess", "203.0.113.9")
        except HashingBusy:
            return "busy"

    asyncio.get_running_loop().call_later(0.5, hasher.gate.set)  # the one hash then finishes
    outcomes = Counter(await asyncio.gather(*(guess() for _ in range(8))))
    assert outcomes == {"wrong": 1, "busy": 7}
    # One failure counted, not eight: no backoff holds bob's right password.
    assert await attempt(logins, PASSWORD, "203.0.113.9") == "ok"
    hasher.close()


@pytest.mark.parametrize("door", ["password grant", "sign-in page"])
async def test_both_doors_answer_a_burst_as_they_answer_guesses_one_at_a_time(
    settings, clock, door
):
    create_client(
        settings, "spa", ("authorization_code",), scope="openid", redirect_uris=(SPA,), public=True
    )
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        if door == "password grant":
            form = {"username": "bob", "password": "wrong-guess"}
            sends = [client.post("/token", data=form) for _ in range(GUESSES)]
        else:
            page = await client.get(authorize_url("spa", SPA, Pkce()))
            sends = [submit_login(client, page, "bob", "wrong-guess") for _ in range(GUESSES)]
        statuses = Counter(response.status_code for response in await asyncio.gather(*sends))
    allowed = settings.login_free_failures + 1
    assert statuses == {400: allowed, 429: GUESSES - allowed}


class NewPasswordWhileRehashing(UserRepository):
    """Bob is given a new password just as a login re-hashes the one it verified."""

    def __init__(self, settings: Settings, users: UserRepository):
        super().__init__(users._sessions)
        self._settings = settings

    def update_password_hash(self, user_id: int, verified_hash: str, new_hash: str) -> bool:
        change_user(self._settings, "bob", password="a-new-password-9")
        return super().update_password_hash(user_id, verified_hash, new_hash)


async def test_a_login_overtaken_by_a_new_password_while_rehashing_cannot_be_recorded(
    settings, store, users
):
    # The old password opened the old hash, but not the new one: the login must not pass
    # for one made with the new password, or it outlives the sign-out the new one did.
    hasher = PasswordHasher(settings.bcrypt_rounds + 1)  # bob's hash is outdated
    logins = password_login(settings, store, NewPasswordWhileRehashing(settings, users), hasher)
    user = await logins.verify("bob", PASSWORD, "203.0.113.9")
    with users._sessions() as session, pytest.raises(InvalidGrant):
        still_stands(user)(session)
    assert await attempt(logins, PASSWORD, "203.0.113.9") == "wrong"
    hasher.close()
