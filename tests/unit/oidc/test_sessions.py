"""Browser sessions at the store: what starting, ending and signing out everywhere remove,
and what they leave, on both databases."""

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from issuer.oidc.sessions import BrowserSession, BrowserSessions
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
