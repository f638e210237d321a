"""Usernames: one spelling per account (RFC 8265 UsernameCaseMapped), at creation and login."""

import pytest

from issuer.accounts import users as users_module
from issuer.accounts.users import UserError, UserRepository, normalize_username, user_id_of
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.schema import prepare
from tests.support import SpyProfile


@pytest.fixture
def users(database_url):
    engine = make_engine(database_url)
    prepare(engine)
    yield UserRepository(make_sessions(engine))
    engine.dispose()


@pytest.mark.parametrize(
    ("spelling", "normalized"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("ALICE@example.com", "alice@example.com"),
        ("\uff21\uff4c\uff49\uff43\uff45", "alice"),  # full-width
    ],
)
def test_every_spelling_of_a_name_normalizes_to_one(spelling, normalized):
    assert normalize_username(spelling) == normalized


@pytest.mark.parametrize("name", ["", "with space", "a\x00b", "x" * 151, "semi;colon"])
def test_names_outside_the_profile_have_no_normalized_form(name):
    assert normalize_username(name) is None


def test_alice_and_Alice_are_one_account(users):
    users.create("Alice", "hash")
    assert users.get_by_username("alice").username == "alice"
    assert users.get_by_username("ALICE") is not None
    with pytest.raises(UserError, match="already exists"):
        users.create("alice", "hash")


def test_a_name_without_a_normalized_form_finds_nobody(users):
    assert users.get_by_username("a\x00b") is None


def test_a_username_too_long_to_have_a_spelling_never_reaches_precis(monkeypatch):
    # PRECIS normalisation is quadratic in long runs of combining marks: 64 KB of them held
    # the event loop for about a second per login.
    spy = SpyProfile(users_module._USERNAME_PROFILE)
    monkeypatch.setattr(users_module, "_USERNAME_PROFILE", spy)
    assert normalize_username("a" * 600 + "\u0300") is None
    assert normalize_username("\u0300" * 16000 + "\u0316" * 16000) is None
    assert spy.calls == []
    assert normalize_username("\uff21lice") == "alice"  # full-width A: still normalised
    assert spy.calls == [5]


def test_hash_costs_counts_the_accounts_at_each_bcrypt_cost(users):
    for name, cost in (("ann", 4), ("bea", 4), ("cal", 12)):
        users.create(name, f"$2b${cost:02d}$" + "a" * 53)
    users.create("dee", "not-a-bcrypt-hash")
    assert users.hash_costs() == {4: 2, 12: 1}


@pytest.mark.parametrize(
    ("subject", "user_id"),
    [
        ("1", 1),
        (str(2**31 - 1), 2**31 - 1),
        ("client:reports", None),
        ("007", None),  # not how an id is written: not user 7
        ("9" * 30, None),  # signed with our key, it answered /introspect with a 500 on SQLite
        (str(2**31), None),  # and this one on PostgreSQL
        ("0", None),
        ("\u0663", None),  # a digit to str.isdigit, not an id
        ("", None),
    ],
)
def test_only_a_subject_written_as_a_user_id_names_a_user(users, subject, user_id):
    assert user_id_of(subject) == user_id
    if user_id is not None:
        assert users.get_by_id(user_id) is None  # the database takes it


def test_an_upgraded_hash_replaces_only_the_hash_it_was_verified_against(users):
    # A login re-hashes a right password at the current cost after checking it; a password
    # set meanwhile (by an operator, or a future reset) must not be undone by that write.
    user = users.create("alice", "old-hash")
    assert users.update_password_hash(user.id, "old-hash", "upgraded")
    assert users.get_by_username("alice").password_hash == "upgraded"
    assert not users.update_password_hash(user.id, "old-hash", "stale upgrade")
    assert users.get_by_username("alice").password_hash == "upgraded"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "not an email",
        "alice",
        "@example.com",
        "alice@",
        "a@b@example.com",
        "a\x01b@c",
        "alice@example.com\n",
        "al ice@example.com",
        "a" * 243 + "@example.com",  # 255 characters
    ],
)
def test_an_email_that_is_not_an_address_is_refused(users, email):
    # The audit: these were stored, and /userinfo gave them out as the user's email.
    with pytest.raises(UserError, match="email"):
        users.create("alice", "hash", email=email)
    assert users.get_by_username("alice") is None


@pytest.mark.parametrize(
    "email", ["alice@example.com", "a.b+tag@mail.example.co.uk", "ü@bücher.example", None]
)
def test_a_plausible_email_or_none_is_kept(users, email):
    assert users.create("alice", "hash", email=email).email == email


@pytest.mark.parametrize("name", ["café", "δημήτρης", "with space"])
def test_a_name_outside_the_ascii_subset_is_refused_saying_ascii(users, name):
    # The audit: "letters, digits ..." read as if "café" were fine.
    with pytest.raises(UserError, match=r"ASCII letters, digits and \. _ @ \+ -"):
        users.create(name, "hash")
