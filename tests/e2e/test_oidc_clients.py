"""Real relying-party libraries against a live issuer, authorization code + PKCE + OpenID
Connect: panva's openid-client (Node, tests/e2e/oidc_client/rp.mjs) and Authlib's OAuth2
client (Python). The user signs in with httpx as a browser would (tests/e2e/sign_in.py); the
callback URL is handed to the library, never requested."""

import asyncio
import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from resource_server.base64url import b64url_encode
from servicekit.processes import run_script
from tests.e2e.sign_in import sign_in_like_a_browser
from tests.e2e.stack import Stack, running_stack

NODE, NPM = shutil.which("node"), shutil.which("npm")
RP_DIR = Path(__file__).with_name("oidc_client")
SCOPE = "openid profile email"
# Registered, never listened on: the tests read the URL the issuer sends the browser to.
CALLBACK = "http://127.0.0.1:8765/callback"

Rp = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("oidc-clients")) as stack:
        yield stack


@pytest.fixture(scope="module")
def rp() -> Rp:
    """`node rp.mjs STEP --option value ...`, its dependencies installed once (`npm ci`)."""
    if NODE is None:
        pytest.skip("node is not installed: the openid-client relying party needs Node 20+")
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True)
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"openid-client 6 needs Node 20+, this is {version.stdout.strip()}")
    pinned = json.loads((RP_DIR / "package.json").read_text())["dependencies"]["openid-client"]
    installed = RP_DIR / "node_modules" / "openid-client" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
        assert NPM is not None, "npm is needed to install tests/e2e/oidc_client"
        ci = subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"],
            cwd=RP_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ci.returncode == 0, ci.stdout + ci.stderr

    def run(step: str, **options: str | None) -> subprocess.CompletedProcess[str]:
        argv = [str(NODE), "rp.mjs", step]
        for name, value in options.items():
            if value is not None:  # --name=value: random values may begin with a dash
                argv.append(f"--{name.replace('_', '-')}={value}")
        return subprocess.run(
            argv, cwd=RP_DIR, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def register(stack: Stack, client_id: str, public: bool, *extra: str) -> str | None:
    """A client of the authorization code flow; its secret, None for a public one."""
    args = ["--grant", "authorization_code", "--redirect-uri", CALLBACK, "--scope", SCOPE]
    args += ["--public"] if public else []
    result = run_script("create_client.py", client_id, *args, *extra, env=stack.env)
    assert result.returncode == 0, result.stderr
    return None if public else result.stdout.splitlines()[-1]


def output(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# -- openid-client (Node) ----------------------------------------------------------------------


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
def test_openid_client_signs_alice_in(stack: Stack, rp: Rp, public: bool):
    client_id = "node-public" if public else "node-web"
    secret = register(stack, client_id, public)
    client = {"issuer": stack.issuer_url, "client_id": client_id, "client_secret": secret}
    started = output(rp("start", **client, redirect_uri=CALLBACK, scope=SCOPE))
    request = query(started["authorization_url"])
    assert started["authorization_url"].startswith(f"{stack.issuer_url}/authorize?")
    assert request["code_challenge_method"] == "S256" and request["nonce"] == started["nonce"]

    callback = sign_in_like_a_browser(started["authorization_url"])
    assert callback.startswith(CALLBACK + "?")
    assert query(callback)["iss"] == stack.issuer_url

    finished = output(
        rp(
            "finish",
            **client,
            redirect_uri=CALLBACK,
            callback_url=callback,
            code_verifier=started["code_verifier"],
            state=started["state"],
            nonce=started["nonce"],
        )
    )
    claims, userinfo = finished["claims"], finished["userinfo"]
    assert claims["iss"] == stack.issuer_url
    assert claims["aud"] in (client_id, [client_id])
    assert claims["nonce"] == started["nonce"]
    assert userinfo["sub"] == claims["sub"] and userinfo["preferred_username"] == "alice"
    me = stack.users_me(finished["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice" and me.json()["sub"] == claims["sub"]
    assert me.json()["client_id"] == client_id


def test_openid_client_refuses_an_id_token_without_its_nonce(stack: Stack, rp: Rp):
    client = {"issuer": stack.issuer_url, "client_id": "node-nonce", "client_secret": None}
    register(stack, "node-nonce", public=True)
    started = output(rp("start", **client, redirect_uri=CALLBACK, scope=SCOPE))
    callback = sign_in_like_a_browser(started["authorization_url"])
    refused = rp(
        "finish",
        **client,
        redirect_uri=CALLBACK,
        callback_url=callback,
        code_verifier=started["code_verifier"],
        state=started["state"],
        nonce="not-the-nonce-of-this-request",
    )
    assert refused.returncode != 0 and refused.stdout == ""
    error = json.loads(refused.stderr)
    assert error["code"] == "OAUTH_JWT_CLAIM_COMPARISON_FAILED", error
    assert 'unexpected ID Token "nonce" claim value' in error["cause"], error


# -- Authlib (Python) --------------------------------------------------------------------------


def half_hash(token: str) -> str:
    """`at_hash` of an RS256 ID token (OpenID Connect Core 3.1.3.6)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return b64url_encode(digest[:16])


async def test_authlib_signs_alice_in(stack: Stack):
    # This one asks for consent: the sign-in answers the consent page with Allow.
    secret = register(stack, "authlib-web", False, "--require-consent")
    metadata = httpx.get(f"{stack.issuer_url}/.well-known/openid-configuration").json()
    code_verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    async with AsyncOAuth2Client(
        "authlib-web", secret, scope=SCOPE, redirect_uri=CALLBACK, code_challenge_method="S256"
    ) as oauth:
        url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
        )
        callback = await asyncio.to_thread(sign_in_like_a_browser, url)
        # RFC 9207, which Authlib leaves to the application.
        assert query(callback)["iss"] == metadata["issuer"] == stack.issuer_url
        token = await oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            code_verifier=code_verifier,
            state=state,
        )
        assert token["token_type"] == "Bearer" and token["scope"] == SCOPE

        keys = KeySet.import_key_set((await oauth.get(metadata["jwks_uri"])).json())
        id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": stack.issuer_url},
            aud={"essential": True, "value": "authlib-web"},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True},
            exp={"essential": True},
        ).validate(id_token.claims)
        assert id_token.claims["at_hash"] == half_hash(token["access_token"])

        userinfo = await oauth.get(metadata["userinfo_endpoint"])
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["sub"] == id_token.claims["sub"]
        assert userinfo.json()["preferred_username"] == "alice"
        me = await oauth.get(f"{stack.rs_url}/users/me")
        assert me.status_code == 200 and me.json()["username"] == "alice"


# -- the browser's own headers -----------------------------------------------------------------


def test_the_sign_in_form_accepts_the_origin_a_browser_sends(stack: Stack):
    register(stack, "chromium-like", public=True)
    url = (
        f"{stack.issuer_url}/authorize?response_type=code&client_id=chromium-like"
        f"&redirect_uri={CALLBACK}&scope=openid&state=s"
        f"&code_challenge={'A' * 43}&code_challenge_method=S256"
    )
    # What Chromium sends for the form of a page under `no-referrer` (Fetch, "serializing a
    # request origin"): `Origin: null` with `Sec-Fetch-Site: same-origin`.
    callback = sign_in_like_a_browser(url, origin="null")
    assert "code" in query(callback)
