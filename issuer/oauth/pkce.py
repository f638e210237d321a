"""Proof Key for Code Exchange (RFC 7636), S256 only: `plain` is refused (RFC 9700 2.1.1)."""

import hashlib
import hmac
import re

from resource_server.base64url import b64url_encode

METHOD = "S256"
# Section 4.1: 43-128 unreserved characters; an S256 challenge is 43 base64url characters.
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


def valid_challenge(challenge: str) -> bool:
    return _CHALLENGE.fullmatch(challenge) is not None


def challenge_of(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)), section 4.2."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return b64url_encode(digest)


def verifies(verifier: str, challenge: str) -> bool:
    """Whether `verifier` is the one `challenge` was made from (constant time)."""
    if _VERIFIER.fullmatch(verifier) is None:
        return False
    return hmac.compare_digest(challenge_of(verifier), challenge)
