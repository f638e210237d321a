"""Authorization codes at the store: their life, what spends them, what a replay proves,
and a redemption whose commit answer was lost, on both databases."""

from dataclasses import replace

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from issuer.oauth.codes import AuthorizationCode, AuthorizationCodes, CodeGrant, CodeReused, Issued
from issuer.oauth.errors import InvalidGrant
from issuer.oauth.pkce import challenge_of
from issuer.oauth.revoked_tokens import AccessTokenRef
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.schema import prepare

NOW = 1_800_000_000
GRANT = CodeGrant("webapp", "https://app.example/cb", "c" * 43, None, "openid", 1, NOW)


@pytest.fixture
def codes(database_url):
    engine = make_engine(database_url)
    prepare(engine)
    yield AuthorizationCodes(make_sessions(engine), ttl=60)
    engine.dispose()


def issue(_: CodeGrant, __: Session) -> tuple[str, Issued]:
    return "tokens", Issued(AccessTokenRef("jti-1", NOW + 900), None)


def test_a_redemption_whose_commit_answer_was_lost_answers_its_tokens(codes, monkeypatch):
    code = codes.issue(GRANT, NOW)
    commit = Session.commit

    def answer_lost(self: Session) -> None:
        commit(self)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Session, "commit", answer_lost)
    # The transaction took place: its tokens are the answer, not a 503 whose retry would be
    # the code's second use (and revoke them).
    assert codes.redeem(code, NOW, issue) == "tokens"


def test_a_redemption_that_did_not_commit_is_an_error_and_leaves_the_code(codes, monkeypatch):
    code = codes.issue(GRANT, NOW)

    def dropped(self: Session) -> None:
        self.rollback()
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Session, "commit", dropped)
    with pytest.raises(OperationalError):
        codes.redeem(code, NOW, issue)
    monkeypatch.undo()
    assert codes.redeem(code, NOW, issue) == "tokens"


def test_a_code_lasts_its_ttl_and_not_a_second_more_whatever_else_is_redeemed(codes):
    first, second = codes.issue(GRANT, NOW), codes.issue(GRANT, NOW)
    assert codes.redeem(first, NOW + 59, issue) == "tokens"
    # Redeeming the first kept its row for its access token's life, never the second's.
    with pytest.raises(InvalidGrant, match="expired"):
        codes.redeem(second, NOW + 60, issue)


def test_a_refusal_once_the_bindings_matched_leaves_the_code_spent(codes):
    code = codes.issue(GRANT, NOW)

    def user_disabled(_: CodeGrant, __: Session) -> tuple[str, Issued]:
        raise InvalidGrant("the user can no longer log in")

    with pytest.raises(InvalidGrant):
        codes.redeem(code, NOW, user_disabled)
    with pytest.raises(CodeReused) as reused:
        codes.redeem(code, NOW + 1, issue)
    assert reused.value.issued is None  # it issued nothing to revoke


def test_signing_a_user_out_drops_only_that_users_codes_not_yet_redeemed(codes):
    used, unused = codes.issue(GRANT, NOW), codes.issue(GRANT, NOW)
    others = codes.issue(replace(GRANT, user_id=2), NOW)
    codes.redeem(used, NOW, issue)
    assert codes.discard_user(GRANT.user_id) == 1
    with pytest.raises(InvalidGrant, match="invalid"):
        codes.redeem(unused, NOW + 1, issue)
    # The redeemed one still answers a replay with what to revoke.
    with pytest.raises(CodeReused) as reused:
        codes.redeem(used, NOW + 1, issue)
    assert reused.value.issued == Issued(AccessTokenRef("jti-1", NOW + 900), None)
    assert codes.redeem(others, NOW + 1, issue) == "tokens"


def test_a_replay_proves_its_client_only_with_every_binding():
    verifier = "v" * 43
    reused = CodeReused(None, "webapp", "https://app.example/cb", challenge_of(verifier))
    assert reused.sent_by_its_client("webapp", "https://app.example/cb", verifier)
    for client_id, redirect_uri, other_verifier in (
        ("spa", "https://app.example/cb", verifier),
        ("webapp", "https://app.example/other", verifier),
        ("webapp", "https://app.example/cb", "w" * 43),
    ):
        assert not reused.sent_by_its_client(client_id, redirect_uri, other_verifier)


def test_a_code_refused_as_it_is_deleted_is_refused_not_an_error(codes, monkeypatch):
    # The review: the refusal read the code's row again after its rollback (which expires what
    # the session had loaded); a code past its end, deleted in between by another code's
    # issuing on another connection, was an ObjectDeletedError (a 500), not invalid_grant.
    code = codes.issue(GRANT, NOW)
    rollback = Session.rollback

    def rollback_then_cleaned_up(self: Session) -> None:
        rollback(self)
        with codes._sessions() as other:
            other.execute(delete(AuthorizationCode))
            other.commit()

    monkeypatch.setattr(Session, "rollback", rollback_then_cleaned_up)
    with pytest.raises(InvalidGrant, match="expired"):
        codes.redeem(code, NOW + 60, issue)
