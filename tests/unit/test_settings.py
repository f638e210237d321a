"""Bounds of the issuer's settings: a value no wait or date can hold is refused at start."""

import pytest
from pydantic import ValidationError

from issuer.settings import Settings


def test_a_rotation_leeway_beyond_a_day_is_refused():
    # 10**20 s was accepted, and then failed as an OverflowError where a date was written.
    assert Settings(rotation_leeway=86400).rotation_leeway == 86400
    with pytest.raises(ValidationError, match="rotation_leeway"):
        Settings(rotation_leeway=10**20)


@pytest.mark.parametrize("name", ["refresh_token_ttl", "refresh_token_idle_ttl", "session_ttl"])
def test_lifetimes_are_bounded_to_ten_years(name):
    # The audit: ISSUER_REFRESH_TOKEN_TTL=400000000 passed, then every login answered 500.
    assert getattr(Settings(**{name: 10 * 365 * 86400}), name) == 10 * 365 * 86400
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: 400_000_000})


def test_database_timeout_is_positive_and_bounded():
    assert Settings().database_timeout == 5
    for bad in (0, -1, 301):
        with pytest.raises(ValidationError, match="database_timeout"):
            Settings(database_timeout=bad)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "https://idp.example.com/", "https://idp.example.com:443/tenant"],
)
def test_an_issuer_url_is_kept_exactly(url):
    assert Settings(url=url).url == url


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://idp.example.com",  # iss is compared exactly: written as verifiers write it
        "ftp://idp.example.com",
        "https://",
        "idp.example.com",
        "https://idp.example.com/?tenant=1",
        "https://idp.example.com/#top",
        "https://admin@idp.example.com",
        "https://idp.example.com:port",
        "https://idp.example.com ",
        "https://idp.example.com\n",
        "https://idp.\texample.com",
        "https://idp.example.com/a b",
        "https://idp.example.com:0",
    ],
)
def test_an_issuer_url_that_is_not_an_issuer_identifier_is_refused(url):
    with pytest.raises(ValidationError, match="url"):
        Settings(url=url)
