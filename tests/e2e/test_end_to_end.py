"""The whole system as users run it: scripts, issuer and resource server as real processes."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.processes import free_port, run_script, uvicorn
from tests.support import sign_jwt


@dataclass
class Stack:
    issuer_url: str
    rs_url: str
    env: dict[str, str]
    keys_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    issuer_port, rs_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    env = {
        "ISSUER_URL": issuer_url,
        "ISSUER_KEYS_DIR": str(tmp / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
        "ISSUER_KEYS_POLL_INTERVAL": "0.2",
        "RS_ISSUER_URL": issuer_url,
        "RS_JWKS_COOLDOWN": "0",
    }
    assert run_script("generate_keys.py", env=env).returncode == 0
    created = run_script(
        "create_user.py",
        "alice",
        "--scope",
        "profile",
        "--password-stdin",
        env=env,
        stdin="wonderland1\n",
    )
    assert created.returncode == 0, created.stderr
    issuer = uvicorn("issuer.app:app", issuer_port, env, tmp / "issuer.log")
    rs = uvicorn("resource_server.app:app", rs_port, env, tmp / "rs.log")
    try:
        issuer.wait_until_serving(f"{issuer_url}/healthz")
        rs.wait_until_serving(f"http://127.0.0.1:{rs_port}/readyz", ready_only=True)
        yield Stack(issuer_url, f"http://127.0.0.1:{rs_port}", env, tmp / "keys")
    finally:
        rs.stop()
        issuer.stop()


def get_token(stack: Stack, username: str = "alice", password: str = "wonderland1") -> str:
    response = httpx.post(
        f"{stack.issuer_url}/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def users_me(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(f"{stack.rs_url}/users/me", headers={"Authorization": f"Bearer {token}"})


def active_private_key(stack: Stack) -> tuple[str, rsa.RSAPrivateKey]:
    manifest = json.loads((stack.keys_dir / "manifest.json").read_text())
    kid = next(k["kid"] for k in manifest["keys"] if k["state"] == "active")
    key = serialization.load_pem_private_key((stack.keys_dir / f"{kid}.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return kid, key


def test_password_form_token_opens_users_me(stack):
    response = users_me(stack, get_token(stack))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert response.json()["scope"] == "profile"


def test_wrong_password_is_refused_like_an_unknown_user(stack):
    wrong = httpx.post(
        f"{stack.issuer_url}/token", data={"username": "alice", "password": "nope-nope"}
    )
    unknown = httpx.post(
        f"{stack.issuer_url}/token", data={"username": "mallory", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"exp": -10_000}, "expired"),
        ({"iss": "http://evil.example"}, "another issuer"),
        ({"aud": "billing"}, "audience"),
    ],
)
def test_tokens_signed_by_our_key_with_bad_claims_get_401(stack, override, reason):
    kid, key = active_private_key(stack)
    now = int(time.time())
    claims = {
        "iss": stack.issuer_url,
        "sub": "1",
        "aud": "api",
        "exp": now + 300,
        "iat": now - 20_000,
        "jti": "x",
        "client_id": "public",
    }
    claims.update(override)
    if "exp" in override:
        claims["exp"] = now + override["exp"]
    token = sign_jwt(key, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims)
    response = users_me(stack, token)
    assert response.status_code == 401
    assert reason in response.json()["error_description"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_forged_token_gets_401(stack, other_private_key):
    kid, _ = active_private_key(stack)
    genuine = pyjwt.decode(get_token(stack), options={"verify_signature": False})
    forged = sign_jwt(other_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, genuine)
    assert users_me(stack, forged).status_code == 401


def test_pyjwt_verifies_our_tokens_through_the_live_jwks(stack):
    token = get_token(stack)
    client = pyjwt.PyJWKClient(f"{stack.issuer_url}/.well-known/jwks.json")
    signing_key = client.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience="api",
        issuer=stack.issuer_url,
        options={"require": ["exp", "iat", "sub", "jti"]},
    )
    assert claims["preferred_username"] == "alice"


def test_scripts_rotate_keys_without_restart_and_old_tokens_keep_working(stack):
    again = run_script("generate_keys.py", env=stack.env)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    old_token = get_token(stack)
    old_kid = pyjwt.get_unverified_header(old_token)["kid"]
    rotated = run_script("rotate_keys.py", env=stack.env)
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 5
    while pyjwt.get_unverified_header(new_token := get_token(stack))["kid"] == old_kid:
        assert time.monotonic() < deadline, "issuer did not pick up the rotated key"
        time.sleep(0.1)
    assert users_me(stack, new_token).status_code == 200
    assert users_me(stack, old_token).status_code == 200


def test_create_user_refuses_a_duplicate_cleanly(stack):
    result = run_script(
        "create_user.py", "alice", "--password-stdin", env=stack.env, stdin="another-pass\n"
    )
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert "Traceback" not in result.stderr
