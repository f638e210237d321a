"""Revoked access tokens, remembered by `jti` until they would have expired (RFC 7009).

With Redis configured the ids live there (shared by replicas, expiring by themselves);
the database holds them otherwise, and whenever Redis cannot be written, so a revocation is
never lost. Lookups check Redis first, then the database.
"""

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError
from sqlalchemy import Integer, String, delete, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

from issuer.oauth.refresh_tokens import AccessTokenRef
from issuer.storage.engine import Base

log = logging.getLogger(__name__)


class RevokedAccessToken(Base):
    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


class RevokedTokens:
    """Which access tokens are revoked; entries vanish once the token has expired anyway."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: "redis.Redis | None" = None,
        prefix: str = "issuer:",
    ):
        self._sessions = sessions
        self._redis = client
        self._prefix = prefix + "revoked:"

    async def revoke(self, tokens: list[AccessTokenRef], now: int) -> None:
        live = [token for token in tokens if token.expires_at > now]
        if not live:
            return
        if self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for token in live:
                        pipe.set(self._prefix + token.jti, 1, exat=token.expires_at)
                    await pipe.execute()
                return
            except (RedisError, OSError) as exc:
                log.warning("Redis unavailable (%s); revocation stored in the database", exc)
        await run_in_threadpool(self._revoke_in_database, live, now)

    async def is_revoked(self, jti: str) -> bool:
        if self._redis is not None:
            try:
                if await self._redis.exists(self._prefix + jti):
                    return True
            except (RedisError, OSError) as exc:
                log.warning("Redis unavailable (%s); checking revocations in the database", exc)
        return await run_in_threadpool(self._revoked_in_database, jti)

    def _revoke_in_database(self, tokens: list[AccessTokenRef], now: int) -> None:
        with self._sessions() as session:
            session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= now))
            # Revoked concurrently elsewhere is the same outcome: insert-or-ignore.
            insert = (
                postgres_insert
                if session.get_bind().dialect.name == "postgresql"
                else sqlite_insert
            )
            rows = [{"jti": token.jti, "expires_at": token.expires_at} for token in tokens]
            session.execute(insert(RevokedAccessToken).values(rows).on_conflict_do_nothing())
            session.commit()

    def _revoked_in_database(self, jti: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(
                select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti)
            )
        return found is not None
