"""Client authentication (RFC 6749 section 2.3): reading credentials, checking them."""

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from issuer.limits.counters import MemoryStore
from issuer.limits.throttle import Throttle, ThrottlePolicy
from issuer.oauth.client_auth import ClientAuthenticator, ClientCredentials, prove, read_credentials
from issuer.oauth.clients import (
    CachedClients,
    Client,
    ClientError,
    ClientRepository,
    hash_secret,
    secret_matches,
)
from issuer.oauth.errors import InvalidClient, InvalidRequest
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.schema import prepare


def basic(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return "Basic " + base64.b64encode(data).decode()


def assert_basic_challenge(error: InvalidClient) -> None:
    assert error.status_code == 401
    assert error.headers["WWW-Authenticate"].startswith("Basic ")


# read_credentials


def test_basic_credentials_are_read_as_client_secret_basic():
    assert read_credentials({}, basic("webapp:s3cret")) == ClientCredentials(
        "webapp", "s3cret", "client_secret_basic"
    )


def test_basic_id_and_secret_are_form_urlencoded_before_encoding():
    credentials = read_credentials({}, basic("my+app%2F1:p%3Ass+w%C3%B6rd%25"))
    assert credentials == ClientCredentials("my app/1", "p:ss wörd%", "client_secret_basic")


def test_basic_scheme_is_case_insensitive_and_secret_may_hold_a_raw_colon():
    credentials = read_credentials({}, "bAsIc " + basic("webapp:a:b")[6:])
    assert credentials == ClientCredentials("webapp", "a:b", "client_secret_basic")


def test_basic_credentials_may_follow_the_scheme_after_more_than_one_space():
    # RFC 9110 section 11.4: credentials = auth-scheme [ 1*SP ( token68 / ... ) ].
    assert read_credentials({}, "Basic   " + basic("webapp:s3cret")[6:]) == ClientCredentials(
        "webapp", "s3cret", "client_secret_basic"
    )


def test_basic_with_empty_id_and_secret_means_no_client():
    assert read_credentials({}, "Basic Og==") is None
    assert read_credentials({"client_id": "spa"}, "Basic Og==") == ClientCredentials(
        "spa", None, "none"
    )


def test_basic_id_with_empty_secret_is_a_public_client_naming_itself():
    assert read_credentials({}, basic("spa:")) == ClientCredentials("spa", None, "none")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic not-base64!",
        "Basic d2Vi*YXBwOnMzY3JldA==",  # "webapp:s3cret" but for a byte outside base64
        "Basic d2ViYXBw",  # "webapp": no colon
        basic(b"\xffwebapp:secret"),  # not UTF-8
        basic(":secret"),  # a secret without an id
    ],
)
def test_malformed_basic_credentials_are_invalid_client_with_a_challenge(authorization):
    with pytest.raises(InvalidClient) as caught:
        read_credentials({}, authorization)
    assert_basic_challenge(caught.value)


def test_non_ascii_basic_credentials_are_invalid_client():
    with pytest.raises(InvalidClient) as caught:
        read_credentials({}, "Basic \xe9\xe9\xe9\xe9")
    assert_basic_challenge(caught.value)


def test_basic_together_with_a_form_secret_is_invalid_request():
    with pytest.raises(InvalidRequest):
        read_credentials({"client_secret": "s3cret"}, basic("webapp:s3cret"))


def test_form_client_id_must_match_the_basic_one():
    assert read_credentials({"client_id": "webapp"}, basic("webapp:s"))
    with pytest.raises(InvalidRequest):
        read_credentials({"client_id": "other"}, basic("webapp:s"))


def test_form_credentials_are_client_secret_post_or_none():
    form = {"client_id": "webapp", "client_secret": "s3cret"}
    assert read_credentials(form, None) == ClientCredentials(
        "webapp", "s3cret", "client_secret_post"
    )
    assert read_credentials({"client_id": "spa"}, None) == ClientCredentials("spa", None, "none")


def test_non_basic_authorization_is_ignored_and_no_client_id_means_no_client():
    assert read_credentials({"username": "alice"}, "Bearer abc.def.ghi") is None


def test_client_secret_without_client_id_is_invalid_request():
    with pytest.raises(InvalidRequest):
        read_credentials({"client_secret": "s3cret"}, None)


# authenticate, against clients registered in a real SQLite database


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'issuer.db'}")
    prepare(engine)
    try:
        yield make_sessions(engine)
    finally:
        engine.dispose()


@pytest.fixture
def repository(sessions: sessionmaker[Session]) -> ClientRepository:
    return ClientRepository(sessions)


