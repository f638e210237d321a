"""How a bearer secret the issuer hands out (refresh token, authorization code, session id) is
stored: as the key it is looked up by, never as itself."""

import hashlib


def lookup_key(secret: str) -> str:
    """SHA-256 of `secret`, hex: 256 random bits need no salt or slow hash to be looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()
