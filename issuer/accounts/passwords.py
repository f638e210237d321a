"""Password hashing (bcrypt behind passlib's CryptContext), run off the event loop."""

import asyncio
import contextlib
import logging
import math
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import precis_i18n
from passlib.context import CryptContext

log = logging.getLogger(__name__)

# bcrypt reads at most 72 bytes; longer passwords are refused rather than silently truncated.
MAX_PASSWORD_BYTES = 72
# NFC composes at most four code points into one character of at least one byte: a longer
# input cannot come within MAX_PASSWORD_BYTES.
_MAX_PASSWORD_INPUT = 4 * MAX_PASSWORD_BYTES
# RFC 8265 section 4: passwords are compared in the OpaqueString profile (NFC, non-ASCII
# spaces as U+0020; control characters such as NUL are not allowed), at creation and login.
_OPAQUE_STRING = precis_i18n.get_profile("OpaqueString")
MIN_PASSWORD_LENGTH = 8
_NEVER_MATCHES = "not-the-dummy-password"


class PasswordPolicyError(ValueError):
    """A new password is not acceptable."""


class HashingBusy(Exception):
    """Every hashing worker and queue slot is taken; the caller should retry shortly."""


@dataclass(frozen=True)
class Verification:
    ok: bool
    # A fresh hash when the stored one uses outdated parameters (CryptContext.needs_update).
    new_hash: str | None = None


# The most a failed check is padded to, in bcrypt runs at the current cost: stored hashes far
# costlier than the setting are a configuration error (named at start), not a reason to let
# every wrong password cost hundreds of runs.
MAX_PADDING_RUNS = 16


class PasswordHasher:
    """Hashes and verifies passwords. A failed verification costs the same work whatever the
    account: at least one bcrypt run at the current cost, and as much as a check of the
    costliest stored hash (`expect_cost`), so that neither an unknown user nor an account
    hashed at another cost answers at another speed."""

    def __init__(self, rounds: int, workers: int | None = None, queue: int = 64):
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._rounds = rounds
        self._highest_cost = rounds
        self.workers = workers or os.cpu_count() or 1
        # Past workers + queue waiting verifications, callers are turned away at once.
        self._capacity = self.workers + queue
        self._pending = 0
        # Unknown users are checked against this, so they cost the same as a wrong password.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))
        # bcrypt releases the GIL, so one thread per core uses every core.
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bcrypt")

    def hash(self, password: str) -> str:
        return str(self._context.hash(check_password_policy(password)))

    def expect_stored(self, costs: dict[int, int]) -> None:
        """The stored hashes' costs (accounts at each): pad to the costliest, and name the
        accounts hashed at another cost than the setting (each is re-hashed at the current
        cost at its next successful login)."""
        for cost in costs:
            self.expect_cost(cost)
        other = {cost: n for cost, n in sorted(costs.items()) if cost != self._rounds}
        if not other:
            return
        hidden = self._rounds + MAX_PADDING_RUNS.bit_length() - 1  # the costliest padded to
        log.warning(
            "password hashes at another bcrypt cost than ISSUER_BCRYPT_ROUNDS=%d: %s; each is "
            "re-hashed at its next login, and until then every failed login is padded to a "
            "check at cost %d%s",
            self._rounds,
            ", ".join(f"{n} at cost {cost}" for cost, n in other.items()),
            min(self._highest_cost, hidden),
            ""
            if self._highest_cost <= hidden
            else f" (at most {MAX_PADDING_RUNS} runs): a wrong password for an account above "
            f"cost {hidden} still answers more slowly than for an unknown user; set "
            "ISSUER_BCRYPT_ROUNDS to the cost the accounts were made with",
        )

    def expect_cost(self, cost: int) -> None:
        """A stored hash is at bcrypt `cost`: failed checks are padded to what it costs."""
        if cost > self._highest_cost:
            self._highest_cost = cost

    def verify(self, password: str, stored_hash: str | None) -> Verification:
        """Check `password`; whatever makes it fail, the work done is the same (see the
        class). A correct password re-hashes at the current cost (`new_hash`)."""
        prepared = prepare_password(password)
        # A password that cannot match (no user, a forbidden character such as NUL, over 72
        # bytes, which bcrypt would truncate) is checked against the dummy hash instead, so
        # nothing about the account shows in the time the answer takes.
        if stored_hash is None or prepared is None or _too_long(prepared):
            self._pad(spent=0.0)
            return Verification(ok=False)
        try:
            cost = self._cost(stored_hash)
            ok, new_hash = self._context.verify_and_update(prepared, stored_hash)
        except ValueError:
            log.error("stored password hash is unreadable; treating as a failed login")
            self._pad(spent=0.0)  # as long as any other failure takes
            return Verification(ok=False)
        self.expect_cost(cost)
        spent = 2.0 ** (cost - self._rounds)  # in runs at the current cost
        if not ok or spent < 1:
            # A hash made before the cost was raised would answer a right password sooner,
            # and a wrong one sooner than an unknown user: it pays for the difference.
            self._pad(spent)
        return Verification(ok=bool(ok), new_hash=new_hash if ok else None)

    def _pad(self, spent: float) -> None:
        """Dummy runs at the current cost up to a check of the costliest hash; at least one
        when less than one was spent."""
        target = min(2 ** (self._highest_cost - self._rounds), MAX_PADDING_RUNS)
        for _ in range(max(math.ceil(target - spent), 1 if spent < 1 else 0)):
            self._verify_dummy()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """A place on the bounded hashing pool, held across the caller's own awaits until
        `verify_in_slot`; `HashingBusy` at once when the pool is full."""
        if self._pending >= self._capacity:
            raise HashingBusy("the server is busy verifying passwords; retry shortly")
        self._pending += 1
        try:
            yield
        finally:
            self._pending -= 1

    async def verify_in_slot(self, password: str, stored_hash: str | None) -> Verification:
        """`verify` on the hashing pool, for a caller holding a `slot`."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.verify, password, stored_hash)

    def _verify_dummy(self) -> None:
        self._context.verify(_NEVER_MATCHES, self._dummy_hash)

    def _cost(self, stored_hash: str) -> int:
        """The bcrypt cost `stored_hash` was made at; `ValueError` if it is not bcrypt."""
        return int(self._context.handler().from_string(stored_hash).rounds)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def prepare_password(password: str) -> str | None:
    """The password as compared (RFC 8265 OpaqueString); None if it has a forbidden character
    or could never be within `MAX_PASSWORD_BYTES` (so a long one never reaches PRECIS, whose
    normalisation is quadratic in long runs of combining marks)."""
    if len(password) > _MAX_PASSWORD_INPUT:
        return None
    try:
        prepared: str = _OPAQUE_STRING.enforce(password)
    except UnicodeError:
        return None
    return prepared


def check_password_policy(password: str) -> str:
    """The password as it will be hashed; `PasswordPolicyError` if it is not acceptable."""
    if len(password) > _MAX_PASSWORD_INPUT:
        raise PasswordPolicyError(f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
    if not password:  # PRECIS refuses it too, which would read as a forbidden character
        raise PasswordPolicyError(
            f"password is empty; it must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    prepared = prepare_password(password)
    if prepared is None:
        raise PasswordPolicyError("password must not contain control characters")
    if len(prepared) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if _too_long(prepared):
        raise PasswordPolicyError(f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
    return prepared


def _too_long(prepared: str) -> bool:
    return len(prepared.encode()) > MAX_PASSWORD_BYTES
