"""The whole system as users run it: scripts, issuer and resource server as real processes."""

import time
from collections.abc import Iterator

import httpx
import jwt as pyjwt
import pytest

from servicekit.processes import run_script
from tests.e2e.stack import Stack, running_stack
from tests.support import sign_jwt


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Short rotation waits (JWKS max-age 1 s, leeway 1 s) so a safe rotation takes seconds.
    with running_stack(
        tmp_path_factory.mktemp("stack"),
        ISSUER_JWKS_MAX_AGE="1",
        ISSUER_ROTATION_LEEWAY="1",
        RS_JWKS_MIN_TTL="1",
    ) as stack:
        yield stack


def test_password_form_token_opens_users_me(stack):
    response = stack.users_me(stack.token())
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert response.json()["scope"] == "profile"


def test_wrong_password_is_refused_like_an_unknown_user(stack):
    url = f"{stack.issuer_url}/token"
    wrong = httpx.post(url, data={"username": "alice", "password": "nope-nope"})
    unknown = httpx.post(url, data={"username": "mallory", "password": "nope-nope"})
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
    kid, key = stack.active_private_key()
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
    response = stack.users_me(token)
    assert response.status_code == 401
    assert reason in response.json()["error_description"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_forged_token_gets_401(stack, other_private_key):
    kid, _ = stack.active_private_key()
    genuine = pyjwt.decode(stack.token(), options={"verify_signature": False})
    forged = sign_jwt(other_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, genuine)
    assert stack.users_me(forged).status_code == 401


MALFORMED = "the Authorization header must be 'Bearer <token>'"


@pytest.mark.parametrize(
    ("authorization", "status", "challenge", "body"),
    [
        (
            None,
            401,
            'Bearer realm="api"',
            {"error_description": "the request carries no bearer token"},
        ),
        (
            "Basic dXNlcjpwYXNz",
            401,
            'Bearer realm="api"',
            {"error_description": "this resource accepts only Bearer tokens"},
        ),
        (
            "Bearer",
            400,
            f'Bearer realm="api", error="invalid_request", error_description="{MALFORMED}"',
            {"error": "invalid_request", "error_description": MALFORMED},
        ),
        (
            "Bearer a b",
            400,
            f'Bearer realm="api", error="invalid_request", error_description="{MALFORMED}"',
            {"error": "invalid_request", "error_description": MALFORMED},
        ),
    ],
    ids=["no-header", "basic", "bearer-alone", "two-words"],
)
def test_rfc6750_answers_from_the_running_resource_server(
    stack, authorization, status, challenge, body
):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{stack.rs_url}/users/me", headers=headers)
    assert response.status_code == status
    assert response.headers["www-authenticate"] == challenge
    assert response.json() == body


def test_pyjwt_verifies_our_tokens_through_the_live_jwks(stack):
    token = stack.token()
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
    old_token = stack.token()
    old_kid = pyjwt.get_unverified_header(old_token)["kid"]
    time.sleep(2.5)  # the next key has now been published for max-age + leeway
    rotated = run_script("rotate_keys.py", env=stack.env)
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 5
    while pyjwt.get_unverified_header(new_token := stack.token())["kid"] == old_kid:
        assert time.monotonic() < deadline, "issuer did not pick up the rotated key"
        time.sleep(0.1)
    assert stack.users_me(new_token).status_code == 200
    assert stack.users_me(old_token).status_code == 200


def test_create_user_refuses_a_duplicate_cleanly(stack):
    result = run_script(
        "create_user.py", "alice", "--password-stdin", env=stack.env, stdin="another-pass\n"
    )
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_revoked_key_stops_verifying_within_the_revalidation_interval(tmp_path):
    # The issuer keeps its usual 600 s JWKS lifetime; the resource server revalidates every 1 s.
    with running_stack(tmp_path, RS_JWKS_REVALIDATE="1") as stack:
        token = stack.token()
        assert stack.users_me(token).status_code == 200  # cached as verified, too
        kid = pyjwt.get_unverified_header(token)["kid"]
        revoked = run_script("rotate_keys.py", "--revoke", kid, env=stack.env)
        assert revoked.returncode == 0, revoked.stderr
        start = time.monotonic()
        while stack.users_me(token).status_code == 200:
            # Revalidation (1 s) and the issuer's reload (1 s), with room for a loaded
            # machine: far below the 600 s the JWKS max-age alone would allow.
            assert time.monotonic() - start < 10, "the revoked key still verifies"
            time.sleep(0.1)
        refused = stack.users_me(token)
        assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
        jwks = httpx.get(f"{stack.issuer_url}/.well-known/jwks.json")
        assert kid not in jwks.text
        # Third parties' caches come back within ISSUER_JWKS_MAX_AGE_AFTER_REVOCATION.
        assert "max-age=60" in jwks.headers["cache-control"].split(",")[-1]
        assert stack.users_me(stack.token()).status_code == 200  # the new key works
