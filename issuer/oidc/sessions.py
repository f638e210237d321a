"""Browser sessions at the issuer: a random id in a cookie, its hash in the database, so
every replica sees a sign-in made at any other (single sign-on across apps)."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

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
        return SignedIn(row.user_id, row.auth_time) if row else None

    def end(self, session_id: str | None) -> None:
        if not session_id:
            return
        with self._sessions() as session:
            session.execute(
                delete(BrowserSession).where(BrowserSession.id_hash == lookup_key(session_id))
            )
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
