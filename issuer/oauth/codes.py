"""Authorization codes (RFC 6749 section 4.1): random, stored only as a hash, single-use,
short-lived, and bound to everything the authorization request said.

Redeeming claims the code with one conditional update and records, in the same transaction,
what was issued for it: a second use finds the code used and learns exactly which tokens to
revoke (section 4.1.2), even when both uses race on two replicas.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from issuer.oauth import pkce
from issuer.oauth.errors import InvalidGrant
from issuer.oauth.revoked_tokens import AccessTokenRef
from issuer.storage.engine import Base, UnixTime, commit_confirmed
from issuer.storage.lookup_keys import lookup_key

T = TypeVar("T")
# The longest `nonce` a code carries (into the ID token); longer requests are refused.
MAX_NONCE_LENGTH = 512


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    redirect_uri: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str | None] = mapped_column(String(MAX_NONCE_LENGTH), nullable=True)
    scope: Mapped[str] = mapped_column(String(2000))
    user_id: Mapped[int] = mapped_column(Integer)
    auth_time: Mapped[int] = mapped_column(UnixTime)
    created_at: Mapped[int] = mapped_column(UnixTime)
    # When the row may go: the code's own end while it is unused; once used, the end of the
    # access token it issued, so that a replay until then (the code's own client arriving
    # after a thief) still revokes what the thief got. Bounded: never the refresh lifetime.
    expires_at: Mapped[int] = mapped_column(UnixTime, index=True)
    used_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    # What the first use issued, revoked if the code comes back.
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_expires_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The browser session it was issued in (its id's hash): signing out there drops it unused.
    session_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization request bound its code to."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    user_id: int
    auth_time: int
    session_hash: str | None = None  # the browser session it was issued in


@dataclass(frozen=True)
class Issued:
    """What redeeming a code produced: revoked together if the code is used again."""

    access: AccessTokenRef
    family_id: str | None


class NotTheCodesRequest(InvalidGrant):
    """The request lacks one of the code's bindings (its client, redirect URI or PKCE
    verifier). Refused, and the code kept for its own client: anyone who saw a code could
    otherwise spend it, and the app's own exchange would then fail."""


class CodeReused(InvalidGrant):
    """A used code came back: what its first use issued is to be revoked, if the request
    proves it comes from the code's own client (`sent_by_its_client`)."""

    def __init__(self, issued: Issued | None, client_id: str, redirect_uri: str, challenge: str):
        super().__init__("authorization code was already used")
        self.issued = issued
        self._bindings = client_id, redirect_uri, challenge

    def sent_by_its_client(self, client_id: str, redirect_uri: str, verifier: str) -> bool:
        """Whether the replay carries every binding of the code, its PKCE verifier included:
        anyone may name a public client, but only the app that asked for the code holds the
        verifier. A code seen in a log or a Referer must not let a stranger end the session."""
        own_client, own_redirect_uri, challenge = self._bindings
        return (
            client_id == own_client
            and redirect_uri == own_redirect_uri
            and pkce.verifies(verifier, challenge)
        )


