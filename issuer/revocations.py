"""Revoked access tokens, remembered by `jti` until they would have expired (RFC 7009)."""

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from issuer.db import Base
from issuer.refresh_tokens import AccessTokenRef


class RevokedAccessToken(Base):
    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


class RevocationList:
    """Which access tokens are revoked; entries vanish once the token has expired anyway."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def revoke(self, tokens: list[AccessTokenRef], now: int) -> None:
        with self._sessions() as session:
            session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= now))
            for token in tokens:
                if token.expires_at > now and session.get(RevokedAccessToken, token.jti) is None:
                    session.add(RevokedAccessToken(jti=token.jti, expires_at=token.expires_at))
            try:
                session.commit()
            except IntegrityError:  # revoked concurrently by someone else: same outcome
                session.rollback()

    def is_revoked(self, jti: str) -> bool:
        with self._sessions() as session:
            return (
                session.scalar(select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti))
                is not None
            )
