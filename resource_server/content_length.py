"""A request body's declared length read without trusting it (RFC 9110 section 8.6), and how
long its sender may take to send it."""

# The longest a body may take to arrive, from its first read: neither uvicorn nor Granian
# bounds it, and a client that declares 100 bytes and sends 3 would otherwise hold the
# request, and a connection, for ever (slowloris).
BODY_DEADLINE = 10.0
# Past this a length is "too large" to every caller: no body here comes near 10**18 bytes.
_HUGE = 10**18


def declared_length(value: str | bytes) -> int | None:
    """The length a header declares; None unless it is ASCII digits. Leading zeros aside, one
    over 18 digits counts as 10**18, never converted: `int()` refuses past 4,300 digits."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    return int(digits or "0") if len(digits) <= 18 else _HUGE
