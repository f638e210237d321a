"""Reading form bodies defensively (RFC 6749 section 3.2): the token endpoint's and the
browser's."""

from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from issuer.oauth.errors import InvalidRequest, RequestTooLarge
from resource_server.content_length import declared_length

MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 32
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The form's parameters; 400 for anything that is not a well-formed form, repeats a
    parameter or holds a NUL, 413 if huge."""
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in await read_form_pairs(request, limit):
        if name in seen:
            raise InvalidRequest(f"parameter {name!r} is repeated")
        seen.add(name)
        # RFC 6749 Appendix A: no parameter's syntax admits NUL (nor can PostgreSQL store it);
        # refused before any lookup, so the answer is the same whoever the username names.
        if "\x00" in name or "\x00" in value:
            raise InvalidRequest("a parameter holds a NUL character")
        # "Parameters sent without a value MUST be treated as if they were omitted."
        if value:
            form[name] = value
    return form


async def read_form_pairs(request: Request, limit: int = MAX_FORM_BYTES) -> list[tuple[str, str]]:
    """The form's parameters as sent, in order (repeats, empty values and NULs kept for the
    caller to judge: `/authorize` answers them by its own rules)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequest(f"the request body must be {FORM_MEDIA_TYPE}")
    declared = request.headers.get("content-length")
    if declared is not None:
        length = declared_length(declared)
        if length is None or length > limit:
            raise RequestTooLarge(f"the request body must be at most {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestTooLarge(f"the request body must be at most {limit} bytes")
    except ClientDisconnect:
        # Nobody will read the answer; a truncated body is a bad request, not a server error.
        raise InvalidRequest("the client went away before sending the whole body") from None
    try:
        pairs = parse_qsl(
            bytes(body).decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not valid UTF-8") from None
    except ValueError:
        raise InvalidRequest(f"the request body has more than {MAX_FIELDS} fields") from None
    return pairs
