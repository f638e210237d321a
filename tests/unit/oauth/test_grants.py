"""OAuth 2.0 grants, revocation and introspection against the issuer app (fake clock)."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from issuer.accounts.passwords import PasswordPolicyError
from issuer.accounts.users import User, UserError, UserRepository
from issuer.admin import (
    SignedOut,
    SignOutUnfinished,
    change_client,
    change_user,
    create_client,
    create_user,
)
from issuer.app import create_app
from issuer.builders import open_database
from issuer.oauth.clients import Client, ClientError, ClientRepository, secret_matches
from issuer.oidc.sessions import BrowserSessions
from issuer.settings import Settings
from issuer.storage.engine import make_engine, make_sessions
from resource_server.base64url import b64url_decode
from tests.support import (
    REDIS_URL,
    FakeClock,
    TcpProxy,
    db_session,
    fresh_key_set,
    running,
    sign_out_after_password_check,
)

ISSUER = "http://issuer.test"
DAY = 86400


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    fresh_key_set(tmp_path / "keys")
    settings = Settings(
        url=ISSUER,
        keys_dir=tmp_path / "keys",
        database_url=database_url,
        bcrypt_rounds=4,
        refresh_token_ttl=30 * DAY,
        refresh_token_idle_ttl=7 * DAY,
    )
    create_user(settings, "alice", "wonderland1", scope="read write admin")
    return settings


@pytest.fixture
def secrets(settings: Settings) -> dict[str, str]:
    service = create_client(
        settings, "service", ("client_credentials",), scope="read write", audiences=("billing",)
    )
    webapp = create_client(
        settings, "webapp", ("password", "refresh_token"), scope="read write", public=False
    )
    gateway = create_client(
        settings, "api-gateway", ("client_credentials",), resource_audiences=("api",)
    )
    create_client(settings, "spa", ("password", "refresh_token"), scope="read", public=True)
    create_client(settings, "cc-only-public-ish", ("password",), scope="read", public=True)
    assert service.secret and webapp.secret and gateway.secret
    return {"service": service.secret, "webapp": webapp.secret, "api-gateway": gateway.secret}


@pytest.fixture
async def client(settings, secrets, clock) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        yield client


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def claims_of(client: httpx.AsyncClient, token: str, clock: FakeClock) -> dict:
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    return jwt.decode(token, keys, algorithms=["RS256"]).claims


async def password_login(client, client_id="spa", secret=None, scope=None) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "wonderland1",
        "client_id": client_id,
    }
    if secret:
        form["client_secret"] = secret
    if scope:
        form["scope"] = scope
    return await client.post("/token", data=form)


async def refresh(client, token, client_id="spa", scope=None) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    if scope:
        form["scope"] = scope
    return await client.post("/token", data=form)


# -- client_credentials --------------------------------------------------------------------


async def test_client_credentials_with_basic_auth(client, secrets, clock):
    response = await client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic("service", secrets["service"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert body["scope"] == "read write"
    claims = await claims_of(client, body["access_token"], clock)
    assert claims["client_id"] == "service"
    assert claims["sub"] == "client:service"  # never a user's sub (those are numbers)
    assert claims["aud"] == "billing"


async def test_a_clients_access_token_ttl_shortens_the_issuers_but_never_lengthens_it(
    settings, clock
):
    ttl = settings.access_token_ttl
    short = create_client(settings, "short", ("client_credentials",), access_token_ttl=60)
    long = create_client(settings, "long", ("client_credentials",), access_token_ttl=ttl + 600)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        for registered, expected in ((short, 60), (long, ttl)):
            assert registered.secret
            response = await client.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers=basic(registered.client.client_id, registered.secret),
            )
            assert response.status_code == 200, response.text
            assert response.json()["expires_in"] == expected
            claims = await claims_of(client, response.json()["access_token"], clock)
            assert claims["exp"] - claims["iat"] == expected


async def test_client_credentials_with_secret_in_the_form_and_narrowed_scope(client, secrets):
    response = await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "service",
            "client_secret": secrets["service"],
            "scope": "read",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "read"


async def test_client_credentials_beyond_the_clients_scope_is_invalid_scope(client, secrets):
    response = await client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=basic("service", secrets["service"]),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_wrong_secret_with_basic_is_401_with_a_challenge(client):
    response = await client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("service", "wrong")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_wrong_secret_in_the_form_is_401_invalid_client(client):
    response = await client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "service", "client_secret": "wrong"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    # RFC 9110 section 15.5.2: every 401 carries a challenge, client_secret_post included.
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials"},
        {"grant_type": "client_credentials", "client_id": "spa"},
        {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
    ],
    ids=["no-client", "public-client", "unknown-client"],
)
async def test_client_credentials_needs_an_authenticated_confidential_client(client, form):
    response = await client.post("/token", data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_grant_the_client_is_not_registered_for_is_unauthorized_client(client, secrets):
    response = await client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic("webapp", secrets["webapp"]),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_two_authentication_methods_at_once_is_invalid_request(client, secrets):
    response = await client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": secrets["service"]},
        headers=basic("service", secrets["service"]),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()])
async def test_malformed_basic_credentials_are_invalid_client(client, header):
    response = await client.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# A form each client-authenticating endpoint takes, less its client.
CLIENT_ENDPOINTS = {
    "/token": {"grant_type": "client_credentials"},
    "/revoke": {"token": "x"},
    "/introspect": {"token": "x"},
}


@pytest.mark.parametrize("path", CLIENT_ENDPOINTS)
async def test_a_nul_in_a_form_parameter_is_invalid_request_never_a_500(client, path):
    # The audit: client_id=a%00b reached PostgreSQL, whose text cannot hold NUL (a 500).
    for extra in ({"client_id": "a\x00b", "client_secret": "x"}, {"client_id": "a\x00b"}):
        response = await client.post(path, data={**CLIENT_ENDPOINTS[path], **extra})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", CLIENT_ENDPOINTS)
async def test_a_basic_client_id_that_cannot_be_registered_is_a_counted_unknown_client(
    client, settings, secrets, path
):
    for _ in range(settings.rate_limit_client_auth_failures):
        response = await client.post(
            path, data=CLIENT_ENDPOINTS[path], headers=basic("a\x00b", "x")
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic ")
    # Counted like any unknown client: the address is locked out, even with a real secret.
    locked = await client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic("service", secrets["service"]),
    )
    assert locked.status_code == 429


def test_client_secrets_are_stored_only_as_a_keyed_hash(settings, secrets):
    with db_session(settings.database_url) as session:
        stored = session.query(Client).filter_by(client_id="service").one().secret_hash
    assert stored.startswith("hmac-sha256$")
    assert secrets["service"] not in stored
    assert len(b64url_decode(secrets["service"])) >= 32  # 256 bits


# -- password with clients -------------------------------------------------------------------


async def test_password_grant_with_a_public_client_returns_a_refresh_token(client, clock):
    response = await password_login(client)
    body = response.json()
    assert response.status_code == 200
    assert body["scope"] == "read"  # the user's scopes, limited to the client's
    assert len(body["refresh_token"]) >= 43
    assert (await claims_of(client, body["access_token"], clock))["client_id"] == "spa"


async def test_password_grant_with_a_confidential_client_needs_its_secret(client, secrets):
    assert (await password_login(client, "webapp")).status_code == 401
    assert (await password_login(client, "webapp", secrets["webapp"])).status_code == 200


async def test_password_grant_for_a_client_without_it_is_unauthorized_client(client, secrets):
    response = await password_login(client, "service", secrets["service"])
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_password_grant_without_a_client_gets_no_refresh_token(client):
    response = await client.post("/token", data={"username": "alice", "password": "wonderland1"})
    assert response.status_code == 200
    assert "refresh_token" not in response.json()


async def test_password_grant_for_a_client_not_registered_for_refresh_gets_no_refresh_token(
    client, clock
):
    response = await password_login(client, "cc-only-public-ish")
    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    claims = await claims_of(client, response.json()["access_token"], clock)
    assert claims["client_id"] == "cc-only-public-ish"


# -- refresh tokens ---------------------------------------------------------------------------


async def test_refresh_rotates_the_token(client):
    first = (await password_login(client)).json()
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (await refresh(client, second["refresh_token"])).status_code == 200


async def test_reused_refresh_token_revokes_the_whole_family(client, secrets):
    first = (await password_login(client)).json()
    second = (await refresh(client, first["refresh_token"])).json()
    reuse = await refresh(client, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The legitimate-looking successor is dead too, and so is its access token.
    assert (await refresh(client, second["refresh_token"])).json()["error"] == "invalid_grant"
    introspected = await client.post(
        "/introspect",
        data={"token": second["access_token"]},
        headers=basic("service", secrets["service"]),
    )
    assert introspected.json() == {"active": False}


async def test_concurrent_use_of_one_refresh_token_lets_exactly_one_win(client):
    token = (await password_login(client)).json()["refresh_token"]
    responses = await asyncio.gather(*(refresh(client, token) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400, 400]


async def test_refresh_may_narrow_but_never_widen_scope(settings, secrets, clock):
    create_client(settings, "wide", ("password", "refresh_token"), scope="read write", public=True)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        first = (await password_login(client, "wide", scope="read")).json()
        widened = await refresh(client, first["refresh_token"], "wide", scope="read write")
        assert widened.json()["error"] == "invalid_scope"
        narrowed = await refresh(client, first["refresh_token"], "wide", scope="read")
        assert narrowed.json()["scope"] == "read"


async def test_refresh_token_idle_timeout(client, clock):
    token = (await password_login(client)).json()["refresh_token"]
    clock.advance(7 * DAY)
    response = await refresh(client, token)
    assert response.json()["error"] == "invalid_grant"
    assert "unused" in response.json()["error_description"]


async def test_refresh_token_absolute_lifetime_survives_no_amount_of_use(client, clock):
    token = (await password_login(client)).json()["refresh_token"]
    for _ in range(4):  # used every 6 days: never idle, but the session ages
        clock.advance(6 * DAY)
        response = await refresh(client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
    clock.advance(6 * DAY)  # 30 days after login
    response = await refresh(client, token)
    assert "lifetime" in response.json()["error_description"]


async def test_refresh_by_another_client_is_invalid_grant(client, secrets):
    token = (await password_login(client)).json()["refresh_token"]
    response = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic("webapp", secrets["webapp"]),
    )
    assert response.json()["error"] == "invalid_grant"


async def test_disabled_users_refresh_fails(client, settings):
    token = (await password_login(client)).json()["refresh_token"]
    with db_session(settings.database_url) as session:
        session.query(User).filter_by(username="alice").one().disabled = True
        session.commit()
    assert (await refresh(client, token)).json()["error"] == "invalid_grant"


async def test_a_grant_made_with_no_scope_refreshes_with_no_scope(client, settings):
    create_user(settings, "nobody", "wonderland2")  # holds no scope at all
    form = {"grant_type": "password", "username": "nobody", "password": "wonderland2"}
    first = (await client.post("/token", data={**form, "client_id": "spa"})).json()
    assert "scope" not in first
    refreshed = await refresh(client, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert "scope" not in refreshed.json() and refreshed.json()["refresh_token"]


async def test_the_password_grant_gives_identity_scopes_only_to_a_user_created_with_them(
    client, settings
):
    # Unlike a sign-in through /authorize (every user holds openid, profile and email there);
    # said so in docs/oauth.md.
    create_client(settings, "profiles", ("password",), scope="openid profile", public=True)
    create_user(settings, "plain", "wonderland2", scope="read")
    create_user(settings, "known", "wonderland2", scope="profile")
    form = {"grant_type": "password", "password": "wonderland2", "client_id": "profiles"}
    refused = await client.post("/token", data={**form, "username": "plain", "scope": "profile"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    everything = (await client.post("/token", data={**form, "username": "plain"})).json()
    assert "scope" not in everything  # nothing the client may ask is held by the user
    granted = await client.post("/token", data={**form, "username": "known", "scope": "profile"})
    assert granted.status_code == 200 and granted.json()["scope"] == "profile"


async def test_a_refresh_that_would_leave_no_scope_is_refused_and_the_token_kept(client, settings):
    token = (await password_login(client, scope="read")).json()["refresh_token"]

    def give_alice(scopes: str) -> None:
        with db_session(settings.database_url) as session:
            session.query(User).filter_by(username="alice").one().scopes = scopes
            session.commit()

    give_alice("write")
    refused = await refresh(client, token)
    # A token with no scope could not say that it differs from the grant's (RFC 6749 5.1).
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    give_alice("read write")
    assert (await refresh(client, token)).json()["scope"] == "read"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "refresh_token", "client_id": "spa"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, 401, "invalid_client"),
        (
            {"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "spa"},
            400,
            "invalid_grant",
        ),
        ({"grant_type": "implicit"}, 400, "unsupported_grant_type"),
    ],
)
async def test_refresh_request_errors(client, form, status, error):
    response = await client.post("/token", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error


# -- revocation and introspection -------------------------------------------------------------


async def introspect(client, secrets, token, as_client="api-gateway"):
    """Introspection by the resource server of audience `api` (or by `as_client`)."""
    response = await client.post(
        "/introspect", data={"token": token}, headers=basic(as_client, secrets[as_client])
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_introspection_reports_an_active_access_token(client, secrets):
    token = (await password_login(client)).json()["access_token"]
    body = await introspect(client, secrets, token)
    assert body["active"] is True
    assert (body["client_id"], body["username"], body["scope"]) == ("spa", "alice", "read")
    assert body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]


async def test_an_active_answer_carries_every_member_of_the_token_and_nothing_else(
    client, secrets, clock
):
    # RFC 7662 section 2.2: the access token's claims as they are, `username` for its
    # preferred_username; a refresh token's own state, its exp the sooner of its idle and its
    # session end.
    login = (await password_login(client, "webapp", secrets["webapp"])).json()
    claims = await claims_of(client, login["access_token"], clock)
    assert await introspect(client, secrets, login["access_token"]) == {
        "active": True,
        "token_type": "Bearer",
        **{name: claims[name] for name in ("iss", "sub", "aud", "exp", "iat", "jti")},
        "client_id": "webapp",
        "scope": "read write",
        "username": "alice",
    }
    now = int(clock())
    assert await introspect(client, secrets, login["refresh_token"], as_client="webapp") == {
        "active": True,
        "client_id": "webapp",
        "sub": claims["sub"],
        "scope": "read write",
        "iat": now,
        "exp": now + 7 * DAY,
        "iss": ISSUER,
    }
    token = login["refresh_token"]
    for _ in range(4):  # used every 6 days: the fourth successor's idle end is past day 30
        clock.advance(6 * DAY)
        rotated = await client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            headers=basic("webapp", secrets["webapp"]),
        )
        token = rotated.json()["refresh_token"]
    answer = await introspect(client, secrets, token, as_client="webapp")
    assert (answer["iat"], answer["exp"]) == (now + 24 * DAY, now + 30 * DAY)


async def test_only_a_resource_server_of_the_tokens_audience_learns_it_is_active(client, secrets):
    token = (await password_login(client)).json()["access_token"]  # aud "api"
    assert (await introspect(client, secrets, token))["active"] is True
    # A confidential client of another audience gets what an unknown token gets (RFC 7662 4).
    assert await introspect(client, secrets, token, as_client="service") == {"active": False}


async def test_a_client_may_introspect_the_tokens_issued_to_it(client, secrets):
    token = (await password_login(client, "webapp", secrets["webapp"])).json()["access_token"]
    body = await introspect(client, secrets, token, as_client="webapp")
    assert body["active"] is True and body["client_id"] == "webapp"


async def test_no_client_can_act_as_the_client_of_client_less_tokens(client, settings):
    # The audit's exploit: a confidential client named like the default client_id owned every
    # token issued with no client. The name is refused, and one registered before is inert.
    with pytest.raises(ClientError, match="reserved"):
        create_client(settings, settings.default_client_id, ("client_credentials",))
    with open_database(settings) as engine:
        squatter = ClientRepository(make_sessions(engine)).create(
            settings.default_client_id,
            ("client_credentials", "authorization_code"),
            redirect_uris=("https://squatter.example/cb",),
        )
    assert squatter.secret is not None
    sign_in = await client.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": settings.default_client_id,
            "redirect_uri": "https://squatter.example/cb",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
    )
    assert sign_in.status_code == 400 and "not registered" in sign_in.text
    token = (
        await client.post("/token", data={"username": "alice", "password": "wonderland1"})
    ).json()["access_token"]
    assert json.loads(b64url_decode(token.split(".")[1]))["client_id"] == "public"
    credentials = basic(settings.default_client_id, squatter.secret)
    for path in ("/introspect", "/revoke"):
        response = await client.post(path, data={"token": token}, headers=credentials)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_introspection_of_expired_or_garbage_tokens_is_inactive(client, secrets, clock):
    token = (await password_login(client)).json()["access_token"]
    assert (await introspect(client, secrets, "garbage"))["active"] is False
    clock.advance(901)
    assert (await introspect(client, secrets, token))["active"] is False


@pytest.mark.parametrize(
    "auth",
    [{}, {"data": {"client_id": "spa"}}, {"headers": basic("service", "wrong")}],
    ids=["anonymous", "public-client", "wrong-secret"],
)
async def test_introspection_requires_client_authentication(client, auth):
    data = {"token": "anything", **auth.get("data", {})}
    response = await client.post("/introspect", data=data, headers=auth.get("headers", {}))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_revoking_an_access_token_makes_it_inactive(client, secrets):
    token = (
        await client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic("service", secrets["service"]),
        )
    ).json()["access_token"]
    response = await client.post(
        "/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        headers=basic("service", secrets["service"]),
    )
    assert response.status_code == 200
    assert (await introspect(client, secrets, token))["active"] is False


async def test_revoking_a_refresh_token_revokes_its_family_and_access_tokens(client, secrets):
    login = (await password_login(client)).json()
    response = await client.post(
        "/revoke", data={"token": login["refresh_token"], "client_id": "spa"}
    )
    assert response.status_code == 200
    assert (await refresh(client, login["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await introspect(client, secrets, login["access_token"]))["active"] is False


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "id_token"])
async def test_token_type_hint_is_only_a_hint_and_the_answer_is_not_to_be_stored(
    client, secrets, hint
):
    # RFC 7009 2.1: a hint naming the other kind, or a kind never revoked here, still revokes.
    first, second = [(await password_login(client)).json() for _ in range(2)]
    for token in (first["access_token"], second["refresh_token"]):
        response = await client.post(
            "/revoke", data={"token": token, "token_type_hint": hint, "client_id": "spa"}
        )
        assert response.status_code == 200 and response.content == b""
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
    assert (await introspect(client, secrets, first["access_token"]))["active"] is False
    assert (await refresh(client, first["refresh_token"])).status_code == 200  # not its family
    assert (await refresh(client, second["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await introspect(client, secrets, second["access_token"]))["active"] is False


async def test_revoking_an_unknown_token_is_still_200(client):
    response = await client.post("/revoke", data={"token": "never-issued", "client_id": "spa"})
    assert response.status_code == 200


async def test_revoking_another_clients_token_is_refused(client, secrets):
    token = (await password_login(client)).json()["access_token"]
    response = await client.post(
        "/revoke", data={"token": token}, headers=basic("service", secrets["service"])
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert (await introspect(client, secrets, token))["active"] is True


async def test_revoking_another_clients_refresh_token_is_refused_and_ends_nothing(client, secrets):
    login = (await password_login(client)).json()
    for headers, data in (
        (basic("webapp", secrets["webapp"]), {}),
        ({}, {"client_id": "cc-only-public-ish"}),  # a public client, merely naming itself
    ):
        response = await client.post(
            "/revoke", data={"token": login["refresh_token"], **data}, headers=headers
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
    assert (await introspect(client, secrets, login["access_token"]))["active"] is True
    assert (await refresh(client, login["refresh_token"])).status_code == 200


async def test_revocation_requires_a_client(client):
    response = await client.post("/revoke", data={"token": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
@pytest.mark.parametrize("form", [{}, {"token": ""}], ids=["absent", "empty"])
async def test_revocation_and_introspection_without_a_token_are_invalid_request(
    client, secrets, path, form
):
    response = await client.post(
        path,
        data={**form, "token_type_hint": "access_token"},
        headers=basic("api-gateway", secrets["api-gateway"]),
    )
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "error_description": "token is required"}


async def test_refresh_tokens_are_introspectable_by_their_own_client_only(client, secrets):
    login = await password_login(client, "webapp", secrets["webapp"])
    token = login.json()["refresh_token"]
    own = await client.post(
        "/introspect", data={"token": token}, headers=basic("webapp", secrets["webapp"])
    )
    assert own.json()["active"] is True
    # RFC 7662 section 2.2: token_type is an access-token type; a refresh token has none.
    assert "token_type" not in own.json()
    assert (await introspect(client, secrets, token))["active"] is False


async def test_a_grant_of_no_scope_introspects_without_a_scope_member(client, secrets, settings):
    # RFC 7662 2.2 / RFC 6749 3.3: a scope is one token or more; a refresh token of a grant
    # of no scope answered "scope": "", where its access token says nothing.
    create_user(settings, "nobody", "wonderland2")  # holds no scope at all
    login = await client.post(
        "/token",
        data={"grant_type": "password", "username": "nobody", "password": "wonderland2"},
        headers=basic("webapp", secrets["webapp"]),
    )
    for token in (login.json()["access_token"], login.json()["refresh_token"]):
        answer = await introspect(client, secrets, token, as_client="webapp")
        assert answer["active"] is True and "scope" not in answer


async def test_a_disabled_users_tokens_introspect_as_inactive(client, secrets, settings):
    login = (await password_login(client, "webapp", secrets["webapp"])).json()
    access, refresh_token = login["access_token"], login["refresh_token"]
    assert (await introspect(client, secrets, access, as_client="webapp"))["active"] is True
    with db_session(settings.database_url) as session:
        session.query(User).filter_by(username="alice").one().disabled = True
        session.commit()
    # As refreshing and /userinfo already said: the user can no longer act.
    for token in (access, refresh_token):
        assert await introspect(client, secrets, token, as_client="webapp") == {"active": False}


async def test_a_deleted_users_tokens_stay_dead_when_another_user_is_created(
    client, secrets, settings
):
    # The audit: SQLite gave the deleted (highest) user's id to the next user; the tokens,
    # which name the user by id, came back to life, and the refresh token minted tokens for
    # the new user.
    login = (await password_login(client, "webapp", secrets["webapp"])).json()
    access, refresh_token = login["access_token"], login["refresh_token"]
    with db_session(settings.database_url) as session:
        alice = session.query(User).filter_by(username="alice").one().id
        session.execute(text("DELETE FROM users WHERE username = 'alice'"))  # as operators do
        session.commit()
    create_user(settings, "yan", "yan-password-1", scope="read write")
    for token in (access, refresh_token):
        assert await introspect(client, secrets, token, as_client="webapp") == {"active": False}
    refreshed = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic("webapp", secrets["webapp"]),
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    with db_session(settings.database_url) as session:
        assert session.query(User).filter_by(username="yan").one().id > alice


@pytest.mark.parametrize("gone", ["disabled", "deleted"])
async def test_a_disabled_or_deleted_clients_tokens_introspect_as_inactive(
    client, secrets, settings, gone
):
    spa = (await password_login(client, "spa")).json()["access_token"]
    alice = {"username": "alice", "password": "wonderland1"}
    anonymous = (await client.post("/token", data=alice)).json()["access_token"]
    assert (await introspect(client, secrets, spa))["active"] is True
    with db_session(settings.database_url) as session:
        row = session.query(Client).filter_by(client_id="spa").one()
        if gone == "disabled":
            row.disabled = True
        else:
            session.delete(row)
        session.commit()
    assert await introspect(client, secrets, spa) == {"active": False}
    # A token issued with no client at all names no client that could be gone.
    assert (await introspect(client, secrets, anonymous))["active"] is True


async def test_metadata_lists_grants_endpoints_auth_methods_and_scopes(client):
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code",
        "password",
        "client_credentials",
        "refresh_token",
    }
    assert metadata["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        metadata["token_endpoint_auth_methods_supported"]
    )
    assert {"read", "write", "admin"} <= set(metadata["scopes_supported"])
    # RFC 8414 section 2: a field with nothing to list is omitted, never an empty array.
    assert not [name for name, value in metadata.items() if value == []]


# -- the outside audit: revocations outlive Redis; a database outage is a 503 ---------------


async def test_a_revocation_outlives_the_redis_it_was_made_with(
    settings, secrets, clock, redis_prefix
):
    # The audit: with Redis configured, /revoke wrote only Redis; a replica that could not
    # reach it, or a Redis restart, turned the revoked token active again.
    with_redis = settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": redis_prefix})
    async with running(create_app(with_redis, clock=clock, timer=clock), ISSUER) as one:
        token = (await password_login(one)).json()["access_token"]
        revoked = await one.post("/revoke", data={"token": token, "client_id": "spa"})
        assert revoked.status_code == 200
    without_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with running(create_app(without_redis, clock=clock, timer=clock), ISSUER) as other:
        assert (await introspect(other, secrets, token))["active"] is False


async def test_a_database_outage_is_503_with_retry_after_and_consumes_nothing(
    postgres_url, tmp_path, clock
):
    proxy = TcpProxy(5432)
    await proxy.start()
    url = postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    settings = Settings(
        url=ISSUER,
        keys_dir=fresh_key_set(tmp_path / "keys"),
        database_url=url,
        bcrypt_rounds=4,
        keys_poll_interval=60,
    )
    # Through the proxy, whose relay runs on this event loop: set up from a thread.
    await asyncio.to_thread(create_user, settings, "alice", "wonderland1", scope="read")
    await asyncio.to_thread(
        create_client, settings, "spa", ("password", "refresh_token"), scope="read", public=True
    )
    gateway = await asyncio.to_thread(
        create_client, settings, "gateway", ("client_credentials",), resource_audiences=("api",)
    )
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        refresh_token = (await password_login(client)).json()["refresh_token"]
        await proxy.cut()
        answers = [
            await password_login(client),
            await refresh(client, refresh_token),
            await client.post(
                "/introspect", data={"token": "x"}, headers=basic("gateway", gateway.secret)
            ),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "temporarily_unavailable"
            assert int(answer.headers["retry-after"]) >= 1
        metrics = (await client.get("/metrics")).text
        assert 'issuer_token_requests_rejected_total{reason="database_unavailable"} 3.0' in metrics
        assert 'issuer_token_requests_rejected_total{reason="overloaded"} 0.0' in metrics
        await proxy.start()  # the database is back: the refresh token was not consumed
        assert (await refresh(client, refresh_token)).status_code == 200
        await proxy.cut()


def on_postgres(postgres_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """An issuer on its own PostgreSQL schema, with alice and the public client spa."""
    settings = Settings(
        url=ISSUER,
        keys_dir=fresh_key_set(tmp_path / "keys"),
        database_url=postgres_url,
        bcrypt_rounds=4,
        keys_poll_interval=60,
        **overrides,
    )
    create_user(settings, "alice", "wonderland1", scope="read")
    create_client(settings, "spa", ("password", "refresh_token"), scope="read", public=True)
    return settings


async def test_a_database_that_does_not_answer_in_time_is_503_not_a_hang(postgres_url, tmp_path):
    settings = on_postgres(postgres_url, tmp_path, database_timeout=1)
    holder = make_engine(postgres_url)  # another transaction holds the tables the grant needs
    async with running(create_app(settings), ISSUER) as client:
        with holder.connect() as holding:
            holding.execute(
                text("BEGIN; LOCK TABLE users, refresh_tokens IN ACCESS EXCLUSIVE MODE")
            )
            started = asyncio.get_running_loop().time()
            answer = await password_login(client)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "temporarily_unavailable"
            assert asyncio.get_running_loop().time() - started < 5
            holding.rollback()
        assert (await password_login(client)).status_code == 200
    holder.dispose()


async def test_a_database_that_takes_no_writes_is_503_not_a_server_error(postgres_url, tmp_path):
    # The audit: a PostgreSQL server that takes no writes (a standby after a failover, which a
    # pooler or DNS name may still point at; default_transaction_read_only) failed every grant
    # that writes with `500 server_error` and an "unhandled error" traceback in the log.
    settings = on_postgres(postgres_url, tmp_path)
    read_only = postgres_url + "%20-cdefault_transaction_read_only%3Don"
    app = create_app(settings.model_copy(update={"database_url": read_only}))
    async with running(app, ISSUER) as client:
        answer = await password_login(client)  # a refresh-token family is written
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "temporarily_unavailable"
        assert int(answer.headers["retry-after"]) >= 1
        metrics = (await client.get("/metrics")).text
    assert 'issuer_token_requests_rejected_total{reason="database_unavailable"} 1.0' in metrics


async def test_many_refreshes_at_once_do_not_starve_the_connection_pool(postgres_url, tmp_path):
    # The audit: each rotation held its connection and then wanted a second one for the
    # user; with the pool's 15 held so, 150 refreshes at once got 80-91 answered 503.
    settings = on_postgres(
        postgres_url,
        tmp_path,
        database_timeout=2,
        rate_limit_per_ip=10_000,
        rate_limit_per_username=10_000,
    )
    async with running(create_app(settings), ISSUER) as client:
        tokens = [(await password_login(client)).json()["refresh_token"] for _ in range(40)]
        answers = await asyncio.gather(*(refresh(client, token) for token in tokens))
    assert sorted({answer.status_code for answer in answers}) == [200]


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
async def test_two_authorization_headers_are_invalid_request(client, secrets, path):
    # The audit: the first was used, the second ignored; a proxy reading the other one would
    # authenticate another client than the issuer did.
    form = {"grant_type": "client_credentials", "token": "x"}
    headers = [*basic("service", secrets["service"]).items(), ("Authorization", "Basic Og==")]
    response = await client.post(path, data=form, headers=headers)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "the request has more than one Authorization header",
    }
    one = await client.post(path, data=form, headers=basic("service", secrets["service"]))
    assert one.status_code == 200, one.text  # the one header authenticates the client


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
async def test_an_authorization_header_of_bytes_beyond_ascii_is_a_client_error(client, path):
    # Header bytes are ISO-8859-1 (RFC 9110 5.5), not UTF-8: never a 500.
    form = {"grant_type": "client_credentials", "token": "x"}
    for value in (b"Basic \xe9t\xe9", b"Basic " + base64.b64encode(b"\xe9:\xff")):
        response = await client.post(path, data=form, headers=[(b"Authorization", value)])
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"


# -- an operator's changes (scripts/manage_user.py, scripts/manage_client.py) ----------------


async def test_disabling_a_user_signs_them_out_everywhere_and_enabling_brings_nothing_back(
    client, secrets, settings
):
    tokens = (await password_login(client)).json()
    engine = make_engine(settings.database_url)
    browser = BrowserSessions(make_sessions(engine), settings.session_ttl)
    alice = UserRepository(make_sessions(engine)).get_by_username("alice")
    assert alice is not None
    session_id = browser.start(alice.id)
    user, signed_out = change_user(settings, "alice", disabled=True)
    assert user.username == "alice"
    assert signed_out == SignedOut(sessions=1, codes=0, refresh_families=1)
    assert (await password_login(client)).json()["error"] == "invalid_grant"
    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert await introspect(client, secrets, tokens["access_token"]) == {"active": False}
    assert browser.find(session_id) is None
    # Enabled again, the account signs in; nothing it held before works again.
    assert change_user(settings, "alice", disabled=False)[1] is None
    assert (await password_login(client)).status_code == 200
    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert await introspect(client, secrets, tokens["access_token"]) == {"active": False}
    engine.dispose()


async def test_a_sign_out_everywhere_ends_access_tokens_issued_without_a_refresh_token(
    client, secrets, settings, clock
):
    # The review: a token with no refresh family (a password grant without a client, or by
    # one that may not refresh) kept introspecting active after a new password, and one the
    # disabling had ended came back when the account was enabled again.
    form = {"grant_type": "password", "username": "alice", "password": "wonderland1"}
    lone = (await client.post("/token", data=form)).json()
    assert "refresh_token" not in lone
    assert (await introspect(client, secrets, lone["access_token"]))["active"] is True
    change_user(settings, "alice", disabled=True, clock=clock)
    change_user(settings, "alice", disabled=False, clock=clock)
    assert await introspect(client, secrets, lone["access_token"]) == {"active": False}

    clock.advance(1)  # `iat` is whole seconds: a token of the sign-out's second is refused too
    later = (await client.post("/token", data=form)).json()["access_token"]
    assert (await introspect(client, secrets, later))["active"] is True
    clock.advance(60)
    change_user(settings, "alice", password="through the looking glass", clock=clock)
    assert await introspect(client, secrets, later) == {"active": False}


async def test_a_new_password_signs_the_user_out_and_only_it_opens_the_account(
    client, secrets, settings
):
    tokens = (await password_login(client)).json()
    _, signed_out = change_user(settings, "Alice", password="through the looking glass")
    assert signed_out == SignedOut(sessions=0, codes=0, refresh_families=1)
    assert (await password_login(client)).json()["error"] == "invalid_grant"
    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    form = {"username": "alice", "password": "through the looking glass", "client_id": "spa"}
    assert (await client.post("/token", data={"grant_type": "password", **form})).status_code == 200
    with pytest.raises(PasswordPolicyError):
        change_user(settings, "alice", password="short")
    with pytest.raises(UserError, match="no user 'nobody'"):
        change_user(settings, "nobody", disabled=True)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"disabled": True}, "disabled"),
        ({"password": "through the looking glass"}, "given a new password"),
    ],
)
async def test_a_sign_out_the_database_broke_off_says_so_and_running_it_again_finishes_it(
    client, settings, monkeypatch, change, said
):
    # The audit: the new password (or the disabling) was committed, then the database failed
    # before the sessions and refresh tokens were ended; the script said only "error: <driver
    # message>", and the old refresh token kept working.
    tokens = (await password_login(client)).json()

    def broken(self: BrowserSessions, user_id: int) -> int:
        raise OperationalError("DELETE FROM browser_sessions", {}, Exception("connection lost"))

    monkeypatch.setattr(BrowserSessions, "end_all", broken)
    with pytest.raises(SignOutUnfinished) as unfinished:
        change_user(settings, "alice", **change)
    assert str(unfinished.value) == (
        f"user 'alice' {said}, but signing out "
        "everywhere did not finish (connection lost): run the same command again to finish it"
    )
    monkeypatch.undo()
    _, signed_out = change_user(settings, "alice", **change)
    assert signed_out is not None and signed_out.refresh_families == 1
    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("change", [{"disabled": True}, {"password": "through the looking glass"}])
async def test_a_login_checked_before_a_sign_out_everywhere_gets_no_refresh_token(
    client, settings, monkeypatch, change
):
    # The audit: a login whose password was checked just before an operator disabled the
    # account or set a new password (at another replica, or by the script) wrote its refresh
    # family after the sign-out had looked for the user's families: it kept refreshing,
    # after the new password, and after the account was enabled again.
    sign_out_after_password_check(monkeypatch, settings, "alice", **change)
    refused = await password_login(client)
    assert refused.status_code == 400, refused.text
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "invalid username or password",
    }
    monkeypatch.undo()
    # Signed in again afterwards (enabled, or with the new password), the account works.
    change_user(settings, "alice", disabled=False)
    form = {"username": "alice", "password": change.get("password", "wonderland1")}
    again = await client.post("/token", data={"grant_type": "password", "client_id": "spa", **form})
    assert again.status_code == 200 and "refresh_token" in again.json()


def test_a_new_client_secret_replaces_the_old_one(settings, secrets):
    _, secret = change_client(settings, "webapp", new_secret=True)
    assert secret is not None and secret != secrets["webapp"]
    with open_database(settings) as engine:
        stored = ClientRepository(make_sessions(engine)).get("webapp")
    assert stored is not None
    assert secret_matches(secret, stored.secret_hash)
    assert not secret_matches(secrets["webapp"], stored.secret_hash)
    with pytest.raises(ClientError, match="public"):
        change_client(settings, "spa", new_secret=True)
    with pytest.raises(ClientError, match="no client 'nobody'"):
        change_client(settings, "nobody", disabled=True)


async def test_a_disabled_client_is_refused_and_enabled_again_works(settings, secrets, clock):
    change_client(settings, "service", disabled=True)
    form = {"grant_type": "client_credentials"}
    service = basic("service", secrets["service"])
    # A new issuer process: a running one notices within its few seconds of client cache.
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        refused = await client.post("/token", data=form, headers=service)
        assert refused.status_code == 401
    change_client(settings, "service", disabled=False)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        issued = await client.post("/token", data=form, headers=service)
        assert issued.status_code == 200
