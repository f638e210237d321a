"""Checking a user's password under the login throttle: the one routine the password grant
and the sign-in page share, so both have the same limits, the same bounded hashing and the
same answer whether or not the account exists."""

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from issuer.accounts.passwords import PasswordHasher
from issuer.accounts.users import User, UserRepository, login_still_stands, normalize_username
from issuer.limits.throttle import Throttle
from issuer.metrics import IssuerMetrics
from issuer.oauth.errors import InvalidGrant

log = logging.getLogger("issuer.audit")

# One message for unknown user, wrong password and disabled user: no account enumeration.
BAD_CREDENTIALS = "invalid username or password"


class PasswordLogin:
    def __init__(
        self,
        users: UserRepository,
        hasher: PasswordHasher,
        throttle: Throttle,
        metrics: IssuerMetrics,
    ):
        self._users = users
        self._hasher = hasher
        self._throttle = throttle
        self._metrics = metrics

    async def verify(self, username: str, password: str, address: str) -> User:
        """The user whose password this is; `InvalidGrant` for every kind of failure.

        `Throttled` and `HashingBusy` pass through: the caller answers them as it answers.
        """
        # Limits count per account, whatever spelling of the name a guesser sends.
        normalized = normalize_username(username)
        account = normalized or username
        async with self._throttle.login_turn(account, address):
            await self._throttle.check_login(account, address)
            user = await run_in_threadpool(self._users.get_by_username, username)
            # The hashing slot first: a full pool answers 503 before the attempt is counted.
            with self._hasher.slot():
                # Counted before the hash: guesses sent at once all pass `check_login`.
                await self._throttle.reserve_login(account, address)
                verification = await self._hasher.verify_in_slot(
                    password, user.password_hash if user else None
                )
            if user is None or not verification.ok or user.disabled:
                self._metrics.login_failures.labels("bad_credentials").inc()
                # The account's own name (at most 150 plain characters), never the client's
                # text: audit lines are searched by account and parsed by address.
                named = normalized or f"<no such name, {len(username)} characters>"
                log.info("login failed username=%r ip=%s", named, address)
                raise InvalidGrant(BAD_CREDENTIALS)
            # Within the turn: the next attempt in line finds the count cleared.
            await self._throttle.record_success(account, address)
        if verification.new_hash is not None:
            if await run_in_threadpool(
                self._users.update_password_hash, user.id, user.password_hash, verification.new_hash
            ):
                user.password_hash = verification.new_hash  # what `still_stands` finds stored
            else:
                user = await self._checked_again(user, password)
        return user

    async def _checked_again(self, user: User, password: str) -> User:
        """The hash this login verified was replaced meanwhile: by another login re-hashing
        the same password, or by a new password. The user as now stored if the password opens
        that hash too (`still_stands` then passes), else as verified (it then refuses)."""
        stored = await run_in_threadpool(self._users.get_by_id, user.id)
        if stored is None:
            return user
        with self._hasher.slot():
            verification = await self._hasher.verify_in_slot(password, stored.password_hash)
        return stored if verification.ok else user


def still_stands(user: User) -> Callable[[Session], None]:
    """The check for the transaction recording a login of `user` that `PasswordLogin.verify`
    returned: `InvalidGrant`, as for a wrong password, if the account was disabled or given
    a new password since (see `login_still_stands`)."""

    def check(session: Session) -> None:
        if not login_still_stands(session, user):
            log.info("login overtaken by a sign-out everywhere username=%r", user.username)
            raise InvalidGrant(BAD_CREDENTIALS)

    return check
