"""Registering a client: options that could not be stored as given, or would mean nothing,
are refused (ClientError) rather than kept."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from issuer.oauth.clients import ClientError, ClientRepository
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.schema import prepare


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[ClientRepository]:
    engine = make_engine(f"sqlite:///{tmp_path / 'issuer.db'}")
    prepare(engine)
    try:
        yield ClientRepository(make_sessions(engine))
    finally:
        engine.dispose()


@pytest.mark.parametrize("option", ["audiences", "resource_audiences"])
@pytest.mark.parametrize("audience", ["", "a b", "a\tb", "api\n", "a\x01b", "a\u2028b"])
def test_an_audience_that_is_not_one_word_is_refused(repository, option, audience):
    # The audit: "" was dropped unsaid, and "a b" was stored as two audiences, a and b.
    with pytest.raises(ClientError, match="audience"):
        repository.create("c1", ("client_credentials",), **{option: (audience,)})
    assert repository.get("c1") is None


def test_audiences_of_one_word_each_are_kept(repository):
    client = repository.create(
        "c1",
        ("client_credentials",),
        audiences=("api", "https://billing.example/"),
        resource_audiences=("urn:example:reports",),
    ).client
    assert client.audience_list == ["api", "https://billing.example/"]
    assert client.serves("urn:example:reports")


def test_a_public_client_cannot_be_a_resource_server(repository):
    # Introspection requires a client secret: a public resource server could never use it.
    with pytest.raises(ClientError, match="public client cannot act as a resource server"):
        repository.create("rs", ("password",), public=True, resource_audiences=("api",))
    assert repository.get("rs") is None


@pytest.mark.parametrize(
    "options",
    [
        {"redirect_uris": ("https://app.example/cb",)},
        {"post_logout_redirect_uris": ("https://app.example/bye",)},
        {"require_consent": True},
    ],
)
@pytest.mark.parametrize("grants", [("password", "refresh_token"), ("client_credentials",)])
def test_browser_options_without_the_authorization_code_grant_are_refused(
    repository, options, grants
):
    # The audit: they were stored, and nothing ever reads them without the code flow.
    with pytest.raises(ClientError, match="needs the authorization_code grant"):
        repository.create("c1", grants, **options)
    assert repository.get("c1") is None


def test_browser_options_with_the_authorization_code_grant_are_kept(repository):
    client = repository.create(
        "c1",
        ("authorization_code",),
        redirect_uris=("https://app.example/cb",),
        post_logout_redirect_uris=("https://app.example/bye",),
        require_consent=True,
    ).client
    assert client.post_logout_redirect_uri_list == ["https://app.example/bye"]
    assert client.require_consent


@pytest.mark.parametrize("grants", [("refresh_token",), ("client_credentials", "refresh_token")])
def test_refresh_token_without_a_grant_that_issues_one_is_refused(repository, grants):
    # Only the password and authorization_code grants start a refresh token family.
    with pytest.raises(ClientError, match="refresh_token grant needs"):
        repository.create("c1", grants)
    assert repository.get("c1") is None


@pytest.mark.parametrize("first", ["password", "authorization_code"])
def test_refresh_token_beside_a_grant_that_issues_one_is_kept(repository, first):
    redirect_uris = ("https://app.example/cb",) if first == "authorization_code" else ()
    client = repository.create("c1", (first, "refresh_token"), redirect_uris=redirect_uris).client
    assert client.allows("refresh_token")


def test_a_client_id_outside_ascii_is_refused_saying_ascii(repository):
    with pytest.raises(ClientError, match=r"ASCII letters, digits and \. _ ~ -"):
        repository.create("café", ("client_credentials",))
