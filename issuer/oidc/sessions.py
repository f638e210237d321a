"""Browser sessions at the issuer: a random id in a cookie, its hash in the database, so
every replica sees a sign-in made at any other (single sign-on across apps)."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from issuer.oauth.codes import AuthorizationCode
from issuer.storage.engine import Base, UnixTime
from issuer.storage.lookup_keys import lookup_key


class BrowserSession(Base):
    __tablename__ = "browser_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    auth_time: Mapped[int] = mapped_column(UnixTime)
    created_at: Mapped[int] = mapped_column(UnixTime)
    expires_at: Mapped[int] = mapped_column(UnixTime, index=True)


@dataclass(frozen=True)
class SignedIn:
    """Who a browser session belongs to, and when they last typed their password."""

    user_id: int
    auth_time: int
    id_hash: str  # the session's row, which a code issued for it locks (`still_open`)


class SessionEnded(Exception):
    """The session a request was found signed in with ended before its code was stored."""


def still_open(signed_in: SignedIn) -> Callable[[Session], None]:
    """The check for the transaction storing a code issued to `signed_in`: `SessionEnded` if
    the session has ended since it was found (/logout, or signed out everywhere). Run after
    a write: its row stays locked until the code is committed (PostgreSQL: FOR SHARE; SQLite:
    the write lock), so ending it either waits and is followed by dropping that code (signed
    out everywhere), or comes first and is seen here. Without it a code stored just after
    the sign-out dropped the user's codes outlived a new password."""

    def check(session: Session) -> None:
        found = session.scalar(
            select(BrowserSession.id_hash)
            .where(BrowserSession.id_hash == signed_in.id_hash)
            .with_for_update(read=True)
        )
        if found is None:
            raise SessionEnded()

    return check


class BrowserSessions:
    def __init__(
        self, sessions: sessionmaker[Session], ttl: int, clock: Callable[[], float] = time.time
    ):
        self._sessions = sessions
        self.ttl = ttl
        self._clock = clock

    def start(
        self,
        user_id: int,
        replacing: str | None = None,
        confirm: Callable[[Session], None] | None = None,
    ) -> str:
        """A new session (always a new id: no session fixation), ending the one the browser
        held (`replacing`): a copy of its old cookie must not stay signed in. Expired ones
        are dropped. `confirm` runs in the transaction, after its first write, and refuses
        the session by raising."""
        now = int(self._clock())
        session_id = secrets.token_urlsafe(32)
        ended = BrowserSession.expires_at <= now
        if replacing:
            ended |= BrowserSession.id_hash == lookup_key(replacing)
        with self._sessions() as session:
            session.execute(delete(BrowserSession).where(ended))
            if confirm is not None:
                confirm(session)
            session.add(
                BrowserSession(
                    id_hash=lookup_key(session_id),
                    user_id=user_id,
                    auth_time=now,
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
            session.commit()
        return session_id

    def find(self, session_id: str | None) -> SignedIn | None:
        if not session_id or len(session_id) > 128:
            return None
        now = int(self._clock())
        with self._sessions() as session:
            row = session.scalar(
                select(BrowserSession).where(
                    BrowserSession.id_hash == lookup_key(session_id),
                    BrowserSession.expires_at > now,
                )
            )
        return SignedIn(row.user_id, row.auth_time, row.id_hash) if row else None

    def end(self, session_id: str | None) -> None:
        """End a session (/logout), and the codes issued in it not yet exchanged: an app
        must not sign the user in after they signed out. A code being stored meanwhile holds
        the session's row (`still_open`), so it is committed before this and dropped here."""
        if not session_id:
            return
        id_hash = lookup_key(session_id)
        unused = delete(AuthorizationCode).where(
            AuthorizationCode.session_hash == id_hash, AuthorizationCode.used_at.is_(None)
        )
        with self._sessions() as session:
            # Its codes before its row as well: a code being stored deletes the codes past
            # their end (an abandoned one of this session among them) before it holds the
            # row, so taking the row first and those codes after was, on PostgreSQL, a
            # deadlock that aborted the logout. The second pass drops a code committed by
            # one that held the row until this took it.
            session.execute(unused)
            session.execute(delete(BrowserSession).where(BrowserSession.id_hash == id_hash))
            session.execute(unused)
            session.commit()

    def end_all(self, user_id: int) -> int:
        """End every session of a user (signed out everywhere); how many there were."""
        with self._sessions() as session:
            ended = session.execute(
                delete(BrowserSession)
                .where(BrowserSession.user_id == user_id)
                .returning(BrowserSession.id_hash)
            ).all()
            session.commit()
        return len(ended)
