"""The issuer's hot routes answer exactly as their FastAPI routes do.

A request with an `Origin` header goes the full way through FastAPI (see servicekit.front),
so with no CORS configured the same request with and without one must get the same answer.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from issuer.admin import create_client, create_user
from issuer.app import create_app
from issuer.settings import Settings
from tests.support import fresh_key_set, running

ISSUER = "http://issuer.test"
FULL_WAY = {"Origin": "http://elsewhere.test"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    fresh_key_set(tmp_path / "keys")
    settings = Settings(
        url=ISSUER,
        keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{tmp_path / 'issuer.db'}",
        bcrypt_rounds=4,
    )
    create_user(settings, "alice", "wonderland1", scope="profile")
    return settings


@pytest.fixture
def secret(settings: Settings) -> str:
    created = create_client(settings, "svc", ("client_credentials",), scope="read")
    assert created.secret is not None
    return created.secret


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings), ISSUER) as client:
        yield client


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = dict(response.headers)
    assert headers.pop("x-request-id")
    return response.status_code, headers, response.content


async def both(client: httpx.AsyncClient, method: str, path: str, **kwargs: object):
    hot = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    headers = {**kwargs.pop("headers", {}), **FULL_WAY}  # type: ignore[dict-item]
    full = await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
    return hot, full


async def test_healthz_and_jwks_are_the_same_either_way(client):
    for path in ("/healthz", "/.well-known/jwks.json"):
        hot, full = await both(client, "GET", path)
        assert hot.status_code == 200
        assert comparable(hot) == comparable(full)
    etag = hot.headers["etag"]
    for tags in (etag, f'W/{etag}, "other"', '"other"', "*"):
        hot, full = await both(client, "GET", path, headers={"If-None-Match": tags})
        assert comparable(hot) == comparable(full)
    assert hot.status_code == 304


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials", "scope": "write"},
        {"grant_type": "nonsense"},
        {"username": "alice", "password": "wrong-password"},
    ],
)
async def test_token_refusals_are_the_same_either_way(client, secret, form):
    for auth in (("svc", secret), ("svc", "wrong"), ("nobody", secret), None):
        hot, full = await both(client, "POST", "/token", data=form, auth=auth)
        assert hot.status_code >= 400
        assert comparable(hot) == comparable(full)


async def test_token_bodies_that_are_not_forms_are_refused_alike(client):
    hot, full = await both(client, "POST", "/token", json={"grant_type": "password"})
    assert hot.status_code == 400
    assert comparable(hot) == comparable(full)


async def test_issued_tokens_have_the_same_shape_either_way(client, secret):
    form = {"grant_type": "client_credentials", "scope": "read"}
    hot, full = await both(client, "POST", "/token", data=form, auth=("svc", secret))
    assert hot.status_code == full.status_code == 200
    _, hot_headers, _ = comparable(hot)
    _, full_headers, _ = comparable(full)
    assert hot_headers == full_headers
    assert hot.json().keys() == full.json().keys()
    assert {k: v for k, v in hot.json().items() if k != "access_token"} == {
        k: v for k, v in full.json().items() if k != "access_token"
    }


async def test_the_hot_routes_are_timed_under_their_route_templates(client, secret):
    await client.get("/.well-known/jwks.json")
    await client.post("/token", data={"grant_type": "client_credentials"}, auth=("svc", secret))
    text = (await client.get("/metrics")).text
    assert 'route="/.well-known/jwks.json",status="2xx"' in text
    assert 'route="/token",status="2xx"' in text
