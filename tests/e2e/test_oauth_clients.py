"""A real OAuth client library (Authlib's AsyncOAuth2Client) against a live issuer."""

from collections.abc import Iterator

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from servicekit.processes import run_script
from tests.e2e.stack import PASSWORD, Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("oauth")) as stack:
        yield stack


def register(stack: Stack, *args: str) -> str:
    result = run_script("create_client.py", *args, env=stack.env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_create_client_prints_the_secret_alone_on_the_last_line(stack):
    secret = register(stack, "printer", "--grant", "client_credentials")
    assert len(secret) >= 43 and " " not in secret
    public = run_script("create_client.py", "public-one", "--public", env=stack.env)
    assert public.returncode == 0
    assert "secret" not in public.stdout.lower()
    duplicate = run_script("create_client.py", "printer", env=stack.env)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr


def test_create_client_registers_browser_apps_and_refuses_unsafe_redirect_uris(stack):
    created = run_script(
        "create_client.py",
        "gallery",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        "https://gallery.example/cb",
        "--redirect-uri",
        "http://127.0.0.1/native",
        "--post-logout-redirect-uri",
        "https://gallery.example/bye",
        "--require-consent",
        "--public",
        env=stack.env,
    )
    assert created.returncode == 0, created.stderr
    assert "redirect URI: https://gallery.example/cb" in created.stdout
    again = run_script("create_client.py", "gallery", "--exist-ok", env=stack.env)
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert again.stdout == ""  # `SECRET=$(... | tail -1)` captures no message as a secret
    for uri, reason in (
        ("https://gallery.example/cb#frag", "fragment"),
        ("http://gallery.example/cb", "https"),
        ("http://localhost/cb", "loopback"),
    ):
        refused = run_script(
            "create_client.py",
            "bad",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            uri,
            env=stack.env,
        )
        assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
    missing = run_script(
        "create_client.py", "bad", "--grant", "authorization_code", "--public", env=stack.env
    )
    assert missing.returncode == 1 and "--redirect-uri" in missing.stderr


async def test_authlib_client_credentials_then_resource_server(stack):
    secret = register(stack, "machine", "--grant", "client_credentials", "--scope", "profile")
    async with AsyncOAuth2Client(
        "machine", secret, token_endpoint_auth_method="client_secret_basic"
    ) as oauth:
        token = await oauth.fetch_token(
            f"{stack.issuer_url}/token", grant_type="client_credentials"
        )
        assert token["token_type"] == "Bearer"
        me = await oauth.get(f"{stack.rs_url}/users/me")
        assert me.status_code == 200
        assert me.json()["sub"] == "client:machine"  # never a user's numeric sub


async def test_authlib_password_grant_and_refresh(stack):
    secret = register(
        stack, "app", "--grant", "password", "--grant", "refresh_token", "--scope", "profile"
    )
    async with AsyncOAuth2Client(
        "app", secret, token_endpoint_auth_method="client_secret_post", scope="profile"
    ) as oauth:
        token = await oauth.fetch_token(
            f"{stack.issuer_url}/token", username="alice", password=PASSWORD
        )
        assert token["scope"] == "profile" and token["refresh_token"]
        refreshed = await oauth.refresh_token(
            f"{stack.issuer_url}/token", refresh_token=token["refresh_token"]
        )
        assert refreshed["refresh_token"] != token["refresh_token"]
        me = await oauth.get(f"{stack.rs_url}/users/me")
        assert me.status_code == 200 and me.json()["username"] == "alice"
        # The spent refresh token is now a reuse: the family is revoked.
        reuse = httpx.post(
            f"{stack.issuer_url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": "app",
                "client_secret": secret,
            },
        )
        assert reuse.json()["error"] == "invalid_grant"
