"""Users: the table, and the repository that reads and writes it."""

import re
from datetime import UTC, datetime

import precis_i18n
from sqlalchemy import Boolean, DateTime, Integer, String, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from issuer.storage.engine import Base, UnixTime, too_long

# After RFC 8265 UsernameCaseMapped (width-mapped, case-folded, NFC): this ASCII subset.
_USERNAME = re.compile(r"[a-z0-9._@+-]{1,150}")
_USERNAME_PROFILE = precis_i18n.get_profile("UsernameCaseMapped")
# A code point maps to at most one of the 150 allowed (and NFC composes at most four into one):
# anything longer has no spelling, and is refused before PRECIS, whose normalisation is
# quadratic in long runs of combining marks (64 KB of them held the event loop for a second).
_MAX_USERNAME_INPUT = 4 * 150


def normalize_username(username: str) -> str | None:
    """The one spelling a username is stored and looked up under; None if it has none.

    "Alice", "ALICE" and the full-width spelling of "Alice" are all "alice".
    """
    if len(username) > _MAX_USERNAME_INPUT:
        return None
    try:
        normalized = _USERNAME_PROFILE.enforce(username)
    except UnicodeError:
        return None
    return normalized if _USERNAME.fullmatch(normalized) else None


class UserError(ValueError):
    """A user cannot be created as asked."""


# RFC 5321 4.5.3.1.3: a path is at most 256 octets, two of them its angle brackets.
_MAX_EMAIL = 254


def check_email(email: str) -> None:
    """Refuse what is not plausibly an address (/userinfo gives it out as one); no DNS."""
    local, _, domain = email.partition("@")
    if (
        email.count("@") != 1
        or not local
        or not domain
        or len(email) > _MAX_EMAIL
        or any(c.isspace() or not c.isprintable() for c in email)
    ):
        raise UserError(
            f"email {email!r} is not an email address: one @ between a name and a domain, "
            f"no spaces or control characters, at most {_MAX_EMAIL} characters"
        )


class UserExists(UserError):
    """The name is taken (possibly by a creation that raced ours)."""


class User(Base):
    __tablename__ = "users"
    # Tokens, sessions, consents and codes name a user by id: SQLite must never give a
    # deleted user's id to a new one (without AUTOINCREMENT it reuses the highest).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True, index=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(String(2000), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
    # When the account was last signed out everywhere (disabled, or given a new password):
    # access tokens issued until then no longer speak for it at the issuer.
    signed_out_at: Mapped[int | None] = mapped_column(UnixTime, nullable=True)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    def honours(self, issued_at: object) -> bool:
        """Whether an access token issued at `issued_at` (its `iat`) still speaks for this
        account: it is enabled, and the token is newer than its last sign-out everywhere.
        `iat` is whole seconds, so a token of that very second is refused too, whether it
        came just before the sign-out or just after."""
        if self.disabled:
            return False
        if self.signed_out_at is None:
            return True
        return (
            isinstance(issued_at, int | float)
            and not isinstance(issued_at, bool)
            and issued_at > self.signed_out_at
        )


