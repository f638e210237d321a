"""Request ids, JSON logs and Prometheus metrics on both services."""

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from issuer.admin import create_user
from issuer.app import create_app as create_issuer
from issuer.settings import Settings as IssuerSettings
from resource_server.app import create_app as create_rs
from resource_server.settings import Settings as RSSettings
from servicekit.http_errors import log_unexpected
from servicekit.observability import (
    REQUEST_ID,
    JsonFormatter,
    RequestContext,
    configure_logging,
    request_histogram,
)
from tests.support import call_asgi, fresh_key_set, http_scope, public_jwk, running, sign_jwt

ISSUER = "https://issuer.test"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if line.split("{")[0].split(" ")[0] == name and all(
            found.get(k) == v for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def issuer_settings(tmp_path: Path) -> IssuerSettings:
    fresh_key_set(tmp_path / "keys")
    settings = IssuerSettings(
        url="http://issuer.test",
        keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        bcrypt_rounds=4,
        rate_limit_per_ip=3,
    )
    create_user(settings, "alice", "wonderland1")
    return settings


async def test_request_id_is_echoed_or_made_up(issuer_settings):
    async with running(create_issuer(issuer_settings), "http://issuer.test") as client:
        given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        made = await client.get("/healthz")
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        hostile = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
        assert hostile.headers["x-request-id"] != "x" * 200


async def test_log_lines_are_json_with_the_request_id(issuer_settings, caplog):
    formatter = JsonFormatter()
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        async with running(create_issuer(issuer_settings), "http://issuer.test") as client:
            await client.post(
                "/token",
                data={"username": "alice", "password": "wonderland1"},
                headers={"X-Request-ID": "req-42"},
            )
    records = [r for r in caplog.records if r.name == "issuer.audit" and "login" in r.getMessage()]
    assert records
    event = json.loads(formatter.format(records[0]))
    assert event["request_id"] == "req-42"
    assert event["logger"] == "issuer.audit" and event["level"] == "info"
    assert "wonderland1" not in json.dumps(event)
    assert REQUEST_ID.get() == "-"  # reset after the request


async def test_the_document_static_files_and_docs_are_counted_under_their_routes(issuer_settings):
    # The audit: /openapi.json and /static/... were counted as `unmatched`.
    async with running(create_issuer(issuer_settings), "http://issuer.test") as client:
        for path in ("/openapi.json", "/static/issuer.css", "/docs-assets/swagger-ui.css", "/docs"):
            assert (await client.get(path)).status_code == 200, path
        await client.get("/nowhere")
        text = (await client.get("/metrics")).text
    count = "issuer_request_duration_seconds_count"
    for route in ("/openapi.json", "/static/{path}", "/docs-assets/{path}", "/docs"):
        assert metric(text, count, route=route, status="2xx") == 1, route
    assert metric(text, count, route="unmatched", status="4xx") == 1
    assert metric(text, count, route="unmatched", status="2xx") == 0


async def test_the_api_docs_pages_cannot_be_framed_and_name_their_language(issuer_settings):
    # The audits: the issuer's Swagger UI, on the sign-in pages' origin, could be framed; and
    # /docs began `<html>` with no lang (axe html-has-lang, WCAG 3.1.1), so screen readers
    # read it in the user's default voice, whatever that language.
    for app in (create_issuer(issuer_settings), create_rs(RSSettings(issuer_url=ISSUER))):
        async with running(app, "http://service.test") as client:
            for path in ("/docs", "/docs/oauth2-redirect"):
                page = await client.get(path)
                assert page.status_code == 200, path
                assert page.headers["x-frame-options"] == "DENY"
                assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
                assert page.headers["x-content-type-options"] == "nosniff"
                assert re.search(r'<html lang="en[-"]', page.text), path
                assert int(page.headers["content-length"]) == len(page.content), path


async def test_issuer_metrics(issuer_settings):
    async with running(create_issuer(issuer_settings), "http://issuer.test") as client:
        await client.post("/token", data={"username": "alice", "password": "wonderland1"})
        await client.post("/token", data={"username": "alice", "password": "wrong-one"})
        await client.post("/token", data={"username": "alice", "password": "wrong-one"})
        await client.post("/token", data={"username": "alice", "password": "wrong-one"})  # 429
        etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
        await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
        text = (await client.get("/metrics")).text
    assert metric(text, "issuer_tokens_issued_total", grant="password") == 1
    assert metric(text, "issuer_login_failures_total", reason="bad_credentials") == 2
    assert metric(text, "issuer_token_requests_rejected_total", reason="rate_limited") == 1
    assert metric(text, "issuer_jwks_requests_total", status="200") == 1
    assert metric(text, "issuer_jwks_requests_total", status="304") == 1
    assert metric(text, "issuer_key_set_reloads_total") == 0
    assert metric(text, "issuer_request_duration_seconds_count", route="/token", status="2xx") == 1
    assert metric(text, "issuer_request_duration_seconds_count", route="/token", status="4xx") == 3


async def test_resource_server_metrics(
    respx_mock: respx.MockRouter, rsa_private_key: rsa.RSAPrivateKey
):
    respx_mock.get(f"{ISSUER}/.well-known/oauth-authorization-server").respond(
        json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
    )
    respx_mock.get(f"{ISSUER}/jwks").respond(json={"keys": [public_jwk(rsa_private_key, "k1")]})
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "1",
        "aud": "api",
        "exp": now + 60,
        "iat": now,
        "jti": "j",
        "client_id": "c",
    }
    good = sign_jwt(rsa_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, claims)
    expired = sign_jwt(
        rsa_private_key,
        {"alg": "RS256", "typ": "at+jwt", "kid": "k1"},
        {**claims, "exp": now - 3600},
    )
    async with running(create_rs(RSSettings(issuer_url=ISSUER))) as client:
        for token in (good, good, expired, "garbage"):
            await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        await client.get("/users/me", headers={"Authorization": "Basic x"})
        await client.get("/users/me", headers={"Authorization": "Bearer a b"})
        await client.get(f"/users/me?access_token={good}")
        text = (await client.get("/metrics")).text
    assert metric(text, "rs_verification_failures_total", reason="expired") == 1
    assert metric(text, "rs_verification_failures_total", reason="malformed") == 1
    assert metric(text, "rs_verification_failures_total", reason="no_token") == 1
    assert metric(text, "rs_verification_failures_total", reason="header") == 1
    assert metric(text, "rs_verification_failures_total", reason="token_in_query") == 1
    assert metric(text, "rs_token_cache_lookups_total", result="hit") == 1
    # The first good token, the expired one and the garbage: each looked up and not found.
    assert metric(text, "rs_token_cache_lookups_total", result="miss") == 3
    assert metric(text, "rs_jwks_fetches_total", reason="initial", outcome="ok") == 1
    assert metric(text, "rs_jwks_refresh_failures_total") == 0
    assert metric(text, "rs_request_duration_seconds_count", route="/users/me", status="2xx") == 2
    assert metric(text, "rs_request_duration_seconds_count", route="/users/me", status="4xx") == 5


