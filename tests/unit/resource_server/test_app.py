"""The resource server's HTTP surface and the reusable FastAPI dependencies."""

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, Form, Request
from openapi_spec_validator import validate

from resource_server import (
    AUTH_ERROR_HANDLERS,
    BearerClaims,
    CachePolicy,
    Claims,
    InvalidToken,
    Verifier,
    bearer_lifespan,
    deps,
    require_scopes,
)
from resource_server.app import create_app
from resource_server.base64url import b64url_decode
from resource_server.deps import MAX_CHECKED_FORM_BYTES
from resource_server.settings import Settings
from tests.support import (
    FakeClock,
    b64url,
    documented_python,
    http_scope,
    public_jwk,
    running,
    served,
    sign_jwt,
    stalled_body,
)

ISSUER = "https://issuer.test"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


@pytest.fixture
def issuer_routes(respx_mock: respx.MockRouter, rsa_private_key: rsa.RSAPrivateKey) -> respx.Route:
    respx_mock.get(f"{ISSUER}/.well-known/oauth-authorization-server").respond(
        json={"issuer": ISSUER, "jwks_uri": JWKS_URL}
    )
    return respx_mock.get(JWKS_URL).respond(json={"keys": [public_jwk(rsa_private_key, "k1")]})


def make_token(key: rsa.RSAPrivateKey, clock: FakeClock, scope: str = "read") -> str:
    now = int(clock())
    claims = {
        "iss": ISSUER,
        "sub": "7",
        "aud": "api",
        "exp": now + 60,
        "iat": now,
        "jti": "j",
        "client_id": "public",
        "scope": scope,
        "preferred_username": "ann",
    }
    return sign_jwt(key, {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, claims)


@pytest.fixture
async def client(issuer_routes) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(Settings(issuer_url=ISSUER))) as client:
        yield client


async def test_users_me_returns_the_tokens_subject(client, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert (body["sub"], body["username"], body["scope"]) == ("7", "ann", "read")
    assert isinstance(body["exp"], int)


async def test_an_unexpected_error_is_a_json_500_with_the_request_id_both_ways(
    issuer_routes, rsa_private_key, monkeypatch
):
    def broken(*_: object) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr("resource_server.app.me_body", broken)
    app = create_app(Settings(issuer_url=ISSUER, cors_origins=["https://app.example"]))
    token = make_token(rsa_private_key, FakeClock(time.time()))
    async with served(app) as asgi:
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as client:
            # The front, then the framework's whole way (a request with an Origin).
            for extra in ({}, {"Origin": "https://app.example"}):
                headers = {"Authorization": f"Bearer {token}", **extra}
                response = await client.get("/users/me", headers=headers)
                assert response.status_code == 500, extra
                assert response.json() == {"error": "server_error"}
                assert response.headers["x-request-id"]
                assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("cors_origins", [[], ["https://app.example"]], ids=["off", "on"])
async def test_the_fronts_answers_vary_on_origin_when_cors_is_on(cors_origins):
    # As the framework's (through CORSMiddleware) do: a cache must not hand a browser app an
    # answer made for a request without an Origin.
    app = create_app(Settings(issuer_url=ISSUER, cors_origins=cors_origins))
    async with served(app) as asgi:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as client:
            answers = [await client.get("/healthz"), await client.get("/users/me")]
    for response in answers:
        assert response.headers.get("vary") == ("Origin" if cors_origins else None)


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("POST", "/users/me", 405, "GET"),
        ("POST", "/healthz", 405, "GET, HEAD"),
        ("POST", "/metrics", 405, "GET, HEAD"),  # undocumented, and HEAD is answered
        ("GET", "/x", 404, None),
    ],
)
async def test_what_routing_refuses_gets_an_error_body_like_every_refusal(
    client, method, path, status, allow
):
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers.get("allow") == allow
    assert response.json()["error"] == "invalid_request" and response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


