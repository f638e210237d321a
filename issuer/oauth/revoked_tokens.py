"""Revoked access tokens, remembered by `jti` until they would have expired (RFC 7009).

The database is the record, shared by every replica: a revocation is written there before
`/revoke` answers, and nothing is forgotten before the token's `exp` (expired entries are
deleted as new ones arrive). `/introspect` and `/userinfo` ask, each with one primary-key lookup.
"""

from dataclasses import dataclass

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

from issuer.storage.engine import Base, UnixTime, insert_ignoring_conflicts


@dataclass(frozen=True)
class AccessTokenRef:
    """An access token as far as revoking it goes: its `jti`, and when it expires anyway."""

    jti: str
    expires_at: int


class RevokedAccessToken(Base):
    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(UnixTime, index=True)


class RevokedTokens:
    """Which access tokens are revoked; entries vanish once the token has expired anyway."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    async def revoke(self, tokens: list[AccessTokenRef], now: int) -> None:
        live = [token for token in tokens if token.expires_at > now]
        if live:
            await run_in_threadpool(self._store, live, now)

    async def is_revoked(self, jti: str) -> bool:
        return await run_in_threadpool(self._find, jti)

    def _store(self, tokens: list[AccessTokenRef], now: int) -> None:
        with self._sessions() as session:
            revoke_in(session, tokens, now)
            session.commit()

    def _find(self, jti: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(
                select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti)
            )
        return found is not None


def revoke_in(session: Session, tokens: list[AccessTokenRef], now: int) -> None:
    """Record `tokens` as revoked in `session`'s transaction (the caller commits), so that a
    revocation made with other changes (a refresh family's) stands or falls with them."""
    session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= now))
    live = [
        {"jti": token.jti, "expires_at": token.expires_at}
        for token in tokens
        if token.expires_at > now
    ]
    if live:
        insert_ignoring_conflicts(session, RevokedAccessToken, live)