def test_access_lines_never_carry_the_query_string(caplog):
    configure_logging("text")
    configure_logging("text")  # idempotent: one filter, however often it is called
    access = logging.getLogger("uvicorn.access")
    assert sum(type(f).__name__ == "DropQueryString" for f in access.filters) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # The call uvicorn makes for every request (protocols/http/*_impl.py).
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/users/me?access_token=secret-token&x=1",
            "1.1",
            400,
        )
    (line,) = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert line == '127.0.0.1:5000 - "GET /users/me HTTP/1.1" 400'


async def test_a_request_id_of_up_to_128_plain_characters_is_echoed():
    context = RequestContext(PlainTextResponse("ok"), request_histogram(CollectorRegistry(), "t"))
    for given, echoed in (
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"A-z.0_9:", True),
        (b"abc\n", False),
        (b"a b", False),
    ):
        scope = http_scope("GET", "/", [(b"x-request-id", given)])
        headers = dict((await call_asgi(context, scope))[0]["headers"])
        assert (headers[b"x-request-id"] == given) is echoed, given
        assert re.fullmatch(rb"[0-9a-f]{32}|[A-Za-z0-9._:-]+", headers[b"x-request-id"])


def answers_then_fails(status: int | None, logged: bool):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if status is not None:
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        exc = RuntimeError("a bug")
        if logged:
            log_unexpected(exc)
        raise exc

    return app


@pytest.mark.parametrize(
    ("status", "logged", "raised", "counted"),
    [
        (500, True, False, "5xx"),  # answered and logged: nothing left for the server
        (200, True, True, "2xx"),  # a failure after another answer: the server must know
        (500, False, True, "5xx"),  # not logged: the server logs it
        (None, False, True, "5xx"),  # nothing answered: the server answers it, counted a 500
    ],
)
async def test_only_an_error_answered_with_a_500_and_logged_is_kept_from_the_server(
    status, logged, raised, counted
):
    histogram = request_histogram(CollectorRegistry(), "t")
    context = RequestContext(answers_then_fails(status, logged), histogram)
    if raised:
        with pytest.raises(RuntimeError, match="a bug"):
            await call_asgi(context, http_scope("GET", "/", []))
    else:
        await call_asgi(context, http_scope("GET", "/", []))
    statuses = [
        sample.labels["status"]
        for family in histogram.collect()
        for sample in family.samples
        if sample.name.endswith("_count")
    ]
    assert statuses == [counted]


@pytest.mark.parametrize(
    ("path", "logged"),
    [("/" + "a" * 255, "/" + "a" * 255), ("/" + "a" * 256, "/" + "a" * 255 + "...")],
)
def test_access_lines_cut_a_path_longer_than_256_characters(caplog, path, logged):
    configure_logging("text")
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path + "?q=1", "1.1", 404)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert line == f'127.0.0.1:5000 - "GET {logged} HTTP/1.1" 404'


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    """Uvicorn's loggers as they were, put back after a test that lets uvicorn set them."""
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(logger.handlers[:], logger.propagate, logger.level) for logger in loggers]
    yield
    for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


@pytest.mark.parametrize("access_log", [True, False])
def test_uvicorn_writes_access_lines_only_when_not_told_otherwise(uvicorn_loggers, access_log):
    # As `uvicorn ... [--no-access-log]` sets its loggers before the app's lifespan runs;
    # uvicorn writes access lines when its access logger has a handler (`hasHandlers()`).
    uvicorn.Config("issuer.app:app", access_log=access_log)
    configure_logging("json")
    configure_logging("json")  # idempotent
    assert logging.getLogger("uvicorn.access").hasHandlers() is access_log
    assert logging.getLogger("uvicorn.error").hasHandlers()