@pytest.fixture
def clients(repository: ClientRepository) -> CachedClients:
    return CachedClients(repository)


async def authenticate(
    clients: CachedClients, credentials: ClientCredentials, require_secret: bool = False
) -> Client:
    """As `ClientAuthenticator` does, without its throttle and audit line."""
    return prove(await clients.get(credentials.client_id), credentials, require_secret)


@pytest.fixture
def webapp_secret(repository: ClientRepository) -> str:
    secret = repository.create("webapp", ("client_credentials",), scope="read").secret
    assert secret
    return secret


@pytest.fixture
def public_client(repository: ClientRepository) -> str:
    return repository.create("spa", ("password",), public=True).client.client_id


async def test_right_secret_authenticates_the_client(clients, webapp_secret):
    for method in ("client_secret_basic", "client_secret_post"):
        client = await authenticate(clients, ClientCredentials("webapp", webapp_secret, method))
        assert isinstance(client, Client)
        assert client.client_id == "webapp"


@pytest.mark.parametrize(
    ("client_id", "secret"), [("webapp", "wrong"), ("nobody", "anything"), ("webapp", "")]
)
async def test_wrong_secret_or_unknown_client_is_invalid_client(
    clients, webapp_secret, client_id, secret
):
    with pytest.raises(InvalidClient) as caught:
        await authenticate(clients, ClientCredentials(client_id, secret, "client_secret_basic"))
    assert_basic_challenge(caught.value)


async def test_every_failed_authentication_carries_a_challenge(clients, webapp_secret):
    # RFC 9110 section 15.5.2: a 401 always names a scheme, whatever method the client used.
    for credentials in (
        ClientCredentials("webapp", "wrong", "client_secret_post"),
        ClientCredentials("webapp", None, "none"),
        ClientCredentials("nobody", "x", "client_secret_basic"),
    ):
        with pytest.raises(InvalidClient) as caught:
            await authenticate(clients, credentials)
        assert caught.value.headers["WWW-Authenticate"].startswith("Basic ")


async def test_disabled_client_is_refused_even_with_the_right_secret(
    sessions, clients, webapp_secret
):
    with sessions.begin() as session:
        session.execute(update(Client).where(Client.client_id == "webapp").values(disabled=True))
    with pytest.raises(InvalidClient):
        await authenticate(
            clients, ClientCredentials("webapp", webapp_secret, "client_secret_post")
        )


@pytest.mark.parametrize(
    "stored",
    ["not a hash", "bcrypt$only-two", "hmac-sha256$salt$d\u00efgest", "", "$$"],
    ids=["no separator", "other scheme", "non-ascii digest", "empty", "empty parts"],
)
async def test_an_unreadable_stored_secret_hash_refuses_the_client_and_says_so(
    sessions, clients, webapp_secret, stored, caplog
):
    # A hash edited by hand or written by another tool: refused as a wrong secret (401), not
    # an exception (500) on every token request of that client.
    with sessions.begin() as session:
        session.execute(
            update(Client).where(Client.client_id == "webapp").values(secret_hash=stored)
        )
    with pytest.raises(InvalidClient) as caught:
        await authenticate(
            clients, ClientCredentials("webapp", webapp_secret, "client_secret_basic")
        )
    assert_basic_challenge(caught.value)
    assert "stored secret hash of client 'webapp' is unreadable" in caplog.text


async def test_public_client_authenticates_without_a_secret(clients, public_client):
    client = await authenticate(clients, ClientCredentials(public_client, None, "none"))
    assert client.is_public


async def test_public_client_is_refused_where_a_secret_is_required(clients, public_client):
    # Saying why (the audit: "client authentication failed" left a newcomer guessing), in
    # the same words for an id no client has: nothing about which clients exist.
    for client_id in (public_client, "nobody"):
        with pytest.raises(InvalidClient) as caught:
            await authenticate(
                clients, ClientCredentials(client_id, None, "none"), require_secret=True
            )
        assert "only a confidential client" in (caught.value.description or "")
        assert_basic_challenge(caught.value)


async def test_public_client_presenting_a_secret_is_refused(clients, public_client):
    with pytest.raises(InvalidClient):
        await authenticate(clients, ClientCredentials(public_client, "guess", "client_secret_post"))


async def test_confidential_client_presenting_no_secret_is_refused(clients, webapp_secret):
    with pytest.raises(InvalidClient):
        await authenticate(clients, ClientCredentials("webapp", None, "none"))


class CountingRepository(ClientRepository):
    def __init__(self, sessions: sessionmaker[Session]):
        super().__init__(sessions)
        self.lookups: list[str] = []

    def get(self, client_id: str) -> Client | None:
        self.lookups.append(client_id)
        return super().get(client_id)


