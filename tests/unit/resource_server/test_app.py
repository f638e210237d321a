"""The resource server's HTTP surface and the reusable FastAPI dependencies."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from resource_server import (
    AUTH_ERROR_HANDLERS,
    BearerClaims,
    Claims,
    Verifier,
    bearer_lifespan,
    require_scopes,
)
from resource_server.app import create_app
from resource_server.settings import Settings
from tests.support import FakeClock, b64url, public_jwk, running, sign_jwt

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


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_bearer_scheme_is_case_insensitive(client, rsa_private_key, scheme):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    response = await client.get("/users/me", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200


async def test_missing_credentials_get_a_bare_bearer_challenge(client):
    response = await client.get("/users/me")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert "error=" not in challenge  # RFC 6750 section 3.1


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer a b",
        "Bearer " + "x" * 20_000,
        "Bearer é.é.é".encode("latin-1"),
    ],
)
async def test_malformed_authorization_is_invalid_token(client, authorization):
    response = await client.get("/users/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"] == "invalid_token"


async def test_invalid_token_error_does_not_echo_the_token(client, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(1_000_000_000))  # long expired
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["error_description"]
    assert token not in response.text and token not in response.headers["www-authenticate"]


async def test_a_deeply_nested_token_header_is_401_not_500(client):
    # `[` x 1500 made json.loads raise RecursionError, which no ValueError handler caught.
    header = b64url(b"[" * 1500)
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {header}.e30.c2ln"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


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


async def test_issuer_unreachable_before_first_fetch_is_503_not_401(respx_mock, rsa_private_key):
    respx_mock.get(url__startswith=ISSUER).mock(side_effect=httpx.ConnectError("refused"))
    async with running(create_app(Settings(issuer_url=ISSUER))) as client:
        token = make_token(rsa_private_key, FakeClock(time.time()))
        response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_turns_ready_once_keys_are_held(client, rsa_private_key):
    token = make_token(rsa_private_key, FakeClock(time.time()))
    await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert (await client.get("/readyz")).json() == {"ready": True}


async def test_a_third_party_app_protects_a_route_in_three_lines(issuer_routes, rsa_private_key):
    verifier = Verifier.for_issuer(ISSUER, audience="api")
    app = FastAPI(lifespan=bearer_lifespan(verifier), exception_handlers=AUTH_ERROR_HANDLERS)

    @app.get("/orders")
    async def orders(claims: BearerClaims) -> dict[str, str]:
        return {"owner": claims.sub}

    @app.get("/admin")
    async def admin(claims: Claims = Depends(require_scopes("admin", "read"))) -> dict[str, str]:
        return {"owner": claims.sub}

    async with running(app) as client:
        token = make_token(rsa_private_key, FakeClock(time.time()))
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/orders", headers=auth)).json() == {"owner": "7"}
        denied = await client.get("/admin", headers=auth)
        assert denied.status_code == 403
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="admin read"' in challenge
        assert (await client.get("/orders")).status_code == 401
