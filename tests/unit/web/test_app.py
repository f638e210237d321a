"""The issuer's HTTP surface: /token (password grant), JWKS, metadata."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from openapi_spec_validator import validate
from sqlalchemy.exc import OperationalError

from issuer.accounts.users import User
from issuer.admin import create_user
from issuer.app import create_app
from issuer.builders import open_key_store, rotation_policy
from issuer.keys.files import FileKeyStore
from issuer.oauth.metadata import MetadataCache
from issuer.settings import Settings
from issuer.web.sign_in import LOGOUT_PARAMETERS
from tests.support import (
    REDIS_URL,
    call_asgi,
    db_session,
    fresh_key_set,
    http_scope,
    running,
    served,
    stalled_body,
)

ISSUER = "http://issuer.test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    fresh_key_set(tmp_path / "keys")
    settings = Settings(
        url=ISSUER,
        keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{tmp_path / 'issuer.db'}",
        bcrypt_rounds=4,
        keys_poll_interval=0.05,
    )
    create_user(settings, "johndoe", "secret123", scope="profile read")
    create_user(settings, "disabled", "secret123")
    with db_session(settings.database_url) as session:
        user = session.query(User).filter_by(username="disabled").one()
        user.disabled = True
        session.commit()
    return settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings), ISSUER) as client:
        yield client


async def login(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await client.post("/token", data=form)


async def decode(client: httpx.AsyncClient, token: str) -> jwt.Token:
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    return jwt.decode(token, keys, algorithms=["RS256"])


async def test_password_grant_issues_rfc9068_token(client):
    response = await login(client, grant_type="password", username="johndoe", password="secret123")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "profile read"
    token = await decode(client, body["access_token"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "RS256"
    claims = token.claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "api"
    assert claims["preferred_username"] == "johndoe"
    assert claims["client_id"] == "public"
    assert claims["scope"] == "profile read"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"] and claims["jti"]


async def test_form_without_grant_type_is_a_password_grant(client):
    response = await login(client, username="johndoe", password="secret123")
    assert response.status_code == 200


async def test_each_token_has_a_unique_jti(client):
    first = (await login(client, username="johndoe", password="secret123")).json()
    second = (await login(client, username="johndoe", password="secret123")).json()
    a = (await decode(client, first["access_token"])).claims["jti"]
    b = (await decode(client, second["access_token"])).claims["jti"]
    assert a != b


@pytest.mark.parametrize(
    ("username", "password"),
    [("johndoe", "wrong-password"), ("nobody", "secret123"), ("disabled", "secret123")],
    ids=["wrong-password", "unknown-user", "disabled-user"],
)
async def test_bad_credentials_get_one_indistinguishable_answer(client, username, password):
    response = await login(client, username=username, password=password)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "invalid username or password",
    }
    assert response.headers["cache-control"] == "no-store"


async def test_requested_scope_narrows_the_grant(client):
    response = await login(client, username="johndoe", password="secret123", scope="read")
    assert response.json()["scope"] == "read"
    assert (await decode(client, response.json()["access_token"])).claims["scope"] == "read"


async def test_scope_beyond_the_users_is_invalid_scope(client):
    response = await login(client, username="johndoe", password="secret123", scope="read admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "johndoe"}, "invalid_request"),
        ({"password": "secret123"}, "invalid_request"),
        ({"grant_type": "device_code", "device_code": "x"}, "unsupported_grant_type"),
    ],
)
async def test_malformed_grant_requests_get_rfc6749_errors(client, form, error):
    response = await client.post("/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_an_error_description_quotes_a_long_request_cut_short(client):
    # The audit: a 60,000-character scope came back whole in the description.
    form = {"grant_type": "password", "username": "johndoe", "password": "secret123"}
    response = await client.post("/token", data={**form, "scope": "x" * 60_000})
    assert response.json()["error"] == "invalid_scope"
    described = response.json()["error_description"]
    assert described.startswith("scope not allowed: xxx") and described.endswith("...")
    assert len(described) == 300


@pytest.mark.parametrize(
    ("grant_type", "described"),
    [
        ("client_credentials;client_id=ci;client_secret=s3cret", "grant_type is not supported"),
        ("urn:example:grant-type:x", "grant_type 'urn:example:grant-type:x' is not supported"),
    ],
)
async def test_an_unsupported_grant_type_is_quoted_only_if_it_looks_like_one(
    client, grant_type, described
):
    # The fuzzing audit: a form split on ";" came back with its client secret in the answer.
    response = await client.post("/token", data={"grant_type": grant_type})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
    assert response.json()["error_description"] == described


@pytest.mark.parametrize(
    ("content", "described"),
    [
        (
            "scope=1&" + quote('é"\\x\x7f') + "=1&" + quote('é"\\x\x7f') + "=2",
            "a parameter is repeated",
        ),
        ("scope=a&scope=b&grant_type=password", "repeated parameter: scope"),
        ("Call+us+at+555-0100=1&Call+us+at+555-0100=2", "a parameter is repeated"),
    ],
)
async def test_a_repeated_parameter_is_named_only_if_the_protocol_defines_it(
    client, content, described
):
    # A name the sender made up is its own text (and outside RFC 6749 section 5.2's
    # charset): quoted back, it would be any site's words on the issuer's error pages.
    response = await client.post(
        "/token", content=content, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert response.json()["error_description"] == described


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/token", 405, "POST"),
        ("DELETE", "/revoke", 405, "POST"),
        # The fuzzing audit: the routing named only the path's first route's methods.
        ("PUT", "/userinfo", 405, "GET, POST"),
        ("PUT", "/authorize", 405, "GET, POST"),
        ("DELETE", "/logout", 405, "GET, POST"),
        ("POST", "/healthz", 405, "GET, HEAD"),
        ("PUT", "/.well-known/jwks.json", 405, "GET, HEAD"),
        # The sign-in forms' GET routes only answer a 405 page: not in their Allow.
        ("PUT", "/login", 405, "POST"),
        ("DELETE", "/consent", 405, "POST"),
        ("POST", "/metrics", 405, "GET, HEAD"),
        ("GET", "/nowhere", 404, None),
        ("GET", "/static/nowhere.css", 404, None),
    ],
)
async def test_what_routing_refuses_gets_an_oauth_error_body(client, method, path, status, allow):
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers.get("allow") == allow
    assert response.json()["error"] == "invalid_request" and response.json()["error_description"]
    # The audit: GET /token's 405 was the one answer of the token endpoints without no-store.
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


async def test_an_unexpected_error_is_answered_and_logged_with_the_request_id(
    settings, monkeypatch, caplog
):
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("issuer.web.oauth.read_form", broken)
    app = create_app(settings)
    async with served(app) as asgi:
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            # With an Origin the request goes the framework's whole way, past its error
            # middleware, which the request context used to sit inside.
            for headers in ({}, {"Origin": "https://app.example"}):
                caplog.clear()
                response = await client.post("/token", data={"a": "b"}, headers=headers)
                assert response.status_code == 500
                assert response.json() == {"error": "server_error"}
                request_id = response.headers["x-request-id"]
                logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
                assert [r.request_id for r in logged] == [request_id], headers


async def test_an_answered_and_logged_error_is_not_raised_on_to_the_server(settings, monkeypatch):
    # The review: the server logged each such error a second time, without the request id,
    # and closed the connection.
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("issuer.web.oauth.read_form", broken)
    headers = [(b"origin", b"https://app.example"), (b"host", b"issuer.test")]
    scope = http_scope("POST", "/token", headers, host="issuer.test")
    async with served(create_app(settings)) as asgi:
        # Returns: nothing left for the server to log.
        sent = await call_asgi(asgi, scope, b"a=b")
    assert sent[0]["status"] == 500


async def test_a_cors_preflight_carries_a_request_id(settings):
    allowing = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    async with running(create_app(allowing), ISSUER) as client:
        preflight = await client.options(
            "/token",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
    assert preflight.status_code == 200 and preflight.headers["x-request-id"]
    async with running(create_app(allowing), ISSUER) as client:
        jwks = await client.get("/.well-known/jwks.json", headers={"Origin": "https://app.example"})
    exposed = jwks.headers["access-control-expose-headers"]
    assert exposed == "X-Request-ID, Retry-After, WWW-Authenticate"


@pytest.mark.parametrize(
    "origin",
    [None, "https://app.example", "https://other.example"],
    ids=["none", "allowed", "other"],
)
@pytest.mark.parametrize(
    "path", ["/.well-known/jwks.json", "/.well-known/openid-configuration", "/static/issuer.css"]
)
async def test_cacheable_answers_vary_on_origin_when_cors_is_on(settings, path, origin):
    # The fuzzing audit: the JWKS (public, max-age=600) carried its CORS headers only when the
    # request had an Origin, with no `Vary: Origin` otherwise, so a shared cache could hand a
    # browser app the answer without them.
    allowing = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    headers = {"Origin": origin} if origin else {}
    async with running(create_app(allowing), ISSUER) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 200
    varies = [v.strip().lower() for v in response.headers.get("vary", "").split(",")]
    assert varies.count("origin") == 1, response.headers
    async with running(create_app(settings), ISSUER) as client:  # no CORS: nothing varies
        assert "vary" not in (await client.get(path)).headers


@pytest.mark.parametrize(
    ("range_", "status"),
    [
        ("bytes=0-9", 206),
        ("bytes=-10", 206),
        ("bytes=0-1, 4-5", 206),
        ("bytes=999999-", 416),  # beyond the file: unsatisfiable (RFC 9110 15.5.17)
        ("items=0-1", 200),  # a unit we do not understand is ignored (RFC 9110 14.2)
        ("bytes=10-5", 200),  # not a valid range: ignored (the whole file), not a plain 400
        ("bytes=", 200),
        ("bytes=a-b", 200),
        ("bytes=" + "9" * 5000 + "-" + "1" * 4999, 200),
        ("bytes=0-" + "1" * 5000, 200),
        ("bytes=0010-0019", 206),
    ],
)
async def test_static_files_answer_a_range_as_http_says(client, range_, status):
    # The fuzzing audit: an unknown unit or an invalid range was a plain-text 400.
    whole = await client.get("/static/issuer.css")
    response = await client.get("/static/issuer.css", headers={"Range": range_})
    assert response.status_code == status
    if status == 200:
        assert response.content == whole.content
    if status == 206 and "," not in range_:
        assert len(response.content) == 10


async def test_a_static_path_with_a_trailing_slash_is_not_found(client):
    response = await client.get("/static/issuer.css/")
    assert response.status_code == 404 and response.json()["error"] == "invalid_request"


async def test_a_refused_cors_preflight_is_a_json_error_nobody_caches(settings):
    # The audit: "Disallowed CORS origin" in plain text, the one refusal not in JSON.
    allowing = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    async with running(create_app(allowing), ISSUER) as client:
        refused = await client.options(
            "/token",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        )
    assert refused.status_code == 400 and refused.headers["cache-control"] == "no-store"
    assert refused.json() == {
        "error": "invalid_request",
        "error_description": "this origin may not make this request (origin, method)",
    }
    assert "access-control-allow-origin" not in refused.headers


async def test_the_openapi_document_is_valid_and_documents_what_the_routes_answer(client):
    # The audit: `"required": []` made it invalid OpenAPI 3.0, two operation ids were
    # repeated, and HTML pages, /revoke's empty answer and /userinfo's errors were missing.
    document = (await client.get("/openapi.json")).json()
    validate(document)
    paths = document["paths"]
    assert "text/html" in paths["/authorize"]["get"]["responses"]["200"]["content"]
    assert {"303", "400"} <= set(paths["/authorize"]["post"]["responses"])
    assert "content" not in paths["/revoke"]["post"]["responses"]["200"]
    assert {"401", "403"} <= set(paths["/userinfo"]["get"]["responses"])
    assert "503" in paths["/readyz"]["get"]["responses"]
    ids = [op["operationId"] for path in paths.values() for op in path.values()]
    assert len(ids) == len(set(ids))
    schemes = document["components"]["securitySchemes"]
    assert schemes["client"]["scheme"] == "basic" and schemes["bearer"]["scheme"] == "bearer"
    assert {"client": []} in paths["/introspect"]["post"]["security"]
    assert paths["/userinfo"]["post"]["security"] == [{"bearer": []}]
    # The fuzzing audit: answers the form endpoints give that their documents did not list.
    for path in ("/token", "/revoke", "/introspect", "/authorize", "/logout"):
        assert {"408", "413", "415"} <= set(paths[path]["post"]["responses"]), path
    assert "text/html" in paths["/logout"]["post"]["responses"]["413"]["content"]
    for path in ("/revoke", "/introspect"):
        form = paths[path]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
        assert form["schema"]["properties"]["token"]["minLength"] == 1
        # The fuzzing audit: /introspect takes client_secret_post as the metadata says, and its
        # document had neither the form's client_id / client_secret nor a way without Basic.
        assert {"client_id", "client_secret"} <= set(form["schema"]["properties"]), path
        assert {} in paths[path]["post"]["security"], path


async def test_the_openapi_document_lists_the_browser_endpoints_parameters(client):
    # The fuzzing audit: /authorize and /logout documented no parameters (GET) and no form
    # (POST), so a reader (or a fuzzer) learnt none of the names the contract lists.
    paths = (await client.get("/openapi.json")).json()["paths"]
    contract = {
        "/authorize": {
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "prompt",
            "max_age",
            "login_hint",
        },
        "/logout": set(LOGOUT_PARAMETERS),
    }
    for path, names in contract.items():
        query = {p["name"]: p for p in paths[path]["get"].get("parameters", [])}
        assert names <= set(query), path
        assert all(p["in"] == "query" for p in query.values())
        body = paths[path]["post"].get("requestBody", {}).get("content", {})
        form = body.get("application/x-www-form-urlencoded", {}).get("schema", {})
        assert names <= set(form.get("properties", {})), path
    authorize = {p["name"]: p for p in paths["/authorize"]["get"]["parameters"]}
    assert authorize["code_challenge_method"]["schema"]["enum"] == ["S256"]
    assert authorize["client_id"]["required"] and not authorize["state"]["required"]


async def test_the_openapi_document_lists_the_statuses_the_endpoints_answer_and_no_others(client):
    # The fuzzing audit: with the database out of reach the browser endpoints answer a 503
    # page and /userinfo a 503 error (tests/unit/oidc: the sign-in pages' outage test), none
    # of them documented; GET /authorize documented a 429 nothing there answers (the sign-in
    # form's limit is /login's), and POST /authorize FastAPI's default 200, which it never
    # answers (a 303, or an error page).
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in [
        ("/authorize", "get"),
        ("/authorize", "post"),
        ("/logout", "get"),
        ("/logout", "post"),
    ]:
        unavailable = paths[path][method]["responses"]["503"]
        assert "text/html" in unavailable["content"], (path, method)
    for method in ("get", "post"):
        userinfo = paths["/userinfo"][method]["responses"]["503"]
        assert "application/json" in userinfo["content"]
    assert "database" in paths["/token"]["post"]["responses"]["503"]["description"]
    assert "429" not in paths["/authorize"]["get"]["responses"]
    assert set(paths["/authorize"]["post"]["responses"]) == {
        "303",
        "400",
        "408",
        "413",
        "415",
        "503",
    }
    assert "content" not in paths["/authorize"]["post"]["responses"]["303"]


async def test_json_body_is_refused_with_invalid_request(client):
    response = await client.post("/token", json={"username": "johndoe", "password": "secret123"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_non_utf8_body_is_invalid_request(client):
    response = await client.post(
        "/token",
        content=b"username=%ff%fe&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error_description"]


async def test_repeated_parameter_is_invalid_request(client):
    response = await client.post(
        "/token",
        content=b"username=johndoe&username=root&password=secret123",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "repeated" in response.json()["error_description"]


async def test_oversized_body_is_refused_with_413(client):
    response = await client.post(
        "/token",
        content=b"username=" + b"a" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


async def test_overlong_password_fails_like_any_wrong_password(client):
    response = await login(client, username="johndoe", password="é" * 100)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_jwks_publishes_only_public_members(client):
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age=600" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert len(keys) == 2  # the active key and the published next key
    for key in keys:
        assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")


async def test_jwks_etag_revalidation_answers_304(client):
    first = await client.get("/.well-known/jwks.json")
    etag = first.headers["etag"]
    again = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get("/.well-known/jwks.json", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200


async def test_jwks_if_none_match_compares_weakly_and_takes_a_star(client):
    # RFC 9110 section 13.1.2: If-None-Match uses the weak comparison (a proxy that
    # compressed the body may have sent W/ on), and "*" matches any current representation.
    etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
    for tag in (f"W/{etag}", "*"):
        again = await client.get("/.well-known/jwks.json", headers={"If-None-Match": tag})
        assert again.status_code == 304, tag
        assert again.headers["etag"] == etag


async def test_jwks_reads_every_if_none_match_line(client):
    # RFC 9110 section 5.3: repeated field lines are one list, in order; the ETag on the
    # second line is as good as on the first (a proxy may add a line of its own).
    etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
    lines = [("If-None-Match", '"stale"'), ("If-None-Match", etag)]
    for extra in ({}, {"Origin": "http://elsewhere.test"}):  # the hot route and the full way
        again = await client.get("/.well-known/jwks.json", headers=[*lines, *extra.items()])
        assert again.status_code == 304
        assert again.headers["etag"] == etag


async def test_jwks_body_is_built_once_per_key_set_change(client, settings):
    first = await client.get("/.well-known/jwks.json")
    second = await client.get("/.well-known/jwks.json")
    assert first.headers["etag"] == second.headers["etag"]
    with open_key_store(settings) as store:
        store.rotate(rotation_policy(settings), force=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rotated = await client.get("/.well-known/jwks.json")
        if rotated.headers["etag"] != first.headers["etag"]:
            break
        await asyncio.sleep(0.05)
    assert len(rotated.json()["keys"]) == 3  # retiring, active and a new next key
    # The new key signs; the old one stays published so its tokens keep verifying.
    token = (await login(client, username="johndoe", password="secret123")).json()
    kid = (await decode(client, token["access_token"])).header["kid"]
    assert kid == FileKeyStore(settings.keys_dir).read_manifest().active.kid


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
)
async def test_metadata_documents_name_the_endpoints(client, path):
    metadata = (await client.get(path)).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/token"
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert "password" in metadata["grant_types_supported"]
    assert metadata["token_endpoint_auth_methods_supported"]


async def test_an_issuer_url_ending_in_a_slash_is_the_identifier_exactly(settings):
    # It was stripped, so the tokens of ISSUER_URL=https://auth.example/ named another issuer
    # than a resource server given the same value (compose gives both the same) would accept.
    url = "http://auth.test/"  # http: under https the demo account would stop the start
    async with running(create_app(settings.model_copy(update={"url": url})), url) as client:
        metadata = (await client.get("/.well-known/openid-configuration")).json()
        token = (await login(client, username="johndoe", password="secret123")).json()
        claims = (await decode(client, token["access_token"])).claims
    assert metadata["issuer"] == claims["iss"] == url
    assert metadata["token_endpoint"] == "http://auth.test/token"
    assert metadata["jwks_uri"] == "http://auth.test/.well-known/jwks.json"


async def test_password_hashing_does_not_block_the_event_loop(tmp_path):
    # With a slow hash (cost 14, ~1 s), a JWKS request made during a login must finish first.
    fresh_key_set(tmp_path / "keys")
    settings = Settings(
        url=ISSUER,
        keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{tmp_path / 'slow.db'}",
        bcrypt_rounds=14,
    )
    order: list[str] = []
    async with running(create_app(settings), ISSUER) as client:

        async def do_login() -> None:
            # An unknown user costs a full hash against the dummy hash.
            await login(client, username="nobody", password="whatever1")
            order.append("login")

        async def do_jwks() -> None:
            await asyncio.sleep(0.05)
            await client.get("/.well-known/jwks.json")
            order.append("jwks")

        await asyncio.gather(do_login(), do_jwks())
    assert order == ["jwks", "login"]


async def test_a_redis_signal_reloads_keys_long_before_the_next_poll(tmp_path, redis_prefix):
    from issuer.keys import events as key_events

    fresh_key_set(tmp_path / "keys")
    settings = Settings(
        url=ISSUER,
        keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{tmp_path / 'db'}",
        bcrypt_rounds=4,
        keys_poll_interval=60,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
    )
    async with running(create_app(settings), ISSUER) as client:
        before = (await client.get("/.well-known/jwks.json")).headers["etag"]
        await asyncio.sleep(0.2)  # the listener has subscribed
        with open_key_store(settings) as store:
            store.rotate(rotation_policy(settings), force=True)
        await asyncio.to_thread(key_events.announce, settings.redis_url, redis_prefix)
        deadline = time.monotonic() + 3
        while (await client.get("/.well-known/jwks.json")).headers["etag"] == before:
            assert time.monotonic() < deadline, "the signal did not wake the key watcher"
            await asyncio.sleep(0.05)


def max_age(response: httpx.Response) -> int:
    directives = dict(
        part.strip().partition("=")[::2] for part in response.headers["cache-control"].split(",")
    )
    return int(directives["max-age"])


async def test_the_jwks_max_age_is_short_for_one_max_age_after_a_revocation(settings, clock):
    store = FileKeyStore(settings.keys_dir, clock=clock)
    manifest = store.read_manifest()
    revoked = next(record.kid for record in manifest.published if record is not manifest.active)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        before = await client.get("/.well-known/jwks.json")
        assert max_age(before) == 600 and revoked in before.text
        store.revoke(revoked)  # as `rotate_keys.py --revoke` does
        for _ in range(100):  # the issuer reloads its key set within its poll interval
            after = await client.get("/.well-known/jwks.json")
            if revoked not in after.text:
                break
            await asyncio.sleep(0.05)
        assert revoked not in after.text
        # Caches come back within a minute for the next max-age (ISSUER_JWKS_MAX_AGE)...
        assert max_age(after) == 60
        etag = after.headers["etag"]
        not_modified = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304 and max_age(not_modified) == 60
        clock.advance(599)
        assert max_age(await client.get("/.well-known/jwks.json")) == 60
        clock.advance(2)  # ...then the usual lifetime again
        assert max_age(await client.get("/.well-known/jwks.json")) == 600


async def test_the_metadata_is_built_at_start_up(client, monkeypatch):
    # The audit: an issuer whose database went away after it started answered its first
    # metadata request 503, so a resource server starting then found no keys.
    def unreachable(*_: object) -> bytes:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(MetadataCache, "rebuild", unreachable)
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        response = await client.get(path)
        assert response.status_code == 200 and response.json()["jwks_uri"]


@pytest.mark.parametrize(
    ("root_path", "query"), [("", b"x=%FF"), ("", b"x=\xff"), ("/auth", b"")], ids=str
)
async def test_a_sign_in_page_refusal_is_a_page_whatever_its_path_and_query(
    settings, root_path, query
):
    # The review: the page was chosen by request.url.path, which decoding a raw \xff in the
    # query made raise inside the error handler, and which a root path hid.
    headers = [(b"content-type", b"text/plain"), (b"host", b"testserver")]
    scope = {**http_scope("POST", root_path + "/login", headers), "query_string": query}
    scope["root_path"] = root_path
    async with served(create_app(settings)) as asgi:
        sent = await call_asgi(asgi, scope, b"{}")
    start = sent[0]
    assert start["status"] == 400
    assert (b"content-type", b"text/html; charset=utf-8") in start["headers"]


async def test_a_token_request_whose_body_stops_arriving_is_answered_408(settings, monkeypatch):
    monkeypatch.setattr("issuer.web.forms.BODY_DEADLINE", 0.2)
    receive = stalled_body(b"grant_type=pass")  # the rest never comes

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"100"),
    ]
    async with served(create_app(settings)) as asgi:
        await asyncio.wait_for(asgi(http_scope("POST", "/token", headers), receive, send), 5)
    assert sent[0]["status"] == 408
    assert (b"cache-control", b"no-store") in sent[0]["headers"]
    assert b'"error":"invalid_request"' in sent[1]["body"].replace(b" ", b"")
