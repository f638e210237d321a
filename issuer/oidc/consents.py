"""Consent: what a user allowed a client, remembered per client and scope set."""

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from issuer.storage.engine import Base, UnixTime, insert_ignoring_conflicts


class Consent(Base):
    __tablename__ = "consents"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    # The granted scope set, sorted and space-separated.
    scope: Mapped[str] = mapped_column(String(2000), primary_key=True)
    granted_at: Mapped[int] = mapped_column(UnixTime)


class Consents:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def covers(self, user_id: int, client_id: str, scope: tuple[str, ...]) -> bool:
        """Whether the user already allowed this client at least these scopes."""
        wanted = set(scope)
        with self._sessions() as session:
            granted = session.scalars(
                select(Consent.scope).where(
                    Consent.user_id == user_id, Consent.client_id == client_id
                )
            )
            return any(wanted <= set(value.split()) for value in granted)

    def remember(self, user_id: int, client_id: str, scope: tuple[str, ...], now: int) -> None:
        with self._sessions() as session:
            row = {
                "user_id": user_id,
                "client_id": client_id,
                "scope": " ".join(sorted(scope)),
                "granted_at": now,
            }
            insert_ignoring_conflicts(session, Consent, [row])
            session.commit()
