"""Hostile tokens at the issuer's /introspect and /revoke, which check tokens with the same
`Verifier` as the resource server: a token that cannot be parsed is inactive, never a 500."""

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from issuer.admin import create_client
from issuer.app import create_app
from issuer.settings import Settings
from tests.support import b64url, fresh_key_set, running

ISSUER = "http://issuer.test"
HOSTILE = {
    # `[` x 1500: nested deeper than the JSON parser allows.
    "nested-header": f"{b64url(b'[' * 1500)}.e30.c2ln",
    "huge-header": f"{b64url(b'{' + b' ' * 6000 + b'}')}.e30.c2ln",
}


@pytest.fixture
async def client_and_auth(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    fresh_key_set(tmp_path / "keys")
    settings = Settings(
        url=ISSUER,
        keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{tmp_path / 'issuer.db'}",
        bcrypt_rounds=4,
    )
    service = create_client(settings, "service", ("client_credentials",), scope="read")
    assert service.secret
    auth = "Basic " + base64.b64encode(f"service:{service.secret}".encode()).decode()
    async with running(create_app(settings), ISSUER) as client:
        yield client, auth


@pytest.mark.parametrize("token", HOSTILE.values(), ids=HOSTILE.keys())
async def test_introspecting_a_hostile_token_says_inactive(client_and_auth, token):
    client, auth = client_and_auth
    response = await client.post(
        "/introspect", data={"token": token}, headers={"Authorization": auth}
    )
    assert response.status_code == 200
    assert response.json() == {"active": False}


@pytest.mark.parametrize("token", HOSTILE.values(), ids=HOSTILE.keys())
async def test_revoking_a_hostile_token_is_200_like_any_unknown_token(client_and_auth, token):
    client, auth = client_and_auth
    response = await client.post("/revoke", data={"token": token}, headers={"Authorization": auth})
    assert response.status_code == 200
