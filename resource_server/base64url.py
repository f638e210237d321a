"""base64url without padding (RFC 7515 section 2), as JOSE writes it."""

import base64
import binascii

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALPHABET_BYTES = _ALPHABET.encode("ascii")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# A final character carries 2 (length % 4 == 2) or 4 (== 3) bits past the last whole byte;
# only the characters with those bits zero are the canonical encoding.
_CANONICAL_LAST = {
    2: frozenset(_ALPHABET[::16]),
    3: frozenset(_ALPHABET[::4]),
}


def b64url_decode(segment: str) -> bytes:
    """Decode one segment; `ValueError` for anything but its one canonical encoding.

    Strict, so each byte string has exactly one accepted spelling: no `+`, `/`, `=`,
    whitespace or other characters (a lenient decoder skips them, and so would accept many
    spellings of the same signed token), and no stray bits in the final character.
    """
    if not segment.isascii():
        raise ValueError("base64url is ASCII")
    data = segment.encode("ascii")
    if data.translate(None, _ALPHABET_BYTES):
        raise ValueError("a character outside the base64url alphabet")
    tail = len(data) % 4
    if tail == 1 or (tail and segment[-1] not in _CANONICAL_LAST[tail]):
        raise ValueError("not a canonical base64url encoding")
    return binascii.a2b_base64(data.translate(_TO_STANDARD) + b"=" * (-len(data) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