@pytest.mark.parametrize(
    "client_id", ["a\x00b", "with space", "caf\u00e9", "x" * 101, "", "webapp\n"]
)
async def test_an_id_that_could_never_be_registered_is_unknown_without_a_lookup(
    sessions, client_id
):
    # A NUL reached PostgreSQL (which refuses it in text: a 500) before this check.
    repository = CountingRepository(sessions)
    for secret in ("x", None):
        with pytest.raises(InvalidClient) as caught:
            credentials = ClientCredentials(client_id, secret, "client_secret_basic")
            await authenticate(CachedClients(repository), credentials)
        assert_basic_challenge(caught.value)
    assert repository.lookups == []
    with pytest.raises(ClientError):
        repository.create(client_id, ("client_credentials",))


async def test_a_failed_authentication_looks_the_client_up_once(sessions, webapp_secret):
    # Its audit line names the client as registered: a second lookup to name it cost each
    # guess at an unknown id two database queries.
    repository = CountingRepository(sessions)
    authenticator = ClientAuthenticator(
        CachedClients(repository), Throttle(MemoryStore(), ThrottlePolicy())
    )
    for client_id in ("nobody", "webapp"):
        with pytest.raises(InvalidClient):
            credentials = ClientCredentials(client_id, "wrong", "client_secret_basic")
            await authenticator.authenticate(credentials, "192.0.2.1")
    assert repository.lookups == ["nobody", "webapp"]
    # No secret where one is required: refused whoever the id names, before any lookup.
    for client_id in ("someone", "webapp"):
        with pytest.raises(InvalidClient, match="only a confidential client"):
            credentials = ClientCredentials(client_id, None, "none")
            await authenticator.authenticate(credentials, "192.0.2.1", require_secret=True)
    assert repository.lookups == ["nobody", "webapp"]


# CachedClients


async def test_a_disabled_client_is_remembered_as_enabled_for_less_than_the_ttl(sessions, clock):
    repository = CountingRepository(sessions)
    repository.create("webapp", ("client_credentials",))
    clients = CachedClients(repository, ttl=5.0, clock=clock)
    assert (await clients.get("webapp")).disabled is False
    repository.set_disabled("webapp", True)
    clock.advance(4.999)
    assert (await clients.get("webapp")).disabled is False
    assert repository.lookups == ["webapp"]
    clock.advance(0.001)  # the ttl is up at its very instant
    assert (await clients.get("webapp")).disabled is True
    assert repository.lookups == ["webapp", "webapp"]


async def test_an_unknown_client_is_looked_up_each_time(sessions, clock):
    repository = CountingRepository(sessions)
    clients = CachedClients(repository, clock=clock)
    assert await clients.get("later") is None
    repository.create("later", ("client_credentials",))
    assert (await clients.get("later")).client_id == "later"


async def test_a_full_client_cache_forgets_what_it_held(sessions, clock):
    repository = CountingRepository(sessions)
    for client_id in ("one", "two", "three"):
        repository.create(client_id, ("client_credentials",))
    clients = CachedClients(repository, max_entries=2, clock=clock)
    for client_id in ("one", "two", "one", "two"):
        await clients.get(client_id)
    assert repository.lookups == ["one", "two"]
    await clients.get("three")  # past max_entries: the cache starts again, with it
    for client_id in ("one", "three", "two"):
        await clients.get(client_id)
    assert repository.lookups == ["one", "two", "three", "one", "two"]


async def test_the_reserved_client_id_is_no_client_even_if_registered(sessions, clock):
    repository = CountingRepository(sessions)
    repository.create("default", ("client_credentials",))
    clients = CachedClients(repository, clock=clock, reserved_id="default")
    assert await clients.get("default") is None
    assert repository.lookups == []


def test_a_stored_secret_hash_checks_its_secret_every_time_and_no_other():
    # The keyed hash is prepared once per stored value and copied per check: a check that
    # fed the shared one would refuse the right secret the second time.
    first, second = hash_secret("first-secret"), hash_secret("second-secret")
    for _ in range(3):
        assert secret_matches("first-secret", first)
        assert secret_matches("second-secret", second)
        assert not secret_matches("second-secret", first)
        assert not secret_matches("first-secret", second)
        assert not secret_matches("first-secret!", first)


@pytest.mark.parametrize("stored", [None, "", "hmac-sha256$salt$nothex", "bcrypt$2b$..."])
def test_no_secret_matches_a_missing_or_unreadable_hash(stored):
    assert not secret_matches("", stored)
    assert not secret_matches("first-secret", stored)