async def test_the_openapi_document_is_valid(client):
    validate((await client.get("/openapi.json")).json())


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_bearer_scheme_is_case_insensitive(client, rsa_private_key, scheme):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.get("/users/me", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200


BARE_CHALLENGE = 'Bearer realm="api"'
MALFORMED = "the Authorization header must be 'Bearer <token>'"


def third_party_app() -> FastAPI:
    """An app of someone else's, protected with the library alone."""
    verifier = Verifier.for_issuer(ISSUER, audience="api")
    app = FastAPI(lifespan=bearer_lifespan(verifier), exception_handlers=AUTH_ERROR_HANDLERS)

    @app.get("/orders")
    async def orders(claims: BearerClaims) -> dict[str, str]:
        return {"owner": claims.sub}

    @app.post("/orders")
    async def add_order(claims: BearerClaims, note: Annotated[str, Form()]) -> dict[str, str]:
        return {"owner": claims.sub, "note": note}

    @app.post("/raw")
    async def raw(claims: BearerClaims, request: Request) -> dict[str, str]:
        return {"body": (await request.body()).decode()}

    @app.get("/admin")
    async def admin(claims: Claims = Depends(require_scopes("admin", "read"))) -> dict[str, str]:
        return {"owner": claims.sub}

    return app


async def test_a_route_whose_lifespan_did_not_run_says_so(rsa_private_key):
    # The audit: a test client outside `with`, or a mounted app (whose lifespan never runs),
    # failed with "AttributeError: 'State' object has no attribute 'verifier'".
    app = third_party_app()
    token = make_token(rsa_private_key, FakeClock(time.time()))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as client:
        with pytest.raises(RuntimeError, match="found no verifier: the app's lifespan did not"):
            await client.get("/orders", headers={"Authorization": f"Bearer {token}"})


def test_the_librarys_lifespan_runs_again_on_a_new_event_loop(
    issuer_routes, rsa_private_key, other_private_key
):
    # A test suite with a test client per test: the audit saw the second run answer 503 (its
    # HTTP client closed by the first) and its exit fail (an Event bound to the first loop).
    verifier = Verifier.for_issuer(ISSUER, "api", policy=CachePolicy(cooldown=0, fetch_gap=0))
    app = FastAPI(lifespan=bearer_lifespan(verifier), exception_handlers=AUTH_ERROR_HANDLERS)

    @app.get("/orders")
    async def orders(claims: BearerClaims) -> dict[str, str]:
        return {"owner": claims.sub}

    first = make_token(rsa_private_key, FakeClock(time.time()))
    # The second run needs a fetch: its token's key is published only then.
    claims = json.loads(b64url_decode(first.split(".")[1]))
    second = sign_jwt(other_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": "k2"}, claims)

    async def call(token: str) -> int:
        async with running(app) as client:
            response = await client.get("/orders", headers={"Authorization": f"Bearer {token}"})
            await asyncio.sleep(0.05)  # the keeper waits on its event meanwhile
            return response.status_code

    assert asyncio.run(call(first)) == 200
    issuer_routes.respond(
        json={"keys": [public_jwk(rsa_private_key, "k1"), public_jwk(other_private_key, "k2")]}
    )
    assert asyncio.run(call(second)) == 200


async def test_the_documented_use_without_fastapi_drops_a_key_the_issuer_removed(
    issuer_routes, rsa_private_key, other_private_key
):
    # The library audit: the docs said only `await verifier.verify(token)`. Done so, nothing
    # revalidated the keys, and a token whose key the issuer removed (a compromise) kept
    # verifying from the cache until it expired, not within the revalidation interval.
    policy = CachePolicy(revalidate=0.1, fetch_gap=0)
    verifier = Verifier.for_issuer(ISSUER, "api", policy=policy)
    token = make_token(rsa_private_key, FakeClock(time.time()))
    sample = textwrap.indent(documented_python("verifier.md", "Without FastAPI"), "    ")
    namespace: dict[str, Any] = {}
    exec(
        compile(f"async def use(verifier, token):\n{sample}    return claims\n", "docs", "exec"),
        namespace,
    )
    assert (await namespace["use"](verifier, token)).sub == "7"

    class Verifying:
        """The verifier as the sample uses it, where a `verify` call takes long enough for the
        issuer to drop the token's key meanwhile (as verifying for the app's life does)."""

        key_set = verifier.key_set

        @staticmethod
        async def verify(token: str) -> Claims:
            await verifier.verify(token)  # verified and cached
            issuer_routes.respond(json={"keys": [public_jwk(other_private_key, "k2")]})
            await asyncio.sleep(0.5)  # the keeper revalidates, with no request at all
            return await verifier.verify(token)

    with pytest.raises(InvalidToken):
        await namespace["use"](Verifying, token)


@pytest.fixture(params=["resource-server", "third-party"])
async def protected(request, issuer_routes) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client and a protected path: /users/me here, and a `BearerClaims` route elsewhere."""
    if request.param == "resource-server":
        app, path = create_app(Settings(issuer_url=ISSUER)), "/users/me"
    else:
        app, path = third_party_app(), "/orders"
    async with running(app) as client:
        yield client, path


# -- RFC 6750: each case with its exact status, challenge and body ---------------------------


async def test_no_authorization_header_gets_a_bare_challenge_and_no_error_code(protected):
    client, path = protected
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == BARE_CHALLENGE  # RFC 6750 section 3.1
    assert response.json() == {"error_description": "the request carries no bearer token"}


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Digest x", "Negotiate"])
async def test_another_scheme_gets_a_bare_challenge_and_no_error_code(protected, authorization):
    client, path = protected
    response = await client.get(path, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == BARE_CHALLENGE
    assert response.json() == {"error_description": "this resource accepts only Bearer tokens"}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer a b",
        "Bearer é.é.é".encode("latin-1"),
        "Bearer\tabc",
        "Bearer a,b",
        "Bearer ==abc",
        "",
        "{Bearer} abc",
    ],
)
async def test_malformed_authorization_is_invalid_request(protected, authorization):
    client, path = protected
    response = await client.get(path, headers={"Authorization": authorization})
    assert response.status_code == 400
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="api", error="invalid_request", error_description="{MALFORMED}"'
    )
    assert response.json() == {"error": "invalid_request", "error_description": MALFORMED}


async def test_two_authorization_headers_are_invalid_request(protected, rsa_private_key):
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
    response = await client.get(path, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "x" * 20_000, "W1tbW1tbW1tb.e30.c2ln", "a+b/c.d~e-f.g_h==", "abc=="],
    ids=["garbage", "three-parts", "huge", "nested-header", "every-b64token-char", "padded"],
)
async def test_a_token_that_does_not_verify_is_invalid_token(protected, token):
    client, path = protected
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token", error_description="')
    body = response.json()
    assert body["error"] == "invalid_token" and body["error_description"]
    assert set(body) == {"error", "error_description"}


@pytest.mark.parametrize(
    "query", ["access_token={token}", "a=1&access%5Ftoken={token}", "a=1&access_token="]
)
@pytest.mark.parametrize("with_header", [False, True])
async def test_a_token_in_the_query_string_is_refused(
    protected, rsa_private_key, query, with_header
):
    # RFC 6750 section 2.3 is optional, and RFC 9700 section 4.3.2 advises against it.
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    headers = {"Authorization": f"Bearer {token}"} if with_header else {}
    response = await client.get(f"{path}?{query.format(token=token)}", headers=headers)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    assert response.json() == {
        "error": "invalid_request",
        "error_description": (
            "access tokens are accepted only in the Authorization header, not in the URI"
        ),
    }
    assert token not in response.text


async def test_a_token_in_a_form_body_is_refused(protected, rsa_private_key):
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.request("GET", path, data={"access_token": token})
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "access tokens are accepted only in the Authorization header, not in the body"
    )


@pytest.mark.parametrize("length", ["over the limit", "undeclared"])
async def test_a_form_body_is_not_read_before_the_token_unless_small_and_declared(
    protected, rsa_private_key, length
):
    # Anyone may send a body: read before authentication, a huge one cost the server its size
    # in memory. Unread, a token in it is simply not taken (the header is the only place).
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    form = f"access_token={token}&pad={'x' * MAX_CHECKED_FORM_BYTES}".encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield form

    response = await client.request(
        "GET",
        path,
        content=form if length == "over the limit" else chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert response.json() == {"error_description": "the request carries no bearer token"}


async def test_a_form_body_that_stops_arriving_is_refused_after_the_deadline(
    protected, rsa_private_key, monkeypatch
):
    # The audit: a form body declared 10 bytes with 3 sent held /users/me open for good.
    monkeypatch.setattr(deps, "BODY_DEADLINE", 0.2)
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    receive = stalled_body(b"abc")  # the rest never comes

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"10"),
    ]
    app = client._transport.app
    await asyncio.wait_for(app(http_scope("GET", path, headers), receive, send), timeout=5)
    assert sent[0]["status"] == 400
    body = json.loads(sent[1]["body"])
    assert body["error"] == "invalid_request" and "did not arrive" in body["error_description"]


async def test_a_client_gone_before_its_form_body_ended_is_a_bad_request(
    protected, rsa_private_key
):
    # The audit: a 500 and an error-level traceback for each such request, anyone's to send.
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    messages = iter(
        [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"10"),
    ]
    app = client._transport.app  # the app as `running` serves it, lifespan state included
    await app(http_scope("GET", path, headers), receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"] == "invalid_request"


async def test_a_declared_length_of_thousands_of_digits_is_not_converted(protected):
    client, path = protected
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers["Content-Length"] = "9" * 5000  # int() refuses: the check answered 500
    response = await client.request("GET", path, headers=headers)
    assert response.status_code == 401


async def test_a_large_form_body_reaches_an_authenticated_route_whole(
    issuer_routes, rsa_private_key
):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    form = "note=" + "x" * (2 * MAX_CHECKED_FORM_BYTES)
    async with running(third_party_app()) as client:
        response = await client.post(
            "/raw",
            content=form,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert response.status_code == 200
    assert response.json() == {"body": form}


async def test_a_form_body_without_a_token_still_reaches_the_route(issuer_routes, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    async with running(third_party_app()) as client:
        response = await client.post(
            "/orders", data={"note": "two"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    assert response.json() == {"owner": "7", "note": "two"}


async def test_insufficient_scope_is_403_with_the_scope_it_needs(issuer_routes, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    async with running(third_party_app()) as client:
        response = await client.get("/admin", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="the token lacks scope: admin read", scope="admin read"'
    )
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "the token lacks scope: admin read",
    }


@pytest.mark.parametrize("app", ["resource-server", "third-party"])
async def test_no_key_set_is_503_with_retry_after_and_no_error_code(
    respx_mock, rsa_private_key, app
):
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("refused"))
    if app == "resource-server":
        asgi, path = create_app(Settings(issuer_url=ISSUER)), "/users/me"
    else:
        asgi, path = third_party_app(), "/orders"
    async with running(asgi) as client:
        token = make_token(rsa_private_key, FakeClock(time.time()))
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    # RFC 6750 defines no code for this, and the credentials were not judged: no challenge.
    assert "www-authenticate" not in response.headers
    assert response.json() == {
        "error_description": "the issuer's signing keys are temporarily unavailable; retry later"
    }


async def test_a_deeply_nested_token_header_is_401_not_500(client):
    # `[` x 1500 made json.loads raise RecursionError, which no ValueError handler caught.
    header = b64url(b"[" * 1500)
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {header}.e30.c2ln"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_a_signed_exp_too_large_to_write_back_is_401_not_500(client, rsa_private_key):
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "7", "aud": "api", "exp": 2**64, "iat": now, "jti": "j"}
    claims["client_id"] = "public"
    token = sign_jwt(rsa_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, claims)
    for _ in range(2):  # the second time through the cached-answer path
        response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error_description"].startswith(
            "the token's exp claim must be a NumericDate"
        )


async def test_an_oversized_token_header_is_refused_before_parsing(client):
    header = b64url(b"{" + b" " * 4000 + b"}")
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {header}.e30.c2ln"})
    assert response.status_code == 401
    assert response.json()["error_description"] == "the token header is too large"


async def test_a_deeply_nested_signed_payload_is_401_not_500(client, rsa_private_key):
    token = sign_jwt(rsa_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, b"[" * 5000)
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "the token payload is not JSON",
    }


async def test_invalid_token_error_does_not_echo_the_token(client, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(1_000_000_000))  # long expired
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["error_description"]
    assert token not in response.text and token not in response.headers["www-authenticate"]


async def test_issuer_unreachable_before_first_fetch_is_503_not_401(respx_mock, rsa_private_key):
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("refused"))
    async with running(create_app(Settings(issuer_url=ISSUER))) as client:
        token = make_token(rsa_private_key, FakeClock(time.time()))
        response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "ready": False,
            "keys": "none",
            "last_fetch_failed": True,
            "consecutive_fetch_failures": ready.json()["consecutive_fetch_failures"],
        }
        assert ready.json()["consecutive_fetch_failures"] >= 1
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_turns_ready_once_keys_are_held(client, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert (await client.get("/readyz")).json() == {
        "ready": True,
        "keys": "fresh",
        "last_fetch_failed": False,
        "consecutive_fetch_failures": 0,
    }


async def test_a_third_party_app_protects_a_route_in_three_lines(issuer_routes, rsa_private_key):
    async with running(third_party_app()) as client:
        token = make_token(rsa_private_key, FakeClock(time.time()))
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/orders", headers=auth)).json() == {"owner": "7"}
        denied = await client.get("/admin", headers=auth)
        assert denied.status_code == 403
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="admin read"' in challenge
        assert (await client.get("/orders")).status_code == 401


async def test_a_token_in_a_form_the_route_parses_is_refused(issuer_routes, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    async with running(third_party_app()) as client:
        response = await client.post(
            "/orders",
            data={"note": "two", "access_token": token},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_route_can_still_read_the_body_the_check_read(issuer_routes, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    async with running(third_party_app()) as client:
        response = await client.post(
            "/raw", data={"note": "two"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.json() == {"body": "note=two"}


async def test_for_issuer_builds_the_callers_class():
    # A subclass's for_issuer is that subclass (it was typed, and built, as the base class).
    class Audited(Verifier):
        pass

    verifier = Audited.for_issuer(ISSUER, audience="api")
    assert type(verifier) is Audited
    async with verifier.key_set:
        pass


async def test_several_spaces_after_the_scheme_are_allowed(protected, rsa_private_key):
    # RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token.
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.get(path, headers={"Authorization": f"Bearer   {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded ;charset=utf-8",
        "Application/X-WWW-Form-URLencoded",
    ],
)
async def test_a_token_in_a_form_body_is_refused_whatever_the_content_type_spelling(
    protected, rsa_private_key, content_type
):
    # The media type is compared case-insensitively and without its parameters (RFC 9110 8.3.1).
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.request(
        "GET", path, content=f"access_token={token}", headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "access tokens are accepted only in the Authorization header, not in the body"
    )


@pytest.mark.parametrize(
    "framing",
    [
        [(b"transfer-encoding", b"chunked")],
        [(b"content-length", b"{n}"), (b"transfer-encoding", b"chunked")],
        [(b"content-length", b"{n}"), (b"content-length", b"{n}")],
    ],
    ids=["chunked", "chunked-and-length", "two-lengths"],
)
async def test_a_form_body_of_unclear_length_is_not_read_before_the_token(
    protected, rsa_private_key, framing
):
    # Only a body whose length is declared once, and no transfer coding, bounds the read.
    client, path = protected
    body = b"access_token=abc"
    headers = [(b"content-type", b"application/x-www-form-urlencoded")] + [
        (name, value.replace(b"{n}", str(len(body)).encode())) for name, value in framing
    ]
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await client._transport.app(http_scope("GET", path, headers), receive, send)
    assert sent[0]["status"] == 401
    assert json.loads(sent[1]["body"]) == {
        "error_description": "the request carries no bearer token"
    }


async def test_a_form_body_of_exactly_the_checked_size_is_read(protected, rsa_private_key):
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    form = f"access_token={token}&pad=".encode()
    form += b"x" * (MAX_CHECKED_FORM_BYTES - len(form))
    response = await client.request(
        "GET", path, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_query_parameter_only_named_like_access_token_is_not_refused(
    protected, rsa_private_key
):
    client, path = protected
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.get(
        f"{path}?access_token_hint=1&my_access_token=2",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
