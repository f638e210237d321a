"""The whole system as users run it: scripts, issuer and resource server as real processes."""

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt as pyjwt
import pytest

from resource_server.base64url import b64url_encode
from servicekit.processes import run_script
from tests.e2e.sign_in import sign_in_like_a_browser
from tests.e2e.stack import Stack, running_stack
from tests.support import documented_python, sign_jwt


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


def test_the_production_server_runs_both_services(tmp_path, other_private_key):
    # Granian, with the options the Dockerfile and compose pass it: a token from the issuer
    # opens /users/me, a forgery does not, and the JWKS answers GET and HEAD alike.
    with running_stack(tmp_path, server="granian") as production:
        token = production.token()
        me = production.users_me(token)
        assert me.status_code == 200 and me.json()["username"] == "alice"
        kid, _ = production.active_private_key()
        claims = pyjwt.decode(token, options={"verify_signature": False})
        forged = sign_jwt(other_private_key, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims)
        refused = production.users_me(forged)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer realm="api"')
        jwks_url = f"{production.issuer_url}/.well-known/jwks.json"
        document, head = httpx.get(jwks_url), httpx.head(jwks_url)
        assert document.status_code == head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == document.headers["etag"]
        assert kid in {key["kid"] for key in document.json()["keys"]}


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


def documented_pyjwt_check(stack: Stack) -> Callable[[str], dict[str, Any]]:
    """docs/verifier.md's PyJWT sample, as written there, for this stack's issuer."""
    sample = documented_python("verifier.md", "Python (PyJWT)")
    code = compile(sample.replace("http://127.0.0.1:8000", stack.issuer_url), "sample", "exec")

    def check(token: str) -> dict[str, Any]:
        namespace: dict[str, Any] = {"token": token}
        exec(code, namespace)
        claims: dict[str, Any] = namespace["claims"]
        return claims

    return check


def an_id_token_for_a_client_named_api(stack: Stack) -> str:
    """A real ID token of alice's, for a client whose id is the API's audience, `api` (a
    resource server registered as a client of its own, say): its `aud` is then `api` too."""
    callback = "http://127.0.0.1/callback"
    registered = run_script(
        "create_client.py", "api", "--public", "--scope", "openid",
        "--redirect-uri", callback, env=stack.env,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    verifier = secrets.token_urlsafe(32)
    challenge = b64url_encode(hashlib.sha256(verifier.encode()).digest())
    request = {
        "response_type": "code", "client_id": "api", "redirect_uri": callback, "scope": "openid",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    back = sign_in_like_a_browser(f"{stack.issuer_url}/authorize?{urlencode(request)}")
    code = parse_qs(urlsplit(back).query)["code"][0]
    exchange = {"code": code, "code_verifier": verifier, "client_id": "api"}
    response = httpx.post(
        f"{stack.issuer_url}/token",
        data={"grant_type": "authorization_code", "redirect_uri": callback, **exchange},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id_token"])


def test_the_documented_pyjwt_check_verifies_our_access_tokens(stack):
    claims = documented_pyjwt_check(stack)(stack.token())
    assert claims["preferred_username"] == "alice"


def test_the_documented_pyjwt_check_refuses_an_id_token(stack):
    # RFC 9068 section 4 (RFC 8725 section 3.11): an ID token, signed with the same keys, is no
    # access token. The sample checked neither `typ` nor the claims only access tokens carry,
    # and so took this one (aud "api", our iss and signature) as an access token of alice's.
    id_token = an_id_token_for_a_client_named_api(stack)
    assert pyjwt.decode(id_token, options={"verify_signature": False})["aud"] == "api"
    with pytest.raises(pyjwt.InvalidTokenError):
        documented_pyjwt_check(stack)(id_token)
    assert stack.users_me(id_token).status_code == 401  # as our own verifier answers
    # The `typ` check alone: every claim of an access token, signed by us, but typ JWT.
    kid, key = stack.active_private_key()
    claims = pyjwt.decode(stack.token(), options={"verify_signature": False})
    untyped = sign_jwt(key, {"alg": "RS256", "typ": "JWT", "kid": kid}, claims)
    with pytest.raises(pyjwt.InvalidTokenError, match="typ"):
        documented_pyjwt_check(stack)(untyped)


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
