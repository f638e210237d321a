"""The resource server's hot routes answer exactly as their FastAPI routes do.

A request with an `Origin` header goes the full way through FastAPI (servicekit.front), so
the same request with and without one must get the same answer, good or refused.
"""

import asyncio
import time

import httpx
import pytest

from resource_server.app import create_app
from resource_server.settings import Settings
from tests.support import FakeClock, running
from tests.unit.resource_server.test_app import ISSUER, issuer_routes, make_token  # noqa: F401

FULL_WAY = {"Origin": "http://elsewhere.test"}


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = dict(response.headers)
    assert headers.pop("x-request-id")
    return response.status_code, headers, response.content


async def both(
    client: httpx.AsyncClient, path: str, headers: list[tuple[str, str]], **kwargs: object
) -> tuple[httpx.Response, httpx.Response]:
    hot = await client.request("GET", path, headers=headers, **kwargs)  # type: ignore[arg-type]
    full_headers = [*headers, *FULL_WAY.items()]
    full = await client.request("GET", path, headers=full_headers, **kwargs)  # type: ignore[arg-type]
    return hot, full


@pytest.mark.parametrize(
    "case",
    [
        "valid",
        "expired",
        "garbage",
        "none",
        "basic",
        "lowercase",
        "twice",
        "in_query",
        "in_body",
    ],
)
async def test_users_me_is_the_same_either_way(issuer_routes, rsa_private_key, case):  # noqa: F811
    token = make_token(rsa_private_key, FakeClock(time.time()))
    expired = make_token(rsa_private_key, FakeClock(time.time() - 3600))
    headers = {
        "valid": [("Authorization", f"Bearer {token}")],
        "expired": [("Authorization", f"Bearer {expired}")],
        "garbage": [("Authorization", "Bearer abc.def.ghi")],
        "none": [],
        "basic": [("Authorization", "Basic Zm9vOmJhcg==")],
        "lowercase": [("Authorization", f"bearer {token}")],
        "twice": [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
        "in_query": [("Authorization", f"Bearer {token}")],
        "in_body": [
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
    }[case]
    path = f"/users/me?access_token={token}" if case == "in_query" else "/users/me"
    content = f"access_token={token}".encode() if case == "in_body" else None
    async with running(create_app(Settings(issuer_url=ISSUER))) as client:
        for _ in range(2):  # the second time from the verified-token cache
            hot, full = await both(client, path, headers, content=content)
            assert comparable(hot) == comparable(full)
    assert (hot.status_code == 200) == (case in ("valid", "lowercase"))


async def test_healthz_is_the_same_either_way(issuer_routes):  # noqa: F811
    async with running(create_app(Settings(issuer_url=ISSUER))) as client:
        hot, full = await both(client, "/healthz", [])
        assert comparable(hot) == comparable(full) and hot.status_code == 200
        text = (await client.get("/metrics")).text
    assert 'route="/healthz",status="2xx"' in text


async def test_a_token_the_hot_route_remembers_still_expires(issuer_routes, rsa_private_key):  # noqa: F811
    # exp one to two seconds ahead and no leeway: answered twice (the second time from
    # what the route remembered), then refused once exp has passed.
    issued_at = time.time() - 58.5
    token = make_token(rsa_private_key, FakeClock(issued_at))
    expires_at = int(issued_at) + 60  # make_token's exp
    headers = [("Authorization", f"Bearer {token}")]
    async with running(create_app(Settings(issuer_url=ISSUER, leeway=0))) as client:
        first, second = [await client.get("/users/me", headers=headers) for _ in range(2)]
        assert (first.status_code, second.status_code) == (200, 200)
        await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.05)
        hot, full = await both(client, "/users/me", headers)
    assert comparable(hot) == comparable(full)
    assert hot.status_code == 401 and "expired" in hot.json()["error_description"]


async def test_a_remembered_signature_under_other_claims_is_refused(issuer_routes, rsa_private_key):  # noqa: F811
    # The hot route finds a remembered answer by the header's last bytes (the signature's):
    # a header that ends alike but carries other claims must be verified, not answered.
    token = make_token(rsa_private_key, FakeClock(time.time()))
    header, payload, signature = token.split(".")
    other = make_token(rsa_private_key, FakeClock(time.time() + 1)).split(".")[1]
    assert other != payload
    forged = f"{header}.{other}.{signature}"
    async with running(create_app(Settings(issuer_url=ISSUER))) as client:
        for _ in range(3):  # remembered from the second sight on
            good = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
            assert good.status_code == 200
        hot, full = await both(client, "/users/me", [("Authorization", f"Bearer {forged}")])
    assert comparable(hot) == comparable(full)
    assert hot.status_code == 401 and hot.json()["error"] == "invalid_token"