class UserRepository:
    """Reads and writes users; every call is one short transaction."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def get_by_username(self, username: str) -> User | None:
        """The user of any spelling of `username` (see `normalize_username`)."""
        normalized = normalize_username(username)
        if normalized is None:
            return None
        with self._sessions() as session:
            return session.scalar(select(User).where(User.username == normalized))

    def hash_costs(self) -> dict[int, int]:
        """How many accounts have a bcrypt hash ("$2b$12$...") at each cost."""
        cost = func.substr(User.password_hash, 5, 2)
        with self._sessions() as session:
            rows = session.execute(
                select(cost, func.count()).where(User.password_hash.like("$2_$__$%")).group_by(cost)
            ).all()
        return {int(c): n for c, n in rows if c.isdigit()}

    def get_by_id(self, user_id: int, session: Session | None = None) -> User | None:
        """The user, read in `session` (a caller's transaction) if one is given."""
        if session is not None:
            return session.get(User, user_id)
        with self._sessions() as own:
            return own.get(User, user_id)

    def create(
        self,
        username: str,
        password_hash: str,
        email: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> User:
        """Insert a user under the normalized name; `UserError` if it is invalid or taken."""
        normalized = normalize_username(username)
        if normalized is None:
            raise UserError(
                "username must be 1-150 characters of ASCII letters, digits and . _ @ + -"
            )
        if email is not None:
            check_email(email)
        user = User(
            username=normalized,
            email=email,
            password_hash=password_hash,
            scopes=" ".join(scopes),
        )
        if fields := too_long(user):
            raise UserError(f"too long for a user: {', '.join(fields)}")
        with self._sessions() as session:
            session.add(user)
            try:
                session.commit()
            except IntegrityError:
                raise UserExists(f"user {normalized!r} already exists") from None
        return user

    def set_password_hash(self, user_id: int, password_hash: str, now: int) -> None:
        """A new password, set by an operator: the account is signed out everywhere `now`
        (`User.honours`)."""
        self._update(user_id, password_hash=password_hash, signed_out_at=now)

    def set_disabled(self, user_id: int, disabled: bool, now: int) -> None:
        """Disable (or enable again) an account: a disabled one cannot sign in, refresh or
        open /userinfo, and its tokens introspect inactive; disabling signs it out everywhere
        `now`, so enabling it again brings back no token issued before. Accounts are never
        deleted, so no new account can take an old one's id (and with it its tokens' `sub`)."""
        if disabled:
            self._update(user_id, disabled=True, signed_out_at=now)
        else:
            self._update(user_id, disabled=False)

    def _update(self, user_id: int, **values: object) -> None:
        with self._sessions() as session:
            session.execute(update(User).where(User.id == user_id).values(**values))
            session.commit()

    def update_password_hash(self, user_id: int, verified_hash: str, new_hash: str) -> bool:
        """Replace the hash a login just verified (a re-hash at the current cost); a hash
        changed since is kept. Whether it was replaced."""
        with self._sessions() as session:
            replaced = session.execute(
                update(User)
                .where(User.id == user_id, User.password_hash == verified_hash)
                .values(password_hash=new_hash)
                .returning(User.id)
            ).first()
            session.commit()
        return replaced is not None


def login_still_stands(session: Session, user: User) -> bool:
    """Whether a login that just verified `user` may still be recorded (a refresh family, a
    browser session): the account is enabled and stores the password hash it verified. Run in
    the transaction that records it, after a write: the row stays locked until that commits
    (PostgreSQL: FOR SHARE; SQLite: the write lock), so signing out everywhere, which changes
    this row first, either waits and then ends the new record, or comes first and is seen
    here. Without it a login in flight (its hash read before a new password or a disabling,
    its record written after the sign-out looked) kept a session nobody could end."""
    row = session.execute(
        select(User.password_hash, User.disabled)
        .where(User.id == user.id)
        .with_for_update(read=True)
    ).first()
    return row is not None and not row.disabled and row.password_hash == user.password_hash


# A user's subject: the id as `str(id)` writes it, within the id column's range (`Integer`:
# 32 bits on PostgreSQL, which refuses even to compare it with a larger number).
_USER_SUBJECT = re.compile(r"[1-9][0-9]{0,9}")
_MAX_USER_ID = 2**31 - 1


def user_id_of(subject: str) -> int | None:
    """The user a token's `sub` names: users' subjects are their ids; None for a client's
    own token (`client:<id>`) and for anything no user's id is written as (`007`, or a number
    too large for the column, which the database answered with an error: a 500)."""
    if not _USER_SUBJECT.fullmatch(subject):
        return None
    user_id = int(subject)
    return user_id if user_id <= _MAX_USER_ID else None
