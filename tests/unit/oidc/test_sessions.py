"""Browser sessions at the store: what starting, ending and signing out everywhere remove,
and what they leave, on both databases."""

import contextlib
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from issuer.oauth.codes import AuthorizationCode, AuthorizationCodes, CodeGrant
from issuer.oidc.sessions import BrowserSession, BrowserSessions, SessionEnded, still_open
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.schema import prepare
from tests.support import FakeClock

TTL = 3600


@pytest.fixture
def store(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    prepare(engine)
    yield make_sessions(engine)
    engine.dispose()


def rows(store: sessionmaker[Session]) -> int:
    with store() as session:
        return session.scalar(select(func.count()).select_from(BrowserSession)) or 0


def test_ending_a_session_or_a_users_sessions_leaves_everyone_elses(
    store: sessionmaker[Session], clock: FakeClock
) -> None:
    sessions = BrowserSessions(store, TTL, clock)
    alices = [sessions.start(1), sessions.start(1)]
    bobs = sessions.start(2)
    sessions.end(alices[0])
    assert sessions.find(alices[0]) is None
    assert sessions.find(alices[1]) is not None and sessions.find(bobs) is not None
    assert sessions.end_all(1) == 1
    assert sessions.find(alices[1]) is None
    found = sessions.find(bobs)
    assert found is not None and found.user_id == 2


def test_a_sign_in_drops_the_sessions_that_have_ended(
    store: sessionmaker[Session], clock: FakeClock
) -> None:
    # However many browsers never come back: their rows go, not only their cookies.
    sessions = BrowserSessions(store, TTL, clock)
    sessions.start(1)
    clock.advance(1)
    younger = sessions.start(2)
    clock.advance(TTL - 1)  # the first has just ended (its expires_at is now)
    assert rows(store) == 2
    sessions.start(3)
    assert rows(store) == 2 and sessions.find(younger) is not None


def test_a_logout_while_its_session_is_issued_a_code_ends_both_without_a_deadlock(
    store: sessionmaker[Session], clock: FakeClock
) -> None:
    # The review: /logout deleted the session's row, then its unused codes; a code being
    # stored for that session had already deleted the codes past their end (one of them the
    # session's, never exchanged) and waited for the session's row (`still_open`): on
    # PostgreSQL a deadlock, the logout aborted and the user still signed in.
    sessions, codes = BrowserSessions(store, TTL, clock), AuthorizationCodes(store, 60)
    session_id = sessions.start(1)
    signed_in = sessions.find(session_id)
    assert signed_in is not None
    now = int(clock())
    grant = CodeGrant(
        "spa", "https://spa.example/cb", "c" * 43, None, "openid", 1, now, signed_in.id_hash
    )
    codes.issue(grant, now - 120)  # abandoned: past its end, unused
    clock.advance(1)
    failed: list[Exception] = []

    def logout() -> None:
        try:
            sessions.end(session_id)
        except Exception as exc:  # reported below, not lost on the thread
            failed.append(exc)

    ending = threading.Thread(target=logout)

    def logout_meanwhile(session: Session) -> None:
        ending.start()
        ending.join(0.5)  # until it waits on this transaction
        still_open(signed_in)(session)

    with contextlib.suppress(SessionEnded):  # or stored first, and dropped by the logout
        codes.issue(grant, int(clock()), logout_meanwhile)
    ending.join(10)
    assert failed == []
    assert sessions.find(session_id) is None
    with store() as session:
        assert session.scalar(select(func.count()).select_from(AuthorizationCode)) == 0
