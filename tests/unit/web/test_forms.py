"""Reading the token endpoint's form defensively: media type, size, encoding, field count."""

import asyncio
import time
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from issuer.oauth.errors import InvalidRequest, RequestTimeout, RequestTooLarge
from issuer.web import forms
from issuer.web.forms import MAX_FIELDS, parse_query, read_form
from tests.support import http_scope, stalled_body

FORM = "application/x-www-form-urlencoded"


class Body:
    """An ASGI receive callable that streams `chunks` and records how many it handed out."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks) or [b""]
        self.sent = 0

    async def __call__(self) -> Message:
        chunk = self.chunks[self.sent]
        self.sent += 1
        return {"type": "http.request", "body": chunk, "more_body": self.sent < len(self.chunks)}


def make_request(
    body: Body, content_type: str | None = FORM, content_length: int | str | None = "auto"
) -> Request:
    headers: list[tuple[bytes, bytes]] = []
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    if content_length == "auto":
        content_length = sum(len(chunk) for chunk in body.chunks)
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return Request(http_scope("POST", "/token", headers), body)


async def test_well_formed_form_round_trips_decoded():
    body = Body(b"grant_type=password&username=al%C3%AFce&password=p%40ss+word%26")
    assert await read_form(make_request(body)) == {
        "grant_type": "password",
        "username": "alïce",
        "password": "p@ss word&",
    }


@pytest.mark.parametrize(
    "content_type",
    [
        f"{FORM}; charset=UTF-8",
        "Application/X-WWW-Form-URLEncoded",
        f"  {FORM} ;charset=utf-8",
    ],
)
async def test_form_media_type_is_accepted_with_parameters_and_any_case(content_type):
    request = make_request(Body(b"grant_type=client_credentials"), content_type)
    assert await read_form(request) == {"grant_type": "client_credentials"}


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "multipart/form-data; boundary=x", "text/plain"]
)
async def test_body_that_is_not_urlencoded_form_is_invalid_request(content_type):
    body = Body(b"grant_type=password")
    with pytest.raises(InvalidRequest) as caught:
        await read_form(make_request(body, content_type))
    assert caught.value.status_code == 400
    assert body.sent == 0


async def test_declared_length_over_the_limit_is_refused_before_reading():
    body = Body(b"a=" + b"x" * 100)
    with pytest.raises(RequestTooLarge) as caught:
        await read_form(make_request(body, content_length=101), limit=100)
    assert caught.value.status_code == 413
    assert body.sent == 0


@pytest.mark.parametrize(
    ("declared", "status"),
    [
        ("0" * 5000 + "101", 413),
        ("9" * 5000, 413),
        ("1_0", 400),
        (" 10", 400),
        ("\u00b2", 400),
        ("", 400),
        ("-1", 400),
    ],
    ids=["zeros-then-101", "5000-nines", "underscore", "space", "superscript", "empty", "minus"],
)
async def test_a_declared_length_int_would_refuse_is_a_4xx_not_500(declared, status):
    # Over 4,300 digits (servers accept leading zeros), int() raised ValueError: a 500. One
    # that is no number is a bad request (RFC 9112 6.3), one over the limit too large.
    body = Body(b"a=1")
    with pytest.raises(InvalidRequest) as caught:
        await read_form(make_request(body, content_length=declared), limit=100)
    assert caught.value.status_code == status and body.sent == 0


async def test_leading_zeros_in_a_declared_length_are_only_zeros():
    body = Body(b"a=1")
    assert await read_form(make_request(body, content_length="0" * 5000 + "3")) == {"a": "1"}


async def test_a_client_gone_before_its_whole_body_is_a_bad_request_not_an_error():
    async def gone() -> Message:
        return {"type": "http.disconnect"}

    request = Request(make_request(Body(b"")).scope, gone)
    with pytest.raises(InvalidRequest) as caught:
        await read_form(request)
    assert caught.value.status_code == 400


async def test_a_body_in_several_messages_is_read_whole():
    body = Body(b"grant_type=client_", b"", b"credentials&sco", b"pe=read")
    assert await read_form(make_request(body)) == {
        "grant_type": "client_credentials",
        "scope": "read",
    }
    assert body.sent == 4


async def test_a_message_that_is_neither_body_nor_disconnect_is_passed_over():
    # As `Request.stream` does: only `http.request` messages carry the body.
    messages: list[Message] = [
        {"type": "http.request", "body": b"scope=", "more_body": True},
        {"type": "http.response.debug"},
        {"type": "http.request", "body": b"read"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    request = Request(make_request(Body(b"")).scope, receive)
    assert await read_form(request) == {"scope": "read"}


async def test_body_at_exactly_the_limit_is_read():
    body = Body(b"a=" + b"x" * 98)
    assert await read_form(make_request(body), limit=100) == {"a": "x" * 98}


async def test_body_streaming_past_the_limit_without_length_stops_at_the_limit():
    body = Body(b"a=" + b"x" * 48, b"x" * 50, b"x", b"x" * 1000, b"never read")
    with pytest.raises(RequestTooLarge) as caught:
        await read_form(make_request(body, content_length=None), limit=100)
    assert caught.value.status_code == 413
    assert body.sent == 3  # the chunk that crossed the limit, and no further


async def test_body_longer_than_its_declared_length_still_stops_at_the_limit():
    body = Body(b"a=" + b"x" * 60, b"x" * 60)
    with pytest.raises(RequestTooLarge):
        await read_form(make_request(body, content_length=10), limit=100)


@pytest.mark.parametrize("raw", [b"username=\xff\xfe", b"username=%FF%FE", b"us%C3er=alice"])
async def test_body_that_is_not_utf8_is_invalid_request(raw):
    with pytest.raises(InvalidRequest) as caught:
        await read_form(make_request(Body(raw)))
    assert not isinstance(caught.value, RequestTooLarge)


async def test_at_most_max_fields_are_accepted():
    fields = [f"f{i}=v" for i in range(MAX_FIELDS)]
    form = await read_form(make_request(Body("&".join(fields).encode())))
    assert len(form) == MAX_FIELDS
    too_many = "&".join([*fields, "one=more"]).encode()
    with pytest.raises(InvalidRequest):
        await read_form(make_request(Body(too_many)))


@pytest.mark.parametrize(
    ("raw", "described"),
    [
        (b"scope=read&scope=write", "repeated parameter: scope"),
        (b"code=&code=x&state=1&state=2", "repeated parameter: code, state"),
        (b"a=1&b=2&a=1", "a parameter is repeated"),  # a name the protocols do not define
    ],
)
async def test_repeated_parameter_is_invalid_request_naming_it_if_defined(raw, described):
    with pytest.raises(InvalidRequest) as caught:
        await read_form(make_request(Body(raw)))
    assert caught.value.description == described


async def test_parameters_without_a_value_are_treated_as_omitted():
    body = Body(b"grant_type=password&client_secret=&scope&username=alice")
    assert await read_form(make_request(body)) == {"grant_type": "password", "username": "alice"}


async def test_empty_body_is_an_empty_form():
    assert await read_form(make_request(Body())) == {}


@pytest.mark.parametrize(
    "raw", [b"client_id=a%00b", b"password=x%00y", b"scope=read\x00", b"a%00b=1", b"state=%00"]
)
async def test_a_parameter_with_a_nul_is_invalid_request(raw):
    # RFC 6749 Appendix A: no parameter's syntax admits NUL (and PostgreSQL text cannot hold it).
    with pytest.raises(InvalidRequest) as caught:
        await read_form(make_request(Body(raw)))
    assert caught.value.status_code == 400


async def test_a_body_that_stops_arriving_is_refused_after_the_deadline(monkeypatch):
    # The audit: `Content-Length: 100` and 3 bytes sent held the request open for good, on
    # uvicorn and Granian alike (neither bounds a body's arrival).
    monkeypatch.setattr(forms, "BODY_DEADLINE", 0.2)
    receive = stalled_body(b"grant_type=pass")  # the rest never comes

    headers = [(b"content-type", FORM.encode()), (b"content-length", b"100")]
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as caught:
        await read_form(Request(http_scope("POST", "/token", headers), receive))
    assert caught.value.status_code == 408 and caught.value.error == "invalid_request"
    assert "did not arrive within 0.2 seconds" in (caught.value.description or "")
    assert time.monotonic() - started < 2


async def test_the_deadline_ends_with_the_body(monkeypatch):
    # Its timer cancels the reading task: left running, it would cancel whatever the task
    # does next (the token request's signing, say) once the deadline passed.
    monkeypatch.setattr(forms, "BODY_DEADLINE", 0.1)
    assert await read_form(make_request(Body(b"grant_type=client_credentials"))) == {
        "grant_type": "client_credentials"
    }
    await asyncio.sleep(0.3)  # not cancelled


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_deadline(monkeypatch):
    # A server dropping the request cancels its task: that must go on as a cancellation, not
    # be answered as a 408 to nobody.
    monkeypatch.setattr(forms, "BODY_DEADLINE", 30)
    reading = asyncio.create_task(
        read_form(make_request(stalled_body(b"grant_type=pass"), content_length=100))
    )
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading


async def test_a_cancellation_meeting_the_deadline_goes_on_as_a_cancellation(monkeypatch):
    # Both at once: the deadline's own cancellation is taken back, the other one stays.
    monkeypatch.setattr(forms, "BODY_DEADLINE", 0.05)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"grant_type=pass", "more_body": True}
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # the deadline's; the server drops the request too
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            raise
        raise AssertionError("unreachable")

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(read_form(make_request(receive, content_length=100)))  # type: ignore[arg-type]


# Forms and queries as clients write them and as attackers do: every character that
# `parse_qsl` treats specially, and text that needs no decoding at all.
_QUERIES = st.text(alphabet="ab=&+%;2F0 é\x00", max_size=40)


@given(_QUERIES)
def test_parse_query_reads_as_parse_qsl(query):
    try:
        expected = parse_qsl(
            query, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        with pytest.raises(InvalidRequest):
            parse_query(query, "the query")
        return
    assert parse_query(query, "the query") == expected


@pytest.mark.parametrize("fields", [MAX_FIELDS, MAX_FIELDS + 1])
@pytest.mark.parametrize("separator", ["&", "&&"])
def test_parse_query_counts_fields_as_parse_qsl(fields, separator):
    # Empty fields count too: `parse_qsl` counts separators, so "a=1&&b=2" is three fields.
    query = separator.join(f"f{n}=v" for n in range(fields))
    too_many = query.count("&") + 1 > MAX_FIELDS
    if too_many:
        with pytest.raises(InvalidRequest, match="more than"):
            parse_query(query, "the query")
    else:
        assert parse_query(query, "the query") == parse_qsl(query, keep_blank_values=True)


@pytest.mark.parametrize("encoding", ["gzip", "deflate, gzip", "br"])
async def test_a_content_encoded_body_is_refused_415_unread(encoding):
    # The audit: a plain body labelled gzip was taken as a form, a gzipped one said "not UTF-8".
    body = Body(b"grant_type=client_credentials")
    request = make_request(body)
    request.scope["headers"].append((b"content-encoding", encoding.encode()))
    with pytest.raises(InvalidRequest) as caught:
        await read_form(request)
    assert caught.value.status_code == 415 and body.sent == 0


@pytest.mark.parametrize("encoding", [b"Identity", b"", b" , identity,"])
async def test_an_identity_or_empty_content_encoding_is_no_encoding(encoding):
    request = make_request(Body(b"grant_type=client_credentials"))
    request.scope["headers"].append((b"content-encoding", encoding))
    assert await read_form(request) == {"grant_type": "client_credentials"}


async def test_a_second_content_encoding_header_is_read_too():
    # The first alone said identity, and a gzipped body would have been read as a form.
    body = Body(b"grant_type=client_credentials")
    request = make_request(body)
    request.scope["headers"] += [(b"content-encoding", b"identity"), (b"content-encoding", b"gzip")]
    with pytest.raises(InvalidRequest) as caught:
        await read_form(request)
    assert caught.value.status_code == 415 and body.sent == 0


@pytest.mark.parametrize("second", [FORM, "application/json"])
async def test_two_content_type_headers_are_refused(second):
    # The fuzzing audit: the first one won, so a proxy reading the second saw another body.
    body = Body(b"grant_type=client_credentials")
    request = make_request(body)
    request.scope["headers"].append((b"content-type", second.encode()))
    with pytest.raises(InvalidRequest) as caught:
        await read_form(request)
    assert caught.value.status_code == 400 and "more than one Content-Type" in str(caught.value)
    assert body.sent == 0
