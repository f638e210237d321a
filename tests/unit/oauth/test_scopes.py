"""Scope strings (RFC 6749 section 3.3): parsing, formatting and what a client may be granted."""

import pytest

from issuer.oauth import scopes
from issuer.oauth.errors import InvalidScope
from issuer.oauth.scopes import format_scope, grant_scope, held_by_user, parse_scope

ALLOWED = frozenset({"write", "read", "admin"})


@pytest.mark.parametrize("value", [None, ""])
def test_absent_scope_parses_to_no_tokens(value):
    assert parse_scope(value) == ()


def test_scope_splits_on_single_spaces_keeping_order():
    assert parse_scope("write read admin") == ("write", "read", "admin")


def test_every_printable_ascii_except_quote_and_backslash_is_a_scope_character():
    token = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
    assert parse_scope(token) == (token,)


def test_duplicate_tokens_collapse_keeping_first_position():
    assert parse_scope("read write read admin write") == ("read", "write", "admin")


@pytest.mark.parametrize(
    "value",
    [
        'read "write"',  # %x22 is excluded
        "read wr\\ite",  # %x5C is excluded
        "read  write",  # a run of spaces is an empty token
        " read",
        "read ",
        " ",
        "read\twrite",
        "read\x00",
        "re\x7fad",
        "lecture écriture",
        "read\u00a0write",
    ],
)
def test_scope_outside_the_rfc_charset_is_invalid_scope(value):
    with pytest.raises(InvalidScope):
        parse_scope(value)


def test_trailing_newline_is_invalid_scope():
    with pytest.raises(InvalidScope):
        parse_scope("read\n")


def test_format_scope_joins_with_single_spaces_and_round_trips():
    tokens = ("openid", "read:all", "write")
    assert format_scope(tokens) == "openid read:all write"
    assert parse_scope(format_scope(tokens)) == tokens


@pytest.mark.parametrize("requested", [None, ""])
def test_no_requested_scope_grants_everything_allowed_sorted(requested):
    assert grant_scope(requested, ALLOWED) == ("admin", "read", "write")


def test_requested_subset_is_granted_as_asked_in_order():
    assert grant_scope("write read write", ALLOWED) == ("write", "read")


def test_scope_beyond_allowed_is_refused_naming_only_the_extra_tokens():
    with pytest.raises(InvalidScope) as caught:
        grant_scope("read delete write purge", ALLOWED)
    assert caught.value.description == "scope not allowed: delete purge"
    assert caught.value.status_code == 400
    assert caught.value.body()["error"] == "invalid_scope"


def test_nothing_is_granted_to_a_client_allowed_no_scope_that_asks_for_one():
    assert grant_scope(None, frozenset()) == ()
    with pytest.raises(InvalidScope):
        grant_scope("read", frozenset())


def test_malformed_requested_scope_is_refused_even_if_tokens_are_allowed():
    with pytest.raises(InvalidScope):
        grant_scope("read  write", ALLOWED)


def test_a_user_holds_every_identity_scope_and_only_the_api_scopes_granted_to_them():
    asked = ("write", "openid", "admin", "profile", "read", "email")
    assert held_by_user(asked, frozenset({"read", "write"})) == (
        "write",
        "openid",
        "profile",
        "read",
        "email",
    )
    assert held_by_user(asked, frozenset()) == ("openid", "profile", "email")
    # Holding a scope is not asking for it.
    assert held_by_user(("read",), frozenset({"read", "admin", "openid"})) == ("read",)


def test_short_scope_strings_are_remembered_and_long_ones_are_not():
    # Remembered, a flood of distinct long (valid) scopes would pin up to 1,024 of them.
    scopes._parse_remembered.cache_clear()
    assert parse_scope("read write") == ("read", "write")
    assert parse_scope("read write") == ("read", "write")
    assert scopes._parse_remembered.cache_info().hits == 1
    long = " ".join(f"s{n}" for n in range(2000))
    assert parse_scope(long) == tuple(f"s{n}" for n in range(2000))
    assert scopes._parse_remembered.cache_info().currsize == 1


def test_a_long_scope_string_is_checked_as_strictly_as_a_short_one():
    with pytest.raises(InvalidScope):
        parse_scope("read " * 100 + "bad\x7f")
