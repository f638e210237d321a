"""The tutorial's demo account, created only by `make run` for the README's curl flow."""

from issuer.accounts.passwords import PasswordHasher
from issuer.accounts.users import UserRepository

DEMO_USERNAME = "johndoe"
DEMO_PASSWORD = "secret123"


def refuse_demo_account(users: UserRepository, hasher: PasswordHasher) -> None:
    """Production (an https issuer) must not start while the demo account can log in."""
    user = users.get_by_username(DEMO_USERNAME)
    if user is None or user.disabled:
        return
    if hasher.verify(DEMO_PASSWORD, user.password_hash).ok:
        raise RuntimeError(
            f"refusing to start: the demo account {DEMO_USERNAME!r} with its published password "
            "exists and ISSUER_URL is https (production). Disable it (scripts/manage_user.py "
            f"{DEMO_USERNAME} --disable) or give it a new password (--set-password)."
        )
