"""Password hashing (bcrypt behind passlib's CryptContext), run off the event loop."""

import asyncio
import contextlib
import logging
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


class PasswordHasher:
    """Hashes and verifies passwords; verification always costs at least one full bcrypt run
    at the current cost."""

    def __init__(self, rounds: int, workers: int | None = None, queue: int = 64):
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._rounds = rounds
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

    def verify(self, password: str, stored_hash: str | None) -> Verification:
        """Check `password`; whatever makes it fail, the work done is at least one full bcrypt
        run at the current cost."""
        prepared = prepare_password(password)
        # A password that cannot match (no user, a forbidden character such as NUL, over 72
        # bytes, which bcrypt would truncate) is checked against the dummy hash instead, so
        # nothing about the account shows in the time the answer takes.
        if stored_hash is None or prepared is None or _too_long(prepared):
            self._verify_dummy()
            return Verification(ok=False)
        try:
            ok, new_hash = self._context.verify_and_update(prepared, stored_hash)
            cheaper = self._cost(stored_hash) < self._rounds
        except ValueError:
            log.error("stored password hash is unreadable; treating as a failed login")
            self._verify_dummy()  # as long as any other failure takes
            return Verification(ok=False)
        if cheaper:
            # A hash made before the cost was raised would answer sooner than an unknown user,
            # naming the account until its next login re-hashes it: it pays for the dummy too.
            self._verify_dummy()
        return Verification(ok=bool(ok), new_hash=new_hash if ok else None)

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

    async def verify_async(self, password: str, stored_hash: str | None) -> Verification:
        """`verify` on the bounded hashing pool; `HashingBusy` when it is full."""
        with self.slot():
            return await self.verify_in_slot(password, stored_hash)

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
