"""base64url without padding (RFC 7515 section 2), as JOSE writes it."""

import base64
import binascii


def b64url_decode(segment: str) -> bytes:
    """Decode one segment; `ValueError` for anything that is not base64url."""
    if not segment.isascii():
        raise ValueError("base64url is ASCII")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
