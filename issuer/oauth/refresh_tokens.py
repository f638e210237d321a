"""Refresh tokens: opaque, stored only as a hash, rotated on every use (RFC 9700 4.14).

Each token belongs to a family (one login). Using a token marks it used and issues its
successor in the same transaction; presenting a used token again revokes the whole family,
since either the client or an attacker holds a stolen copy.

A family ends when none of its tokens can be used again and every access token issued with
them has expired (until then a replayed token still revokes those); each login deletes a few
families that have ended, so the tables hold the live sessions and not every login ever.

Every transaction that rotates within a family or revokes it starts by locking the family's
row. The lock puts them in one order: a revocation sees every successor committed before it
(a snapshot taken after the lock), and a rotation after a revocation finds the family
revoked. Without it, a replay racing a rotation on PostgreSQL (READ COMMITTED) revoked the
family but missed the successor committed meanwhile, which kept working.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import ColumnElement, Integer, String, and_, delete, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from issuer.oauth.errors import InvalidGrant
from issuer.oauth.revoked_tokens import AccessTokenRef, revoke_in
from issuer.storage.engine import Base, RowId, UnixTime, commit_confirmed
from issuer.storage.lookup_keys import lookup_key

T = TypeVar("T")


class RefreshFamily(Base):
    """One login's chain of refresh tokens; its row is the lock rotation and revocation share."""

    __tablename__ = "refresh_token_families"

    family_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[int] = mapped_column(UnixTime)
    updated_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    # When its newest token's idle end and access token's expiry have both passed.
    ends_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True, index=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    # One per login and per rotation, never reused: 32 bits ran out (see migration 0010).
    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    scope: Mapped[str] = mapped_column(String(2000), default="")
    # The access token issued with this refresh token, revoked with the family on reuse.
    access_jti: Mapped[str] = mapped_column(String(64))
    access_expires_at: Mapped[int] = mapped_column(UnixTime)
    created_at: Mapped[int] = mapped_column(UnixTime)
    idle_expires_at: Mapped[int] = mapped_column(UnixTime)
    family_expires_at: Mapped[int] = mapped_column(UnixTime)
    used_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)


@dataclass(frozen=True)
class RefreshGrant:
    """What a valid refresh token carries forward to its successor."""

    family_id: str
    client_id: str
    user_id: int
    scope: str
    family_expires_at: int


class FamilyRevoked(InvalidGrant):
    """A used refresh token came back: the family is revoked, with its live access tokens."""

    def __init__(self, access_tokens: list[AccessTokenRef]):
        super().__init__("refresh token was already used; the session has been revoked")
        self.access_tokens = access_tokens


def _find(session: Session, token: str) -> RefreshToken | None:
    return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == lookup_key(token)))


def _usable(now: int) -> ColumnElement[bool]:
    """The one rule for a refresh token that may still be used: the SQL every check shares."""
    return and_(
        RefreshToken.used_at.is_(None),
        RefreshToken.revoked_at.is_(None),
        RefreshToken.idle_expires_at > now,
        RefreshToken.family_expires_at > now,
    )