class AuthorizationCodes:
    """Issues and redeems codes; each call is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], ttl: int):
        self._sessions = sessions
        self._ttl = ttl

    def issue(
        self, grant: CodeGrant, now: int, confirm: Callable[[Session], None] | None = None
    ) -> str:
        """A new code for `grant`, valid for the configured TTL (rows past their end dropped).
        `confirm` runs in the transaction, after its first write, and refuses the code by
        raising."""
        code = secrets.token_urlsafe(32)
        with self._sessions() as session:
            session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at <= now))
            if confirm is not None:
                confirm(session)
            session.add(
                AuthorizationCode(
                    code_hash=lookup_key(code),
                    client_id=grant.client_id,
                    redirect_uri=grant.redirect_uri,
                    code_challenge=grant.code_challenge,
                    nonce=grant.nonce,
                    scope=grant.scope,
                    user_id=grant.user_id,
                    auth_time=grant.auth_time,
                    session_hash=grant.session_hash,
                    created_at=now,
                    expires_at=now + self._ttl,
                )
            )
            session.commit()
        return code

    def discard_user(self, user_id: int) -> int:
        """Drop a user's codes not yet redeemed (signed out everywhere: none may still be
        exchanged for tokens); how many there were."""
        with self._sessions() as session:
            dropped = session.execute(
                delete(AuthorizationCode)
                .where(AuthorizationCode.user_id == user_id, AuthorizationCode.used_at.is_(None))
                .returning(AuthorizationCode.code_hash)
            ).all()
            session.commit()
        return len(dropped)

    def redeem(
        self, code: str, now: int, issue: Callable[[CodeGrant, Session], tuple[T, Issued]]
    ) -> T:
        """Spend `code` and run `issue` in the same transaction.

        `issue` checks the bindings and creates the tokens, in `session` where they are
        stored. `NotTheCodesRequest` from it leaves the code unspent (guessing its PKCE
        verifier, 43 to 128 characters a client should draw with 256 bits of entropy, RFC 7636
        7.1, within the code's 60 s is paced by the address limits); any other refusal
        leaves it spent.
        """
        with self._sessions() as session:
            claimed = session.execute(
                update(AuthorizationCode)
                .where(
                    AuthorizationCode.code_hash == lookup_key(code),
                    AuthorizationCode.used_at.is_(None),
                    AuthorizationCode.expires_at > now,
                )
                .values(used_at=now)
                .returning(
                    AuthorizationCode.client_id,
                    AuthorizationCode.redirect_uri,
                    AuthorizationCode.code_challenge,
                    AuthorizationCode.nonce,
                    AuthorizationCode.scope,
                    AuthorizationCode.user_id,
                    AuthorizationCode.auth_time,
                    AuthorizationCode.session_hash,
                )
            ).first()
            if claimed is None:
                raise self._refusal(session, code)
            try:
                result, issued = issue(CodeGrant(**claimed._asdict()), session)
            except NotTheCodesRequest:
                session.rollback()  # unclaimed: still the code's own client's to redeem
                raise
            except InvalidGrant:
                session.commit()  # the code stays spent
                raise
            session.execute(
                update(AuthorizationCode)
                .where(AuthorizationCode.code_hash == lookup_key(code))
                .values(
                    access_jti=issued.access.jti,
                    access_expires_at=issued.access.expires_at,
                    family_id=issued.family_id,
                    expires_at=max(issued.access.expires_at, now + self._ttl),
                )
            )
            commit_confirmed(session, lambda: self._issued_for(code) == issued.access.jti)
        return result

    def _issued_for(self, code: str) -> str | None:
        """The access token a redeemed code issued (None before it was redeemed)."""
        with self._sessions() as session:
            return session.scalar(
                select(AuthorizationCode.access_jti).where(
                    AuthorizationCode.code_hash == lookup_key(code)
                )
            )

    def _refusal(self, session: Session, code: str) -> InvalidGrant:
        row = session.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == lookup_key(code))
        )
        # Judged before the rollback, which expires the row: read after it, the row is queried
        # again, and one deleted meanwhile (past its end, by a new code's clean-up; unused, by
        # a sign-out of its session) was an ObjectDeletedError, a 500, instead of a refusal.
        refusal = _refusal_of(row)
        session.rollback()
        return refusal


def _refusal_of(row: AuthorizationCode | None) -> InvalidGrant:
    """Why a code that could not be claimed is refused; a used one carries what it issued."""
    if row is None:
        return InvalidGrant("authorization code is invalid")
    if row.used_at is None:
        return InvalidGrant("authorization code has expired")
    issued = None
    if row.access_jti is not None and row.access_expires_at is not None:
        issued = Issued(AccessTokenRef(row.access_jti, row.access_expires_at), row.family_id)
    return CodeReused(issued, row.client_id, row.redirect_uri, row.code_challenge)