class RefreshTokenStore:
    """Issues, rotates and revokes refresh tokens; each call is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], absolute_ttl: int, idle_ttl: int):
        self._sessions = sessions
        self._absolute_ttl = absolute_ttl
        self._idle_ttl = idle_ttl

    def start_family(
        self,
        *,
        client_id: str,
        user_id: int,
        scope: str,
        access: AccessTokenRef,
        now: int,
        confirm: Callable[[Session], None] | None = None,
    ) -> str:
        """The first token of a new family (a login); `confirm` runs in its transaction,
        after its writes, and refuses it by raising."""
        with self._sessions() as session:
            token, _ = self.start_family_in(
                session, client_id=client_id, user_id=user_id, scope=scope, access=access, now=now
            )
            if confirm is not None:
                confirm(session)
            session.commit()
        return token

    def start_family_in(
        self,
        session: Session,
        *,
        client_id: str,
        user_id: int,
        scope: str,
        access: AccessTokenRef,
        now: int,
    ) -> tuple[str, str]:
        """`start_family` inside the caller's transaction; the token and its family id."""
        family_id = secrets.token_hex(16)
        grant = RefreshGrant(family_id, client_id, user_id, scope, now + self._absolute_ttl)
        token, ends_at = self._add(session, grant, access, now)
        session.add(
            RefreshFamily(
                family_id=family_id,
                client_id=client_id,
                user_id=user_id,
                created_at=now,
                ends_at=ends_at,
            )
        )
        # After the writes: on SQLite a transaction that reads first may find its snapshot
        # stale when it comes to write.
        session.flush()
        _delete_ended_families(session, now)
        return token, family_id

    def rotate(
        self,
        token: str,
        client_id: str,
        now: int,
        issue: Callable[[RefreshGrant, Session], tuple[T, AccessTokenRef]],
    ) -> tuple[T, str]:
        """Spend `token` and issue its successor atomically; `issue` builds the access token.

        Two concurrent uses of one token: the family lock lets exactly one claim it; the
        other finds it used, which is reuse.
        """
        family_id = self._family_of(token)  # never changes, so it may be read apart
        if family_id is None:
            raise InvalidGrant("refresh token is invalid")
        with self._sessions() as session:
            # The lock is the first statement: SQLite then takes its write lock at once
            # (no stale read snapshot), PostgreSQL the family's row lock.
            if not _lock_live_family(session, family_id, now):
                session.rollback()
                raise InvalidGrant("refresh token has been revoked")
            claimed = session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.token_hash == lookup_key(token),
                    RefreshToken.client_id == client_id,
                    RefreshToken.family_id == family_id,
                    _usable(now),
                )
                .values(used_at=now)
                .returning(RefreshToken.user_id, RefreshToken.scope, RefreshToken.family_expires_at)
            ).first()
            if claimed is None:
                raise self._refusal(session, token, client_id, now)
            user_id, scope, family_expires_at = claimed
            grant = RefreshGrant(family_id, client_id, user_id, scope, family_expires_at)
            result, access = issue(grant, session)
            successor, ends_at = self._add(session, grant, access, now)
            session.execute(
                update(RefreshFamily)
                .where(RefreshFamily.family_id == family_id)
                .values(ends_at=ends_at)
            )
            commit_confirmed(session, lambda: self.find(successor) is not None)
        return result, successor

    def _refusal(self, session: Session, token: str, client_id: str, now: int) -> InvalidGrant:
        """Why a token could not be claimed; a used one revokes its family (reuse).

        Runs inside the rotation's transaction, which holds the family lock.
        """
        row = _find(session, token)
        if row is None or row.client_id != client_id:
            session.rollback()
            return InvalidGrant("refresh token is invalid")
        if row.used_at is not None:
            return self._revoke_locked_family(session, row.family_id, now)
        # Read before the rollback, which expires the row: read after it, the row is queried
        # again, and one a login's clean-up deleted meanwhile (its family had ended) was an
        # ObjectDeletedError, a 500, instead of this refusal.
        revoked, family_expires_at = row.revoked_at is not None, row.family_expires_at
        session.rollback()
        if revoked:
            return InvalidGrant("refresh token has been revoked")
        if now >= family_expires_at:
            return InvalidGrant("refresh token has expired (session lifetime reached)")
        return InvalidGrant("refresh token has expired (unused for too long)")

    def _family_of(self, token: str) -> str | None:
        with self._sessions() as session:
            return session.scalar(
                select(RefreshToken.family_id).where(RefreshToken.token_hash == lookup_key(token))
            )

    def find(self, token: str) -> RefreshToken | None:
        """The stored token, whatever its state."""
        with self._sessions() as session:
            return _find(session, token)

    def find_usable(self, token: str, now: int) -> RefreshToken | None:
        """The stored token if it could be used now (introspection's `active`)."""
        with self._sessions() as session:
            return session.scalar(
                select(RefreshToken).where(
                    RefreshToken.token_hash == lookup_key(token), _usable(now)
                )
            )

    def revoke_family(self, family_id: str, now: int) -> list[AccessTokenRef]:
        """Revoke every token of a family and the access tokens issued with them; return
        those access tokens that are still live."""
        with self._sessions() as session:
            _lock_family(session, family_id, now)
            error = self._revoke_locked_family(session, family_id, now)
        return error.access_tokens

    def revoke_user(self, user_id: int, now: int) -> int:
        """Revoke every family of a user (signed out everywhere: a new password, a disabled
        account) with the access tokens issued with them; how many families there were."""
        with self._sessions() as session:
            families = session.scalars(
                select(RefreshFamily.family_id).where(
                    RefreshFamily.user_id == user_id, RefreshFamily.revoked_at.is_(None)
                )
            ).all()
        for family_id in families:
            self.revoke_family(family_id, now)
        return len(families)

    def _revoke_locked_family(self, session: Session, family_id: str, now: int) -> FamilyRevoked:
        """Revoke a family whose lock `session` holds, its access tokens in the same
        transaction (never the family without them), and commit."""
        session.execute(
            update(RefreshFamily)
            .where(RefreshFamily.family_id == family_id, RefreshFamily.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        live = session.execute(
            select(RefreshToken.access_jti, RefreshToken.access_expires_at).where(
                RefreshToken.family_id == family_id, RefreshToken.access_expires_at > now
            )
        ).all()
        access_tokens = [AccessTokenRef(jti, exp) for jti, exp in live]
        revoke_in(session, access_tokens, now)
        session.commit()
        return FamilyRevoked(access_tokens)

    def _add(
        self, session: Session, grant: RefreshGrant, access: AccessTokenRef, now: int
    ) -> tuple[str, int]:
        """The family's newest token, and when the family ends with it as its newest (its
        predecessors' ends come before)."""
        token = secrets.token_urlsafe(32)
        idle_expires_at = min(now + self._idle_ttl, grant.family_expires_at)
        session.add(
            RefreshToken(
                token_hash=lookup_key(token),
                family_id=grant.family_id,
                client_id=grant.client_id,
                user_id=grant.user_id,
                scope=grant.scope,
                access_jti=access.jti,
                access_expires_at=access.expires_at,
                created_at=now,
                idle_expires_at=idle_expires_at,
                family_expires_at=grant.family_expires_at,
            )
        )
        return token, max(idle_expires_at, access.expires_at)


# Families deleted by one login at most: the work a login adds stays small, and logins
# outnumber the families that end.
ENDED_FAMILIES_PER_LOGIN = 20


def _delete_ended_families(session: Session, now: int) -> None:
    # Locked as every family is, first; on PostgreSQL two logins at once take different
    # families (SKIP LOCKED) instead of waiting on, or deadlocking over, the same ones.
    # `ends_at` picks the candidates; the tokens decide. An issuer of a version before it,
    # still serving while replicas are upgraded, rotates without moving `ends_at`, and starts
    # families without one (NULL): those are candidates from the start.
    live_token = select(RefreshToken.id).where(
        RefreshToken.family_id == RefreshFamily.family_id,
        or_(RefreshToken.idle_expires_at > now, RefreshToken.access_expires_at > now),
    )
    ended = list(
        session.scalars(
            select(RefreshFamily.family_id)
            .where(
                or_(RefreshFamily.ends_at <= now, RefreshFamily.ends_at.is_(None)),
                ~live_token.exists(),
            )
            .limit(ENDED_FAMILIES_PER_LOGIN)
            .with_for_update(skip_locked=True)
        )
    )
    if ended:
        session.execute(delete(RefreshToken).where(RefreshToken.family_id.in_(ended)))
        session.execute(delete(RefreshFamily).where(RefreshFamily.family_id.in_(ended)))


def _lock_family(session: Session, family_id: str, now: int) -> None:
    """Take the family's row lock (SQLite: the database write lock)."""
    session.execute(
        update(RefreshFamily).where(RefreshFamily.family_id == family_id).values(updated_at=now)
    )


def _lock_live_family(session: Session, family_id: str, now: int) -> bool:
    """Take the family's lock; False if the family is revoked (or unknown)."""
    locked = session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.family_id == family_id, RefreshFamily.revoked_at.is_(None))
        .values(updated_at=now)
        .returning(RefreshFamily.family_id)
    ).first()
    return locked is not None
