"""Authorization code + PKCE + OpenID Connect against the issuer app, on both databases."""

import asyncio
import html as html_module
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.exc import OperationalError

from issuer.accounts.users import User
from issuer.admin import change_user, create_client, create_user
from issuer.app import create_app
from issuer.builders import rotation_policy
from issuer.keys.files import FileKeyStore
from issuer.oauth.clients import Client, ClientRepository
from issuer.oauth.codes import AuthorizationCodes
from issuer.oauth.tokens import at_hash
from issuer.oidc.authorize import MAX_REQUEST_LENGTH
from issuer.oidc.sessions import BrowserSessions, SignedIn
from issuer.settings import Settings
from tests.support import (
    FakeClock,
    db_session,
    fresh_key_set,
    running,
    served,
    sign_out_after_password_check,
)
from tests.unit.oidc.flow import (
    Pkce,
    authorize_url,
    callback_params,
    consent,
    hidden_fields,
    sign_in,
    submit_login,
)

ISSUER = "http://issuer.test"
WEBAPP = "https://app.example/callback"
SPA = "https://spa.example/cb"
CONSENTING = "https://c.example/cb"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    settings = Settings(
        url=ISSUER,
        keys_dir=fresh_key_set(tmp_path / "keys"),
        database_url=database_url,
        bcrypt_rounds=4,
        login_free_failures=2,
        service_name="Acme Identity",
    )
    create_user(settings, "alice", "wonderland1", email="alice@example.com", scope="read")
    return settings


@pytest.fixture
def secrets(settings: Settings) -> dict[str, str]:
    webapp = create_client(
        settings,
        "webapp",
        ("authorization_code", "refresh_token"),
        scope="openid profile email read",
        redirect_uris=(WEBAPP,),
        post_logout_redirect_uris=("https://app.example/bye",),
        name="Photo Gallery",
        resource_audiences=("api",),
    )
    create_client(
        settings,
        "spa",
        ("authorization_code",),
        scope="openid profile",
        redirect_uris=(SPA,),
        public=True,
    )
    create_client(
        settings,
        "native",
        ("authorization_code", "refresh_token"),
        scope="openid",
        redirect_uris=("http://127.0.0.1/callback",),
        public=True,
    )
    create_client(
        settings,
        "consenting",
        ("authorization_code",),
        scope="openid email read",
        redirect_uris=(CONSENTING,),
        public=True,
        require_consent=True,
    )
    assert webapp.secret is not None
    return {"webapp": webapp.secret}


@pytest.fixture
async def client(settings, secrets, clock) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        yield client


# Ways a forged form post differs from the browser's own: every form checks all of them.
CSRF_TAMPERING = [
    lambda form, headers: form.pop("csrf_token"),
    lambda form, headers: form.update(csrf_token="forged-" + "x" * 30),
    lambda form, headers: headers.update(origin="https://evil.example"),
    lambda form, headers: headers.update({"sec-fetch-site": "cross-site"}),
    lambda form, headers: headers.update({"sec-fetch-site": "same-site"}),
    lambda form, headers: headers.update(origin="null"),  # no browser vouching for it
]
CSRF_TAMPERING_IDS = ["missing", "wrong", "cross-site-origin", "cross-site", "same-site", "null"]


async def exchange(client, code, pkce, redirect_uri=WEBAPP, auth=None, **extra) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
        **extra,
    }
    return await client.post("/token", data=form, auth=auth)


async def webapp_code(client, secrets, pkce, **params) -> dict[str, str]:
    response = await sign_in(client, authorize_url("webapp", WEBAPP, pkce, **params))
    return callback_params(response)


async def decode(client, token: str) -> jwt.Token:
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    return jwt.decode(token, keys, algorithms=["RS256"])


# -- the whole flow --------------------------------------------------------------------


async def test_a_confidential_web_app_signs_a_user_in(client, secrets, clock):
    pkce = Pkce()
    url = authorize_url(
        "webapp", WEBAPP, pkce, scope="openid profile email read", nonce="n-0S6", state="xyz"
    )
    page = await client.get(url)
    assert page.status_code == 200
    assert "Photo Gallery" in page.text and "Acme Identity" in page.text
    params = callback_params(await sign_in(client, url))
    assert params["state"] == "xyz" and params["iss"] == ISSUER  # RFC 9207
    tokens = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert tokens.headers["cache-control"] == "no-store"
    assert body["scope"] == "openid profile email read" and "refresh_token" in body
    access = await decode(client, body["access_token"])
    assert access.header["typ"] == "at+jwt" and access.claims["client_id"] == "webapp"
    id_token = await decode(client, body["id_token"])
    assert id_token.header["typ"] == "JWT"
    claims = id_token.claims
    assert claims["iss"] == ISSUER and claims["aud"] == "webapp"
    assert claims["sub"] == access.claims["sub"]
    assert claims["nonce"] == "n-0S6"
    assert claims["auth_time"] == int(clock())
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert claims["exp"] > claims["iat"]
    for method in ("GET", "POST"):
        info = await client.request(
            method, "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert info.headers["cache-control"] == "no-store"
        assert info.json() == {
            "sub": claims["sub"],
            "preferred_username": "alice",
            "email": "alice@example.com",
        }


async def test_a_browser_app_and_a_native_app_sign_in_with_pkce_alone(client):
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    tokens = await exchange(client, params["code"], pkce, SPA, client_id="spa")
    assert tokens.status_code == 200 and "id_token" in tokens.json()
    assert "refresh_token" not in tokens.json()  # spa may not refresh
    # A native app listens on whatever loopback port it got (RFC 8252 7.3). Signed in
    # already, the user is asked (RFC 8252 8.6, below).
    native = "http://127.0.0.1:54321/callback"
    pkce = Pkce()
    page = await sign_in(client, authorize_url("native", native, pkce))
    params = callback_params(await consent(client, page, "allow"))
    tokens = await exchange(client, params["code"], pkce, native, client_id="native")
    assert tokens.status_code == 200 and "refresh_token" in tokens.json()


# RFC 8252 8.6: any program on the machine can listen on a loopback port and name a public
# client, so a session alone never hands such a client a code.
async def test_a_loopback_public_client_gets_a_code_only_after_the_user_acts(
    client, settings, secrets
):
    native = "http://127.0.0.1:54321/callback"
    # Signing in for the request is the user acting: the code goes straight to the app.
    pkce = Pkce()
    signed_in = await sign_in(client, authorize_url("native", native, pkce, state="s1"))
    assert signed_in.status_code == 303
    params = callback_params(signed_in)
    assert params["state"] == "s1" and params["iss"] == ISSUER
    tokens = await exchange(client, params["code"], pkce, native, client_id="native")
    assert tokens.status_code == 200
    for client_id, redirect_uri, public in (
        ("local", "http://127.0.0.1/cb", False),
        ("native6", "http://[::1]/cb", True),
    ):
        made = create_client(
            settings,
            client_id,
            ("authorization_code",),
            scope="openid",
            redirect_uris=(redirect_uri,),
            public=public,
        )
        if made.secret is not None:
            secrets[client_id] = made.secret
    # Then, from the session, on another port (another program), every time: the consent
    # page, whatever the user approved before; prompt=none cannot be answered.
    attacker = "http://127.0.0.1:31337/callback"
    for _ in range(2):
        page = await client.get(authorize_url("native", attacker, Pkce()))
        assert page.status_code == 200 and "Allow access?" in page.text
        assert "code=" not in page.headers.get("location", "")
        approved = callback_params(await consent(client, page, "allow"))
        assert approved["code"]
    silent = callback_params(
        await client.get(authorize_url("native", native, Pkce(), prompt="none"))
    )
    assert silent["error"] == "consent_required" and "code" not in silent
    # Denied, the program gets nothing.
    page = await client.get(authorize_url("native", attacker, Pkce(), state="s2"))
    denied = callback_params(await consent(client, page, "deny"))
    assert denied["error"] == "access_denied" and denied["state"] == "s2"
    # A public client at an https address, and a confidential one at a loopback address
    # (its secret tells it apart), get their code from the session, silently.
    assert "code=" in (await client.get(authorize_url("spa", SPA, Pkce()))).headers["location"]
    pkce = Pkce()
    local = callback_params(await client.get(authorize_url("local", "http://127.0.0.1:8/cb", pkce)))
    tokens = await exchange(
        client, local["code"], pkce, "http://127.0.0.1:8/cb", auth=("local", secrets["local"])
    )
    assert tokens.status_code == 200
    # [::1] is a loopback address too.
    page = await client.get(authorize_url("native6", "http://[::1]:9/cb", Pkce()))
    assert page.status_code == 200 and "Allow access?" in page.text


async def test_a_loopback_client_asking_for_consent_asks_after_the_sign_in_too(client, settings):
    # Signing in is the user acting, but not their consent: a client registered with
    # --require-consent still asks once, then the remembered answer counts after a sign-in.
    create_client(
        settings,
        "desk",
        ("authorization_code",),
        scope="openid",
        redirect_uris=("http://127.0.0.1/cb",),
        public=True,
        require_consent=True,
    )
    url = authorize_url("desk", "http://127.0.0.1:7/cb", Pkce())
    asked = await sign_in(client, url)
    assert asked.status_code == 200 and "Allow access?" in asked.text
    assert callback_params(await consent(client, asked, "allow"))["code"]
    client.cookies.clear()
    again = await sign_in(client, authorize_url("desk", "http://127.0.0.1:7/cb", Pkce()))
    assert again.status_code == 303 and callback_params(again)["code"]


async def test_prompt_none_tells_a_consenting_client_nothing_of_the_users_scopes(client, settings):
    # bob holds no `read`: under prompt=none the client learns only that consent is missing,
    # as it would for alice, who holds it.
    create_user(settings, "bob", "builder-12")
    await sign_in(client, authorize_url("spa", SPA, Pkce()), "bob", "builder-12")
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="read", prompt="none")
    params = callback_params(await client.get(url))
    assert params["error"] == "consent_required", params


async def test_a_second_app_signs_in_without_typing_single_sign_on(client, secrets):
    await webapp_code(client, secrets, Pkce())
    again = await client.get(authorize_url("spa", SPA, Pkce()))
    assert again.status_code == 302 and "code=" in again.headers["location"]
    assert again.headers["cache-control"] == "no-store"  # the code is no answer to keep


# `client_id` is optional (RP-Initiated Logout 1.0 section 2); sent, it names the hint's client.
@pytest.mark.parametrize("client_id", [None, "webapp"])
async def test_logout_ends_the_session_and_returns_to_the_registered_uri(
    client, secrets, client_id
):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    tokens = (
        await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    ).json()
    query = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://app.example/bye",
        "state": "s1",
        "client_id": client_id,
    }
    out = await client.get("/logout", params={k: v for k, v in query.items() if v is not None})
    assert out.status_code == 302
    assert out.headers["location"] == "https://app.example/bye?state=s1"
    # The browser's cookie goes too, on the way back to the app as on the signed-out page.
    cleared = [c for c in out.headers.get_list("set-cookie") if c.startswith("issuer_session=")]
    assert len(cleared) == 1 and "max-age=0" in cleared[0].lower()
    again = await client.get(authorize_url("spa", SPA, Pkce()))
    assert again.status_code == 200 and 'name="password"' in again.text  # signed out


async def test_logout_drops_the_codes_its_session_issued_not_yet_exchanged(client, secrets):
    # A code on its way to an app when the user signs out must not sign them in after it;
    # a code already exchanged stays, so that its replay still revokes what it issued.
    spa_pkce, webapp_pkce = Pkce(), Pkce()
    pending = callback_params(await sign_in(client, authorize_url("spa", SPA, spa_pkce)))
    params = await webapp_code(client, secrets, webapp_pkce, scope="openid read")
    webapp = ("webapp", secrets["webapp"])
    tokens = (await exchange(client, params["code"], webapp_pkce, auth=webapp)).json()
    out = await client.get("/logout", params={"id_token_hint": tokens["id_token"]})
    assert out.status_code == 200 and "signed out" in out.text
    refused = await exchange(client, pending["code"], spa_pkce, SPA, client_id="spa")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    replayed = await exchange(client, params["code"], webapp_pkce, auth=webapp)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert (await client.post("/token", data=refresh, auth=webapp)).status_code == 400


async def test_logout_never_redirects_to_an_unregistered_uri(client, secrets):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    tokens = (
        await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    ).json()
    for query in (
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
        {"post_logout_redirect_uri": "https://app.example/bye"},  # no hint: whose URI?
        {
            "id_token_hint": tokens["access_token"],
            "post_logout_redirect_uri": "https://app.example/bye",
        },
        {  # a client_id other than the hint's client: the URI is not that client's
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://app.example/bye",
            "client_id": "spa",
        },
    ):
        out = await client.get("/logout", params=query)
        assert out.status_code == 200 and "signed out" in out.text
        assert "location" not in out.headers


async def test_a_hint_of_another_client_than_client_id_is_not_used(client, secrets):
    # RP-Initiated Logout 1.0: the OP "MUST verify" that client_id is the hint's client
    # (section 2), and a hint that fails is not used (section 4): the review found such a
    # pair ended the session unasked, on the strength of the hint it had just refused.
    tokens = await signed_in_tokens(client, secrets)
    query = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://app.example/bye",
        "state": "s1",
        "client_id": "spa",
    }
    asked = await client.get("/logout", params=query, headers=CROSS_SITE)
    assert asked.status_code == 200 and "Sign out?" in asked.text
    assert await still_signed_in(client)
    form = hidden_fields(asked.text)
    confirmed = await client.post("/logout", data=form, headers={"sec-fetch-site": "same-origin"})
    assert confirmed.status_code == 200 and "signed out" in confirmed.text
    assert "location" not in confirmed.headers
    assert not await still_signed_in(client)


async def test_logout_never_redirects_to_a_disabled_clients_uri(client, secrets, settings, clock):
    # A client is disabled when its site can no longer be trusted (a lost domain): /authorize
    # refuses it, and the browser must not be sent there after signing out either.
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    tokens = (
        await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    ).json()
    with db_session(settings.database_url) as session:
        session.query(Client).filter_by(client_id="webapp").one().disabled = True
        session.commit()
    # Another replica (or this one once its few seconds of client cache have passed).
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as replica:
        replica.cookies = client.cookies
        out = await replica.get(
            "/logout",
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": "https://app.example/bye",
                "state": "s1",
            },
        )
    assert out.status_code == 200 and "signed out" in out.text
    assert "location" not in out.headers


async def test_a_new_password_spends_the_codes_not_yet_exchanged(client, settings):
    # Signed out everywhere includes a code issued a moment before: it must not become a
    # refresh token that outlives the new password.
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    _, signed_out = change_user(settings, "alice", password="through the looking glass")
    assert signed_out is not None and signed_out.codes == 1 and signed_out.sessions == 1
    refused = await exchange(client, params["code"], pkce, SPA, client_id="spa")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    again = await client.get(authorize_url("spa", SPA, Pkce()))
    assert again.status_code == 200 and 'name="password"' in again.text  # signed out


async def test_a_code_exchanged_while_a_sign_out_everywhere_runs_is_refused(
    client, settings, clock, monkeypatch
):
    # The new password is committed before the user's unused codes are dropped; a code
    # exchanged in between gave spa (no refresh family to revoke) a token newer than the
    # sign-out, which /userinfo and introspection took.
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    clock.advance(1)
    monkeypatch.setattr(AuthorizationCodes, "discard_user", lambda self, user_id: 0)
    change_user(settings, "alice", password="through the looking glass", clock=clock)
    clock.advance(1)
    refused = await exchange(client, params["code"], pkce, SPA, client_id="spa")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_a_sign_in_of_the_second_of_a_new_password_is_not_left_with_refused_codes(
    client, settings, clock
):
    # The review: codes are refused when their sign-in is not after the last sign-out
    # everywhere (whole seconds); a browser that signed in with the new password within
    # the second it was set kept a session whose every code /token refused, for the
    # session's whole lifetime. Such a session now signs in again, as `honours` reads it.
    new_password = "through the looking glass"
    change_user(settings, "alice", password=new_password, clock=clock)
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    await submit_login(client, page, "alice", new_password)  # the same second
    clock.advance(1)
    pkce = Pkce()
    params = callback_params(
        await sign_in(client, authorize_url("spa", SPA, pkce), "alice", new_password)
    )
    tokens = await exchange(client, params["code"], pkce, SPA, client_id="spa")
    assert tokens.status_code == 200, tokens.text


async def test_a_sign_out_everywhere_closes_userinfo_to_the_tokens_issued_before_it(
    client, settings, clock
):
    # spa may not refresh: its access token has no refresh family to be revoked with, and
    # enabling the account again must not bring it back.
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    tokens = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/userinfo", headers=bearer)).status_code == 200
    change_user(settings, "alice", disabled=True, clock=clock)
    change_user(settings, "alice", disabled=False, clock=clock)
    refused = await client.get("/userinfo", headers=bearer)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


@pytest.mark.parametrize("change", [{"disabled": True}, {"password": "through the looking glass"}])
async def test_a_sign_in_checked_before_a_sign_out_everywhere_starts_no_session(
    client, settings, monkeypatch, change
):
    # The audit: the sign-in page checked the password just before an operator disabled the
    # account or set a new password, and wrote its browser session after the sign-out had
    # ended the user's sessions: that session went on issuing codes (and refresh tokens).
    sign_out_after_password_check(monkeypatch, settings, "alice", **change)
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    refused = await submit_login(client, page, "alice", "wonderland1")
    assert refused.status_code == 400 and "Incorrect username or password." in refused.text
    monkeypatch.undo()
    change_user(settings, "alice", disabled=False)
    again = await client.get(authorize_url("spa", SPA, Pkce()))
    assert again.status_code == 200 and 'name="password"' in again.text  # no session


@pytest.mark.parametrize("prompt", [None, "none"])
async def test_a_session_found_just_before_a_sign_out_everywhere_issues_no_code(
    client, settings, monkeypatch, prompt
):
    # The audit: /authorize found the browser's session, then a new password signed the
    # user out everywhere (sessions ended, codes dropped), then the code was stored: it
    # was exchanged for tokens and a refresh token that outlived the new password.
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    find = BrowserSessions.find

    def found_then_signed_out(self: BrowserSessions, session_id: str | None) -> SignedIn | None:
        signed_in = find(self, session_id)
        change_user(settings, "alice", password="through the looking glass")
        return signed_in

    monkeypatch.setattr(BrowserSessions, "find", found_then_signed_out)
    response = await client.get(authorize_url("spa", SPA, Pkce(), prompt=prompt))
    if prompt == "none":
        assert callback_params(response)["error"] == "login_required"
    else:
        assert response.status_code == 200 and 'name="password"' in response.text


# -- prompt, max_age, consent --------------------------------------------------------------


async def test_prompt_none_without_a_session_is_login_required(client):
    response = await client.get(authorize_url("spa", SPA, Pkce(), prompt="none", state="s"))
    params = callback_params(response)
    assert params["error"] == "login_required"
    assert params["state"] == "s" and params["iss"] == ISSUER


async def spa_id_token(client, username="alice", password="wonderland1") -> str:
    pkce = Pkce()
    params = callback_params(
        await sign_in(client, authorize_url("spa", SPA, pkce), username, password)
    )
    return (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()["id_token"]


async def test_an_id_token_hint_naming_someone_else_asks_for_a_sign_in(client, settings):
    create_user(settings, "bob", "builder-12")
    bobs = await spa_id_token(client, "bob", "builder-12")
    client.cookies.clear()
    alices = await spa_id_token(client)  # alice is signed in from here on

    # OpenID Connect Core 3.1.2.1: the session is alice's, the app expects bob.
    silent = callback_params(
        await client.get(authorize_url("spa", SPA, Pkce(), prompt="none", id_token_hint=bobs))
    )
    assert silent["error"] == "login_required" and silent["iss"] == ISSUER
    page = await client.get(authorize_url("spa", SPA, Pkce(), id_token_hint=bobs))
    assert page.status_code == 200 and 'name="password"' in page.text
    # Bob signing in there is the answer the hint asked for.
    pkce = Pkce()
    url = authorize_url("spa", SPA, pkce, id_token_hint=bobs)
    params = callback_params(await sign_in(client, url, "bob", "builder-12"))
    tokens = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    assert (await decode(client, tokens["id_token"])).claims["sub"] == (
        await decode(client, bobs)
    ).claims["sub"]

    # A hint naming the signed-in user (bob now) is answered without a page.
    same = await client.get(
        authorize_url("spa", SPA, Pkce(), prompt="none", id_token_hint=tokens["id_token"])
    )
    assert "code" in callback_params(same)
    # A JWT that is not a readable ID token of ours (an access token, a forgery, or our own
    # ID token whose key has since retired) names nobody the session can be: sign in again.
    for unreadable in (tokens["access_token"], alices[:-4] + "AAAA"):
        silent = callback_params(
            await client.get(
                authorize_url("spa", SPA, Pkce(), prompt="none", id_token_hint=unreadable)
            )
        )
        assert silent["error"] == "login_required"
        page = await client.get(authorize_url("spa", SPA, Pkce(), id_token_hint=unreadable))
        assert page.status_code == 200 and 'name="password"' in page.text
    # What is not a JWT at all is a bad request, not a hint to ignore.
    bad = callback_params(
        await client.get(authorize_url("spa", SPA, Pkce(), id_token_hint="not-a-jwt"))
    )
    assert bad["error"] == "invalid_request"


@pytest.mark.parametrize("hint", ["not-a-jwt", "a.b", "a.b.c.d", "a.b.c.d.e"])
async def test_an_id_token_hint_that_is_no_signed_jwt_is_invalid_request(client, hint):
    # Only a three-part JWS may be one of our ID tokens (we sign, never encrypt, them).
    url = authorize_url("spa", SPA, Pkce(), id_token_hint=hint, state="keep")
    back = callback_params(await client.get(url))
    assert back["error"] == "invalid_request" and back["state"] == "keep"


async def test_another_user_signing_in_for_a_hint_is_login_required(client, settings, caplog):
    # OpenID Connect Core 3.1.2.1: the hint names bob, alice signs in. The app (confirming
    # who is at the keyboard, say) got a code for alice before; now it gets no code.
    create_user(settings, "bob", "builder-12")
    bobs = await spa_id_token(client, "bob", "builder-12")
    client.cookies.clear()
    page = await client.get(authorize_url("spa", SPA, Pkce(), id_token_hint=bobs, state="s"))
    signed_in = await submit_login(client, page, "alice", "wonderland1")
    assert signed_in.status_code == 303  # from the sign-in form straight back to the app
    back = urlsplit(signed_in.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == SPA
    params = {name: values[0] for name, values in parse_qs(back.query).items()}
    assert params["error"] == "login_required" and "code" not in params
    assert params["state"] == "s" and params["iss"] == ISSUER
    assert "not the user id_token_hint names; login_required username='alice'" in caplog.text
    # Her password was right: she is signed in at the issuer, for an app not asking for bob.
    pkce = Pkce()
    params = callback_params(await client.get(authorize_url("spa", SPA, pkce, prompt="none")))
    tokens = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/userinfo", headers=bearer)).json()["preferred_username"] == "alice"


async def test_whoever_signs_in_answers_a_hint_that_names_nobody_readable(client, settings):
    # Our own ID token whose key has since retired reads as nobody: the sign-in answers it,
    # or the page would ask again for ever.
    alices = await spa_id_token(client)
    client.cookies.clear()
    pkce = Pkce()
    url = authorize_url("spa", SPA, pkce, id_token_hint=alices[:-4] + "AAAA")
    params = callback_params(await sign_in(client, url, "alice", "wonderland1"))
    assert "code" in params


async def test_prompt_login_and_max_age_ask_for_the_password_again(client, secrets, clock):
    await webapp_code(client, secrets, Pkce())
    assert (await client.get(authorize_url("spa", SPA, Pkce(), prompt="login"))).status_code == 200
    clock.advance(120)
    stale = await client.get(authorize_url("spa", SPA, Pkce(), max_age="60"))
    assert stale.status_code == 200 and 'name="password"' in stale.text
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce, max_age="60")))
    tokens = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    assert (await decode(client, tokens["id_token"])).claims["auth_time"] == int(clock())


async def test_a_sign_in_exactly_max_age_seconds_old_still_satisfies_it(client, secrets, clock):
    # OpenID Connect Core 3.1.2.1: only an elapsed time greater than max_age asks again.
    await webapp_code(client, secrets, Pkce())
    clock.advance(60)
    on_time = await client.get(authorize_url("spa", SPA, Pkce(), max_age="60", prompt="none"))
    assert "code" in callback_params(on_time)
    clock.advance(1)
    late = await client.get(authorize_url("spa", SPA, Pkce(), max_age="60", prompt="none"))
    assert callback_params(late)["error"] == "login_required"


async def test_a_session_ends_at_the_issuer_after_the_session_ttl(client, settings, clock):
    # However long the browser keeps its cookie: the session's row says until when it holds.
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    silent = authorize_url("spa", SPA, Pkce(), prompt="none")
    clock.advance(settings.session_ttl - 1)
    assert "code" in callback_params(await client.get(silent))
    clock.advance(1)
    assert callback_params(await client.get(silent))["error"] == "login_required"


async def test_a_session_of_a_user_since_disabled_gives_no_code(client, settings):
    # Disabled in the database itself (not by manage_user.py, which also ends the sessions).
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    with db_session(settings.database_url) as session:
        session.query(User).filter_by(username="alice").one().disabled = True
        session.commit()
    silent = await client.get(authorize_url("spa", SPA, Pkce(), prompt="none"))
    assert callback_params(silent)["error"] == "login_required"
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    assert page.status_code == 200 and 'name="password"' in page.text


async def test_prompt_select_account_lets_the_user_sign_in_as_another_account(
    client, secrets, settings
):
    # OpenID Connect Core 3.1.2.1 defines it (the audit saw it refused as invalid_request):
    # the sign-in page is where a user picks the account, and the sign-in satisfies it.
    create_user(settings, "bob", "builder-bob1")
    await webapp_code(client, secrets, Pkce())  # alice is signed in
    pkce = Pkce()
    url = authorize_url("spa", SPA, pkce, prompt="select_account", state="pick")
    page = await client.get(url)
    assert page.status_code == 200 and 'name="password"' in page.text
    back = await sign_in(client, url, "bob", "builder-bob1")
    params = callback_params(back)
    assert params["state"] == "pick"
    tokens = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/userinfo", headers=bearer)).json()["preferred_username"] == "bob"


async def test_max_age_zero_is_satisfied_by_the_sign_in_it_asked_for(client, secrets, clock):
    await webapp_code(client, secrets, Pkce())
    clock.advance(5)
    pkce = Pkce()
    page = await client.get(authorize_url("spa", SPA, pkce, max_age="0"))
    assert 'name="password"' in page.text
    signed_in = await submit_login(client, page, "alice", "wonderland1")
    tokens = await exchange(client, callback_params(signed_in)["code"], pkce, SPA, client_id="spa")
    assert (await decode(client, tokens.json()["id_token"])).claims["auth_time"] == int(clock())
    # Where the user is asked next, the request goes on at /authorize, in the next second.
    clock.advance(5)
    pkce = Pkce()
    page = await client.get(authorize_url("consenting", CONSENTING, pkce, max_age="0"))
    signed_in = await submit_login(client, page, "alice", "wonderland1")
    clock.advance(1)
    asked = await client.get(signed_in.headers["location"])
    assert "Allow access?" in asked.text
    back = callback_params(await consent(client, asked, "allow"))
    tokens = await exchange(client, back["code"], pkce, CONSENTING, client_id="consenting")
    assert (await decode(client, tokens.json()["id_token"])).claims["auth_time"] == int(clock()) - 1


async def test_max_age_zero_asks_for_the_password_even_in_the_second_of_the_sign_in(
    client, secrets
):
    # OpenID Connect Core 3.1.2.1: max_age=0 is prompt=login, though the age in whole
    # seconds is 0.
    await webapp_code(client, secrets, Pkce())  # the clock stands still
    page = await client.get(authorize_url("spa", SPA, Pkce(), max_age="0"))
    assert page.status_code == 200 and 'name="password"' in page.text
    silent = await client.get(authorize_url("spa", SPA, Pkce(), max_age="0", prompt="none"))
    assert callback_params(silent)["error"] == "login_required"


async def test_the_consent_answer_checks_the_session_like_the_request_did(client, clock):
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid")
    page = await sign_in(client, url)
    assert "Allow" in page.text
    clock.advance(3600)
    # The same form, sent for a request that wants a sign-in at most 10 s old.
    stale = authorize_url("consenting", CONSENTING, Pkce(), scope="openid", max_age="10")
    form = {**hidden_fields(page.text), "request": stale.removeprefix("/authorize?")}
    answer = await client.post("/consent", data={**form, "decision": "allow"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("authorize?")  # sign in again, no code
    again = await client.get(answer.headers["location"])
    assert again.status_code == 200 and 'name="password"' in again.text


async def test_consent_is_asked_remembered_and_can_be_denied(client):
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid email read")
    page = await sign_in(client, url)
    assert page.status_code == 200 and "Allow" in page.text and "email" in page.text
    # Every token and /userinfo carry the username with `openid` alone: the page says so.
    assert "see your username" in page.text
    denied = callback_params(_follow(await consent(client, page, "deny")))
    assert denied["error"] == "access_denied" and denied["iss"] == ISSUER
    page = await client.get(url)
    allowed = callback_params(_follow(await consent(client, page, "allow")))
    assert "code" in allowed
    remembered = await client.get(authorize_url("consenting", CONSENTING, Pkce(), scope="openid"))
    assert remembered.status_code == 302 and "code=" in remembered.headers["location"]
    asked = await client.get(authorize_url("consenting", CONSENTING, Pkce(), prompt="consent"))
    assert asked.status_code == 200 and "Allow" in asked.text
    more = authorize_url("consenting", CONSENTING, Pkce(), scope="openid email", prompt="none")
    assert callback_params(await client.get(more))["code"]  # covered by the earlier grant


async def test_a_consent_covers_the_scopes_allowed_never_one_more(client):
    # Remembered per client and scope set: allowing `openid` is no answer for `email`.
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid")
    assert "code" in callback_params(
        _follow(await consent(client, await sign_in(client, url), "allow"))
    )
    wider = authorize_url("consenting", CONSENTING, Pkce(), scope="openid email", prompt="none")
    assert callback_params(await client.get(wider))["error"] == "consent_required"
    page = await client.get(authorize_url("consenting", CONSENTING, Pkce(), scope="openid email"))
    assert page.status_code == 200 and "Allow" in page.text and "email" in page.text
    assert "code" in callback_params(_follow(await consent(client, page, "allow")))
    assert "code" in callback_params(await client.get(wider))  # now allowed, as a whole


async def test_a_consent_is_one_users_for_one_client(client, settings):
    # Remembered per user and per client: alice's yes to one app answers neither another app
    # asking the same scopes nor bob using the same app.
    create_client(
        settings,
        "other",
        ("authorization_code",),
        scope="openid",
        redirect_uris=(CONSENTING,),
        public=True,
        require_consent=True,
    )
    create_user(settings, "bob", "builder-bob1")
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid")
    assert "code" in callback_params(
        _follow(await consent(client, await sign_in(client, url), "allow"))
    )
    silent = authorize_url("consenting", CONSENTING, Pkce(), scope="openid", prompt="none")
    assert "code" in callback_params(await client.get(silent))
    other = authorize_url("other", CONSENTING, Pkce(), scope="openid", prompt="none")
    assert callback_params(await client.get(other))["error"] == "consent_required"
    await sign_in(client, authorize_url("spa", SPA, Pkce(), prompt="login"), "bob", "builder-bob1")
    assert callback_params(await client.get(silent))["error"] == "consent_required"


async def test_an_app_asking_for_no_scope_is_named_on_its_consent_page_and_remembered(
    client, settings
):
    # The audit: with nothing to list, the page asked "Allow access?" without naming the app.
    create_client(
        settings,
        "bare",
        ("authorization_code",),
        redirect_uris=(CONSENTING,),
        public=True,
        require_consent=True,
        name="Bare App",
    )
    silent = authorize_url("bare", CONSENTING, Pkce(), scope=None, prompt="none")
    page = await sign_in(client, authorize_url("bare", CONSENTING, Pkce(), scope=None))
    assert "Allow" in page.text and "Bare App" in page.text
    assert callback_params(await client.get(silent))["error"] == "consent_required"
    assert "code" in callback_params(_follow(await consent(client, page, "allow")))
    assert "code" in callback_params(await client.get(silent))


async def test_a_consent_answer_counts_only_for_the_user_it_was_shown_to(client, settings):
    # The audit: alice's open consent page, sent after bob signed in from another tab, gave
    # a code for bob and stored a consent bob never saw.
    create_user(settings, "bob", "builder-bob1")
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid")
    alices = await sign_in(client, url)
    assert "alice" in alices.text and "Allow" in alices.text
    await sign_in(client, authorize_url("spa", SPA, Pkce(), prompt="login"), "bob", "builder-bob1")
    answer = await consent(client, alices, "allow")
    # Ask again (a relative reference: the issuer may sit under a path).
    assert answer.status_code == 303 and answer.headers["location"] == url.removeprefix("/")
    bobs = await client.get(answer.headers["location"])
    assert bobs.status_code == 200 and "bob" in bobs.text and "Allow" in bobs.text
    silent = authorize_url("consenting", CONSENTING, Pkce(), scope="openid", prompt="none")
    assert callback_params(await client.get(silent))["error"] == "consent_required"
    assert "code" in callback_params(_follow(await consent(client, bobs, "allow")))


async def test_prompt_consent_asks_any_client_and_a_no_is_access_denied(client):
    # "spa" is registered without --require-consent: it skips the page unless it asks for it.
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    page = await client.get(authorize_url("spa", SPA, Pkce(), prompt="consent", state="c"))
    assert page.status_code == 200 and "Allow" in page.text
    denied = callback_params(_follow(await consent(client, page, "deny")))
    assert denied["error"] == "access_denied" and denied["state"] == "c"
    page = await client.get(authorize_url("spa", SPA, Pkce(), prompt="consent"))
    assert "code" in callback_params(_follow(await consent(client, page, "allow")))


async def test_prompt_login_and_consent_asks_for_the_password_then_the_consent(client):
    # The sign-in satisfies `login`, not `consent`: the user is still asked.
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    url = authorize_url("spa", SPA, Pkce(), prompt="login consent", state="both")
    page = await client.get(url)
    assert page.status_code == 200 and 'name="password"' in page.text
    asked = await sign_in(client, url)
    assert asked.status_code == 200 and "Allow" in asked.text
    assert callback_params(_follow(await consent(client, asked, "allow")))["state"] == "both"


@pytest.mark.parametrize("path", ["/login", "/consent"])
async def test_every_form_sent_counts_against_the_address_a_refused_one_too(client, settings, path):
    # The audit: forms refused for their CSRF token (or naming an unknown client, a database
    # lookup each) were never counted, so an address could send them without end.
    for _ in range(settings.rate_limit_per_ip):
        refused = await client.post(path, data={"csrf_token": "f" * 40, "request": "x"})
        assert refused.status_code == 403
    token = await client.post("/token", data={"username": "alice", "password": "wonderland1"})
    assert token.status_code == 429  # the same address limit as the token endpoint's


@pytest.mark.parametrize("tamper", CSRF_TAMPERING, ids=CSRF_TAMPERING_IDS)
async def test_the_consent_form_is_protected_against_csrf(client, tamper):
    page = await sign_in(client, authorize_url("consenting", CONSENTING, Pkce(), scope="openid"))
    form = {**hidden_fields(page.text), "decision": "allow"}
    headers: dict[str, str] = {}
    tamper(form, headers)
    response = await client.post("/consent", data=form, headers=headers)
    assert response.status_code == 403 and "expired" in response.text
    assert "location" not in response.headers


@pytest.mark.parametrize("decision", [None, "yes", "Allow"])
async def test_a_consent_answer_other_than_allow_is_a_refusal(client, decision):
    page = await sign_in(client, authorize_url("consenting", CONSENTING, Pkce(), scope="openid"))
    form = hidden_fields(page.text)
    if decision is not None:
        form["decision"] = decision
    denied = callback_params(_follow(await client.post("/consent", data=form)))
    assert denied["error"] == "access_denied" and "code" not in denied


async def test_a_consent_form_over_the_address_limit_is_a_429_page(settings, secrets, clock):
    limited = settings.model_copy(update={"rate_limit_per_ip": 2})
    async with running(create_app(limited, clock=clock, timer=clock), ISSUER) as client:
        url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid")
        page = await sign_in(client, url)  # the sign-in form: 1
        allowed = await consent(client, page, "allow")  # 2
        assert "code" in callback_params(_follow(allowed))
        refused = await consent(client, page, "allow")
    assert refused.status_code == 429 and "location" not in refused.headers
    assert refused.headers["content-type"].startswith("text/html")
    assert f"Try again in {refused.headers['retry-after']} seconds." in refused.text


async def test_an_expired_consent_form_offers_to_start_again_with_its_request(client):
    url = authorize_url("consenting", CONSENTING, Pkce(), scope="openid")
    page = await sign_in(client, url)
    client.cookies.delete("issuer_csrf")  # as after a browser restart
    expired = await consent(client, page, "allow")
    assert expired.status_code == 403 and "location" not in expired.headers
    (link,) = re.findall(r'href="(authorize\?[^"]*)"', expired.text)
    assert html_module.unescape(link) == url.removeprefix("/")
    again = await client.get(html_module.unescape(link))
    assert again.status_code == 200 and "Allow" in again.text
    # Without its request there is nothing to start again.
    bare = await client.post("/consent", data={"csrf_token": "f" * 40, "decision": "allow"})
    assert bare.status_code == 403 and "Start again" not in bare.text


async def test_prompt_none_when_consent_is_needed_is_consent_required(client, secrets):
    await webapp_code(client, secrets, Pkce())
    url = authorize_url("consenting", CONSENTING, Pkce(), prompt="none")
    assert callback_params(await client.get(url))["error"] == "consent_required"


def _follow(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 303, response.text
    return httpx.Response(302, headers={"location": response.headers["location"]})


async def test_api_scopes_are_narrowed_to_the_users_and_nothing_left_is_access_denied(
    client, secrets, settings
):
    create_user(settings, "bob", "builder-12")  # holds no API scope
    pkce = Pkce()
    url = authorize_url("webapp", WEBAPP, pkce, scope="openid read")
    params = callback_params(await sign_in(client, url, "bob", "builder-12"))
    tokens = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert tokens.json()["scope"] == "openid"  # it differs from the request, so it is said
    # Nothing of what was asked can be granted, and an empty scope cannot be said (RFC 6749
    # 5.1): the answer is a refusal, not a token without scope.
    refused = callback_params(
        await client.get(authorize_url("webapp", WEBAPP, Pkce(), scope="read"))
    )
    assert refused["error"] == "access_denied" and refused["iss"] == ISSUER
    # Nothing asked (the client's registered scopes stand in): nothing to refuse.
    create_client(
        settings,
        "reports",
        ("authorization_code",),
        scope="read",
        redirect_uris=(SPA,),
        public=True,
    )
    unasked = callback_params(await client.get(authorize_url("reports", SPA, Pkce(), scope=None)))
    assert "code" in unasked


# -- codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("later", [0, 61], ids=["at-once", "after-the-code-expired"])
async def test_a_code_works_once_and_its_second_use_revokes_what_the_first_issued(
    client, secrets, clock: FakeClock, later
):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce, scope="openid read")
    auth = ("webapp", secrets["webapp"])
    first = (await exchange(client, params["code"], pkce, auth=auth)).json()
    clock.advance(later)
    await webapp_code(client, secrets, Pkce())  # issuing a code drops rows past their end
    second = await exchange(client, params["code"], pkce, auth=auth)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    introspected = await client.post(
        "/introspect", data={"token": first["access_token"]}, auth=auth
    )
    assert introspected.json() == {"active": False}
    refreshed = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 400


async def test_a_stranger_replaying_a_used_code_revokes_nothing(client, secrets, clock):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce, scope="openid read")
    auth = ("webapp", secrets["webapp"])
    first = (await exchange(client, params["code"], pkce, auth=auth)).json()
    clock.advance(300)  # the code turned up in a log; anyone may name the public client
    replay = await exchange(client, params["code"], Pkce(), "https://x.example/", client_id="spa")
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refreshed = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_naming_a_public_client_is_not_enough_to_revoke_what_its_code_issued(client):
    native, pkce = "http://127.0.0.1:54321/callback", Pkce()
    params = callback_params(await sign_in(client, authorize_url("native", native, pkce)))
    first = (await exchange(client, params["code"], pkce, native, client_id="native")).json()

    async def refresh_works() -> bool:
        data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        refreshed = await client.post("/token", data={**data, "client_id": "native"})
        if refreshed.status_code == 200:
            first["refresh_token"] = refreshed.json()["refresh_token"]
        return refreshed.status_code == 200

    # A stranger with the code from a log, the client's id and its redirect URI, not the
    # app's PKCE verifier.
    stranger = await exchange(client, params["code"], Pkce(), native, client_id="native")
    assert stranger.json()["error"] == "invalid_grant"
    assert await refresh_works()
    # The app itself sending the code again (every binding, its verifier too) revokes.
    again = await exchange(client, params["code"], pkce, native, client_id="native")
    assert again.json()["error"] == "invalid_grant"
    assert not await refresh_works()


async def test_a_refreshed_token_keeps_the_identity_scopes_for_userinfo(client, secrets):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce, scope="openid email read")
    auth = ("webapp", secrets["webapp"])
    first = (await exchange(client, params["code"], pkce, auth=auth)).json()
    refreshed = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "openid email read"
    info = await client.get(
        "/userinfo", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert info.status_code == 200 and info.json()["email"] == "alice@example.com"


async def test_an_expired_code_is_invalid_grant(client, secrets, clock: FakeClock):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    clock.advance(61)
    response = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_code_without_openid_gets_an_access_token_and_no_id_token(client, secrets):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce, scope="read")
    response = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "read" and body["access_token"]
    assert "id_token" not in body


async def test_a_code_of_a_user_since_disabled_is_invalid_grant(client, secrets, settings):
    # Disabled in the database itself (not by manage_user.py, which also ends the sessions).
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    with db_session(settings.database_url) as session:
        session.query(User).filter_by(username="alice").one().disabled = True
        session.commit()
    response = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),
        ({"redirect_uri": "https://app.example/other"}, "invalid_grant"),
        ({"code_verifier": None}, "invalid_request"),
    ],
    ids=["wrong-verifier", "other-redirect-uri", "no-verifier"],
)
async def test_the_exchange_checks_every_binding(client, secrets, change, error):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": WEBAPP,
        "code_verifier": pkce.verifier,
    }
    form.update(change)
    response = await client.post(
        "/token",
        data={k: v for k, v in form.items() if v is not None},
        auth=("webapp", secrets["webapp"]),
    )
    assert response.status_code == 400 and response.json()["error"] == error
    # The code is kept for the request that carries every binding (as oidc-provider does):
    # one with a wrong one does not spend it.
    redeemed = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert redeemed.status_code == 200, redeemed.text


async def test_a_confidential_client_must_authenticate_to_exchange(client, secrets):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    response = await exchange(client, params["code"], pkce, client_id="webapp")
    assert response.status_code == 401 and response.headers["www-authenticate"]


async def test_a_code_issued_to_one_client_is_refused_to_another(client, secrets):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    response = await exchange(client, params["code"], pkce, WEBAPP, client_id="spa")
    assert response.status_code in (400, 401)


async def test_a_code_named_by_another_public_client_stays_its_own_clients(client, secrets):
    # The fuzzing audit: anyone who saw a code (a log, a Referer) could spend it, with no
    # credential at all, by naming another public client: the app's own exchange then failed.
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    stranger = await exchange(client, params["code"], Pkce(), WEBAPP, client_id="spa")
    assert stranger.status_code == 400 and stranger.json()["error"] == "invalid_grant"
    assert stranger.json()["error_description"] == (
        "the code was not issued to this client, redirect_uri and code_verifier"
    )
    redeemed = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert redeemed.status_code == 200, redeemed.text


# -- the authorization request ----------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),  # missing, not unsupported (4.1.2.1)
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "none select_account"}, "invalid_request"),
        ({"prompt": "create"}, "invalid_request"),
        ({"prompt": "login\u00a0consent"}, "invalid_request"),  # space-delimited: SP only
        ({"prompt": "\u2003"}, "invalid_request"),
        ({"prompt": "none\x1c"}, "invalid_request"),
        ({"nonce": "n" * 513}, "invalid_request"),
        ({"max_age": "\u00b2"}, "invalid_request"),  # a digit to str.isdigit, not to int()
        ({"nonce": "a\x00b"}, "invalid_request"),  # RFC 6749 Appendix A: no parameter holds NUL
        ({"login_hint": "\x00"}, "invalid_request"),
        ({"x\x00": "1"}, "invalid_request"),
        ({"x\x00": ""}, "invalid_request"),  # an empty value is omitted, not its name's NUL
    ],
    ids=[
        "plain",
        "no-challenge",
        "no-method",
        "implicit",
        "no-response-type",
        "fragment-mode",
        "form-post-mode",
        "unregistered-scope",
        "bad-prompt",
        "none-with-select-account",
        "unknown-prompt",
        "prompt-split-on-nbsp",
        "prompt-of-an-em-space",
        "prompt-with-a-separator-control",
        "long-nonce",
        "superscript-max-age",
        "nul-in-nonce",
        "nul-in-login-hint",
        "nul-in-a-name",
        "nul-in-a-name-without-value",
    ],
)
async def test_errors_after_the_client_is_known_go_back_with_state_and_iss(client, params, error):
    url = authorize_url("spa", SPA, Pkce(), state="keep", **params)
    back = callback_params(await client.get(url))
    assert back["error"] == error and back["state"] == "keep" and back["iss"] == ISSUER


async def test_a_disabled_client_is_an_error_page_never_a_redirect(secrets, settings, clock):
    # A client is disabled when its site can no longer be trusted: its redirect URI is not
    # established any more.
    with db_session(settings.database_url) as session:
        session.query(Client).filter_by(client_id="spa").one().disabled = True
        session.commit()
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as replica:
        response = await replica.get(authorize_url("spa", SPA, Pkce(), state="keep"))
    assert response.status_code == 400 and "location" not in response.headers
    assert "cannot be completed" in response.text


async def test_a_client_whose_code_grant_was_withdrawn_is_unauthorized_client(
    secrets, settings, clock
):
    # An operator editing the registration may leave its redirect URIs behind.
    with db_session(settings.database_url) as session:
        session.query(Client).filter_by(client_id="spa").one().grant_types = "password"
        session.commit()
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as replica:
        url = authorize_url("spa", SPA, Pkce(), state="keep")
        back = callback_params(await replica.get(url))
    assert back["error"] == "unauthorized_client" and back["state"] == "keep"
    assert back["iss"] == ISSUER


async def test_response_mode_query_said_outright_is_the_default_it_names(client, secrets):
    # The only mode in response_modes_supported: an app may well send it.
    await webapp_code(client, secrets, Pkce())
    url = authorize_url("spa", SPA, Pkce(), response_mode="query", prompt="none")
    assert "code" in callback_params(await client.get(url))


async def test_a_parameter_may_be_2048_characters_and_no_more(client):
    at_limit = await client.get(authorize_url("spa", SPA, Pkce(), state="s" * 2048))
    assert at_limit.status_code == 200 and 'name="password"' in at_limit.text
    over = await client.get(authorize_url("spa", SPA, Pkce(), login_hint="h" * 2049))
    assert callback_params(over)["error"] == "invalid_request"
    # A `state` over the limit is refused like any parameter, and not echoed back.
    long_state = callback_params(
        await client.get(authorize_url("spa", SPA, Pkce(), state="s" * 2049))
    )
    assert long_state["error"] == "invalid_request" and "state" not in long_state


async def test_a_repeated_parameter_is_named_only_if_the_protocol_defines_it(client):
    # A name is the sender's text: quoted back, any site could write on the app's error
    # page through a link (the repeated name was sent back as sent).
    url = authorize_url("spa", SPA, Pkce(), state="keep")
    made_up = url + "&" + "&".join(["Call+555-0100+to+unlock+your+account=1"] * 2)
    assert callback_params(await client.get(made_up))["error_description"] == (
        "a parameter is repeated"
    )
    defined = url + "&nonce=1&nonce=2&prompt=login&prompt=none&junk=1&junk=2"
    assert callback_params(await client.get(defined))["error_description"] == (
        "repeated parameter: nonce, prompt"
    )


async def test_an_error_page_shows_no_text_the_request_made_up(client):
    words = "Your account is locked. Call 555-0100"
    page = await client.get("/logout", params=[(words, "1"), (words, "2")])
    assert page.status_code == 400 and "repeated" in page.text
    assert "555-0100" not in page.text


async def test_our_own_id_token_is_a_hint_however_long(client):
    # 512 three-byte characters of nonce (the most it may have) make the ID token over the
    # 2,048 characters other parameters may have; it is still ours to honour.
    pkce = Pkce()
    params = callback_params(
        await sign_in(client, authorize_url("spa", SPA, pkce, nonce="\u20ac" * 512))
    )
    tokens = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    assert len(tokens["id_token"]) > 2048
    hinted = authorize_url("spa", SPA, Pkce(), prompt="none", id_token_hint=tokens["id_token"])
    assert "code" in callback_params(await client.get(hinted))


async def test_a_registered_redirect_uris_query_comes_back_as_registered(client, settings):
    # RFC 6749 3.1.2: the query "MUST be retained" when parameters are added. It was decoded
    # and encoded again (`flag` came back as `flag=`, `%20` as `+`, a byte that is not UTF-8
    # as U+FFFD), so an app checking its callback's query as registered was refused.
    callback = "https://q.example/cb?flag&tag=a%20b&raw=%FF"
    create_client(
        settings,
        "q",
        ("authorization_code",),
        scope="openid",
        redirect_uris=(callback,),
        post_logout_redirect_uris=(callback,),
        public=True,
    )
    pkce = Pkce()
    signed_in = await sign_in(client, authorize_url("q", callback, pkce))
    assert signed_in.headers["location"].startswith(callback + "&code=")
    refused = await client.get(authorize_url("q", callback, Pkce(), prompt="create"))
    assert refused.headers["location"].startswith(callback + "&error=invalid_request&")
    code = callback_params(signed_in)["code"]
    tokens = (await exchange(client, code, pkce, callback, client_id="q")).json()
    out = await client.get(
        "/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": callback,
            "state": "s1",
        },
    )
    assert out.headers["location"] == callback + "&state=s1"


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("nobody", SPA),
        ("spa", "https://evil.example/cb"),
        ("spa", SPA + "/extra"),
        ("spa", SPA + "?x=1"),
        ("spa", None),
        ("native", "http://localhost:5000/callback"),
        ("native", "http://[::1/callback"),
        ("native", "http://evil.example@127.0.0.1:5000/callback"),
        # Loopback URIs vary in their port only, as a port (urlsplit forgives the rest).
        ("native", " http://127.0.0.1:5000/callback"),
        ("native", "http://127.0.0.1:5000/callback\t"),
        ("native", "HTTP://127.0.0.1:5000/callback"),
        ("native", "http://127.0.0.1:0/callback"),
        ("native", "http://127.0.0.1:/callback"),
        ("native", "http://127.0.0.1:65536/callback"),
        ("a\x00b", SPA),  # was a 500 on PostgreSQL, whose text cannot hold NUL
        ("spa", SPA + "\x00"),
    ],
    ids=[
        "unknown-client",
        "other-uri",
        "extended-path",
        "extended-query",
        "no-uri",
        "localhost",
        "bad-ipv6-literal",
        "loopback-with-user-information",
        "loopback-leading-space",
        "loopback-trailing-tab",
        "loopback-upper-case-scheme",
        "loopback-port-zero",
        "loopback-empty-port",
        "loopback-port-out-of-range",
        "nul-in-client-id",
        "nul-in-redirect-uri",
    ],
)
async def test_an_untrusted_request_is_an_error_page_never_a_redirect(
    client, client_id, redirect_uri
):
    response = await client.get(authorize_url(client_id, redirect_uri, Pkce()))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "cannot be completed" in response.text


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
async def test_a_client_or_redirect_uri_sent_twice_is_an_error_page_never_a_redirect(client, name):
    # RFC 6749 4.1.2.1: the client (or its URI) is not established by a repeated parameter,
    # even one whose values are each registered: no invalid_request back to that URI.
    url = authorize_url("spa", SPA, Pkce())
    sent = dict(parse_qsl(url.split("?", 1)[1]))
    response = await client.get(url + "&" + urlencode({name: sent[name]}))
    assert response.status_code == 400 and "location" not in response.headers
    assert f"must name its {name}, once" in response.text


async def test_the_longest_nonce_allowed_is_stored_and_returned(client, secrets):
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce, nonce="n" * 512)
    tokens = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    assert (await decode(client, tokens.json()["id_token"])).claims["nonce"] == "n" * 512


async def test_a_nul_in_a_signed_in_request_is_refused_before_a_code_is_stored(client, secrets):
    await webapp_code(client, secrets, Pkce())
    # The audit: the nonce went to the code's row, a 500 on PostgreSQL.
    url = authorize_url("spa", SPA, Pkce(), nonce="a\x00b", state="keep")
    back = callback_params(await client.get(url))
    assert back["error"] == "invalid_request" and back["state"] == "keep"
    posted = await client.post("/authorize", data=dict(parse_qsl(url.removeprefix("/authorize?"))))
    assert posted.status_code == 303 and "error=invalid_request" in posted.headers["location"]


@pytest.mark.parametrize(
    "empty",
    [{"nonce": ""}, {"max_age": ""}, {"prompt": "", "login_hint": "", "state": ""}],
    ids=["nonce", "max-age", "prompt-login-hint-state"],
)
async def test_parameters_sent_without_a_value_are_treated_as_omitted(client, secrets, empty):
    # RFC 6749 3.1, as at the token endpoint: an empty max_age is no error, an empty nonce
    # no "nonce" claim.
    await webapp_code(client, secrets, Pkce())
    pkce = Pkce()
    params = callback_params(await client.get(authorize_url("spa", SPA, pkce, **empty)))
    tokens = await exchange(client, params["code"], pkce, SPA, client_id="spa")
    assert "nonce" not in (await decode(client, tokens.json()["id_token"])).claims


async def test_the_authorization_request_may_be_a_form_post(client, secrets):
    # It goes on as the same request by GET: a cross-site POST carries none of the issuer's
    # SameSite=Lax cookies, so the session would go unseen and a CSRF cookie be replaced.
    pkce = Pkce()
    query = authorize_url("spa", SPA, pkce, state="posted").removeprefix("/authorize?")
    form = dict(parse_qsl(query))
    posted = await client.post("/authorize", data=form)
    assert posted.status_code == 303 and "set-cookie" not in posted.headers
    assert dict(parse_qsl(posted.headers["location"].removeprefix("authorize?"))) == form
    params = callback_params(await sign_in(client, posted.headers["location"]))
    assert params["state"] == "posted"
    tokens = await exchange(client, params["code"], pkce, SPA, client_id="spa")
    assert tokens.status_code == 200
    # Errors are answered at once, as by GET: to the client, or on the issuer's own page.
    bad = await client.post("/authorize", data={**form, "code_challenge_method": "plain"})
    assert bad.status_code == 303 and "error=invalid_request" in bad.headers["location"]
    assert bad.headers["location"].startswith(SPA)
    unknown = await client.post("/authorize", data={**form, "client_id": "nobody"})
    assert unknown.status_code == 400 and "cannot be completed" in unknown.text


@pytest.mark.parametrize("parameter", ["request", "request_uri"])
@pytest.mark.parametrize("length", [1, 4000], ids=["short", "long"])
async def test_request_objects_are_refused_with_the_error_named_for_each(client, parameter, length):
    url = authorize_url("spa", SPA, Pkce(), **{parameter: "urn:example:" + "x" * length})
    # OpenID Connect Core 3.1.2.6: request_not_supported, request_uri_not_supported; 6.1 and
    # 6.2 say the OP "MUST return" them, whatever the size: a signed request object is easily
    # over the 2,048 characters other parameters may have (it was "a parameter is too long").
    assert callback_params(await client.get(url))["error"] == f"{parameter}_not_supported"


@pytest.mark.parametrize(
    "query",
    ["state=%FF%FE", "state=%C3%28", "&".join(["x=1"] * 40)],
    ids=["non-utf8", "broken-utf8", "too-many-fields"],
)
async def test_a_query_that_cannot_be_read_as_sent_is_refused_at_the_issuer(client, query):
    # The framework's own reading would hand U+FFFD back to the app as its state.
    url = authorize_url("spa", SPA, Pkce(), state=None)
    response = await client.get(f"{url}&{query}")
    assert response.status_code == 400 and "cannot be completed" in response.text
    assert "location" not in response.headers


# -- the sign-in page ----------------------------------------------------------------------


async def test_the_pages_keep_the_browser_under_an_issuer_url_with_a_path(settings, secrets):
    # ISSUER_URL=http://issuer.test/auth, served behind a proxy that maps /auth to the issuer:
    # the pages sent the browser to /login, /consent, /authorize and /static, outside it.
    async with served(create_app(settings.model_copy(update={"url": ISSUER + "/auth"}))) as app:

        async def proxy(scope, receive, send):
            if not scope["path"].startswith("/auth/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                return await send({"type": "http.response.body", "body": b""})
            path = scope["path"].removeprefix("/auth")
            await app({**scope, "path": path, "raw_path": path.encode()}, receive, send)

        transport = httpx.ASGITransport(app=proxy, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport) as browser:

            async def submit(page: httpx.Response, **fields: str) -> httpx.Response:
                stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)
                assert stylesheet is not None
                css = await browser.get(urljoin(str(page.url), stylesheet[1]))
                assert css.status_code == 200
                action = re.search(r'<form method="post" action="([^"]*)"', page.text)
                assert action is not None
                form = {**hidden_fields(page.text), **fields}
                return await browser.post(urljoin(str(page.url), action[1]), data=form)

            async def follow(answer: httpx.Response) -> httpx.Response:
                assert answer.status_code == 303, answer.text
                return await browser.get(urljoin(str(answer.url), answer.headers["location"]))

            authorize = ISSUER + "/auth" + authorize_url("consenting", CONSENTING, Pkce())
            page = await browser.get(authorize)
            assert page.status_code == 200 and 'name="password"' in page.text
            asked = await follow(await submit(page, username="alice", password="wonderland1"))
            assert asked.status_code == 200 and "Allow" in asked.text
            assert "code" in callback_params(_follow(await submit(asked, decision="allow")))
            query = dict(parse_qsl(authorize.split("?", 1)[1]))
            again = await follow(await browser.post(ISSUER + "/auth/authorize", data=query))
            assert "code" in callback_params(again)


async def test_pages_cannot_be_framed_or_cached(client):
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["pragma"] == "no-cache"  # HTTP/1.0 caches
    assert page.headers["x-content-type-options"] == "nosniff"
    stylesheet = await client.get("/static/issuer.css")
    assert stylesheet.status_code == 200
    # The audit: cached by heuristic, an upgrade's pages could meet the old stylesheet.
    assert stylesheet.headers["cache-control"] == "no-cache"
    assert stylesheet.headers["x-content-type-options"] == "nosniff"
    etag = stylesheet.headers["etag"]
    revalidated = await client.get("/static/issuer.css", headers={"If-None-Match": etag})
    assert revalidated.status_code == 304


async def test_what_an_app_sends_is_shown_on_the_pages_as_text_never_as_markup(client, secrets):
    markup = '"><script>alert(1)</script>'
    escaped = "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    page = await client.get(authorize_url("spa", SPA, Pkce(), login_hint=markup, state=markup))
    assert page.status_code == 200 and 'name="password"' in page.text
    assert "<script>" not in page.text
    assert f'name="username" type="text" value="{escaped}"' in page.text
    returned = dict(parse_qsl(hidden_fields(page.text)["return_to"].split("?", 1)[1]))
    assert returned["login_hint"] == returned["state"] == markup  # sent back as it came
    await signed_in_tokens(client, secrets)
    asked = await client.get("/logout", params={"state": markup}, headers=CROSS_SITE)
    assert asked.status_code == 200 and "Sign out?" in asked.text
    assert "<script>" not in asked.text and f'name="state" value="{escaped}"' in asked.text


@pytest.mark.parametrize("path", ["/login", "/consent"])
async def test_a_forms_address_opened_by_itself_is_a_page(client, path):
    # The audit: Enter in the address bar on /login showed the routing's JSON 405.
    response = await client.get(path)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.headers["content-type"].startswith("text/html")
    assert "Go back to the app" in response.text
    # Any other method is told the one the address takes (the fuzzing audit: PUT said GET).
    for method in ("PUT", "DELETE", "PATCH"):
        other = await client.request(method, path)
        assert other.status_code == 405 and other.headers["allow"] == "POST", method


async def test_an_expired_sign_in_form_offers_to_start_again(client):
    # The audit: the page had no way forward, though the form carried the request.
    page = await client.get(authorize_url("spa", SPA, Pkce(), state="again"))
    client.cookies.clear()  # as after a browser restart: the form's CSRF cookie is gone
    expired = await submit_login(client, page, "alice", "wonderland1")
    assert expired.status_code == 403
    (link,) = re.findall(r'href="(authorize\?[^"]*)"', expired.text)
    again = await client.get(html_module.unescape(link))
    assert again.status_code == 200 and 'name="password"' in again.text
    forged = await client.post("/login", data={"return_to": "https://evil.example/"})
    assert forged.status_code == 403 and "Start again" not in forged.text


async def test_a_sign_in_form_returning_to_a_malformed_request_is_refused(client):
    # The form's request is read as strictly as /authorize read it: bytes that are not UTF-8
    # were turned into U+FFFD and handed back to the app in `state`.
    page = await client.get(authorize_url("spa", SPA, Pkce(), state="s"))
    form = {**hidden_fields(page.text), "username": "alice", "password": "wonderland1"}
    form["return_to"] = form["return_to"].replace("state=s", "state=%FF")
    response = await client.post("/login", data=form)
    assert response.status_code == 400 and "not valid UTF-8" in response.text
    assert "location" not in response.headers


async def test_a_sign_in_form_returns_only_to_this_sites_authorization_request(client):
    page = await client.get(authorize_url("spa", SPA, Pkce(), state="s"))
    form = {**hidden_fields(page.text), "username": "alice", "password": "wonderland1"}
    request = form["return_to"].removeprefix("authorize?")
    for elsewhere in (f"logout?{request}", f"https://evil.example/authorize?{request}"):
        refused = await client.post("/login", data={**form, "return_to": elsewhere})
        assert refused.status_code == 400 and "not sent by this site" in refused.text
        assert "location" not in refused.headers and "set-cookie" not in refused.headers
    # A request that is ours but now fails is answered to the app, as /authorize answers it.
    plain = form["return_to"].replace("code_challenge_method=S256", "code_challenge_method=plain")
    failed = await client.post("/login", data={**form, "return_to": plain})
    assert failed.status_code == 303 and failed.headers["location"].startswith(SPA)
    error = dict(parse_qsl(failed.headers["location"].split("?", 1)[1]))
    assert error["error"] == "invalid_request" and error["state"] == "s"
    assert not await still_signed_in(client)


async def test_a_sign_in_form_of_the_version_before_still_signs_in(client):
    # Its return_to was "/authorize?...": a rolling upgrade keeps forms already open.
    page = await client.get(authorize_url("spa", SPA, Pkce(), state="s"))
    form = {**hidden_fields(page.text), "username": "alice", "password": "wonderland1"}
    signed_in = await client.post("/login", data={**form, "return_to": "/" + form["return_to"]})
    assert callback_params(signed_in)["state"] == "s"


@pytest.mark.parametrize("tamper", CSRF_TAMPERING, ids=CSRF_TAMPERING_IDS)
async def test_the_sign_in_form_is_protected_against_csrf(client, tamper):
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    form = {**hidden_fields(page.text), "username": "alice", "password": "wonderland1"}
    headers: dict[str, str] = {}
    tamper(form, headers)
    response = await client.post("/login", data=form, headers=headers)
    assert response.status_code == 403 and "expired" in response.text
    assert "set-cookie" not in response.headers or "session" not in response.headers["set-cookie"]


async def test_a_browsers_own_form_post_is_accepted(client):
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    # Under this policy browsers send the page's origin with its form posts (not `null`).
    assert page.headers["referrer-policy"] == "same-origin"
    for origin in (ISSUER, "null"):  # `null` from privacy settings, vouched by Sec-Fetch-Site
        form = {**hidden_fields(page.text), "username": "alice", "password": "wonderland1"}
        headers = {"origin": origin, "sec-fetch-site": "same-origin"}
        response = await client.post("/login", data=form, headers=headers)
        assert response.status_code == 303, response.text


async def test_a_failed_sign_in_says_the_same_whether_or_not_the_user_exists(client):
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    wrong = await submit_login(client, page, "alice", "not-her-password")
    unknown = await submit_login(client, page, "nobody", "not-her-password")
    assert wrong.status_code == unknown.status_code == 400
    assert "Incorrect username or password." in wrong.text
    assert 'name="username" type="text" value="alice"' in wrong.text  # kept, to try again
    assert wrong.text.replace("alice", "X") == unknown.text.replace("nobody", "X")


async def test_a_nul_in_the_sign_in_form_is_refused_alike_for_every_user(client):
    # RFC 6749 Appendix A: usernames and passwords hold no NUL; refused before any lookup.
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    answers = set()
    for username, password in [
        ("alice", "guess\x00guess"),
        ("nobody", "guess\x00guess"),
        ("ali\x00ce", "wonderland1"),
    ]:
        response = await submit_login(client, page, username, password)
        assert response.status_code == 400 and "set-cookie" not in response.headers
        assert response.headers["content-type"].startswith("text/html")  # a browser's page
        answers.add(response.text)
    assert len(answers) == 1


async def test_the_sign_in_page_and_the_password_grant_share_the_login_throttle(client):
    for _ in range(2):  # login_free_failures=2, spent at the token endpoint
        await client.post("/token", data={"username": "alice", "password": "guess-guess"})
    await client.post("/token", data={"username": "alice", "password": "guess-guess"})
    page = await client.get(authorize_url("spa", SPA, Pkce()))
    throttled = await submit_login(client, page, "alice", "wonderland1")
    assert throttled.status_code == 429 and "Too many attempts" in throttled.text
    assert int(throttled.headers["retry-after"]) >= 1


async def test_the_sign_in_page_has_the_token_endpoints_address_limit(settings, secrets, clock):
    limited = settings.model_copy(update={"rate_limit_per_ip": 3})
    async with running(create_app(limited, clock=clock, timer=clock), ISSUER) as client:
        page = await client.get(authorize_url("spa", SPA, Pkce()))
        answers = []
        for number in range(5):  # a different account each time: the per-account limits stay
            wrong = await submit_login(client, page, f"user{number}", "a-guess-at-it")
            answers.append(wrong.status_code)
        assert answers == [400, 400, 400, 429, 429]
        assert "Too many attempts" in wrong.text and int(wrong.headers["retry-after"]) >= 1
        assert f"Try again in {wrong.headers['retry-after']} seconds." in wrong.text
        token = await client.post("/token", data={"username": "alice", "password": "x"})
        assert token.status_code == 429  # one budget per address, both doors


async def test_a_sign_in_past_the_hashing_bound_is_a_503_page(settings, secrets, clock):
    busy = settings.model_copy(update={"bcrypt_rounds": 12, "hash_workers": 1, "hash_queue": 0})
    async with running(create_app(busy, clock=clock, timer=clock), ISSUER) as client:
        page = await client.get(authorize_url("spa", SPA, Pkce()))
        answers = await asyncio.gather(
            *(submit_login(client, page, f"user{number}", "a-guess-at-it") for number in range(2))
        )
        metrics = (await client.get("/metrics")).text
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert sorted(answer.status_code for answer in answers) == [400, 503]
    assert refused.headers["retry-after"] == "1" and "busy" in refused.text
    assert 'name="password"' in refused.text  # the form again, to try once more
    # The page says how long to wait: it is not counted as a refusal before any work.
    assert 'issuer_token_requests_rejected_total{reason="overloaded"} 0.0' in metrics


async def test_signing_in_again_ends_the_session_the_browser_held(client, settings):
    create_user(settings, "bob", "builder-bob1")
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    alices = client.cookies["issuer_session"]
    await sign_in(client, authorize_url("spa", SPA, Pkce(), prompt="login"), "bob", "builder-bob1")
    assert client.cookies["issuer_session"] != alices
    assert await still_signed_in(client)
    # A copy of the old cookie (another tab's, a thief's) is signed in no more.
    client.cookies = httpx.Cookies({"issuer_session": alices})
    silent = await client.get(authorize_url("spa", SPA, Pkce(), prompt="none"))
    assert callback_params(silent)["error"] == "login_required"


async def test_the_browser_cookies_are_httponly_samesite_lax_and_secure_under_https(
    settings, secrets
):
    page = None
    for issuer, name, secure in (
        (ISSUER, "issuer_session", False),
        ("https://issuer.test", "__Host-session", True),
    ):
        csrf_name = name.replace("session", "csrf")
        app = create_app(settings.model_copy(update={"url": issuer}))
        async with running(app, issuer) as client:
            page = await client.get(authorize_url("spa", SPA, Pkce()))
            signed_in = await submit_login(client, page, "alice", "wonderland1")
            signed_out = await client.get("/logout", headers={"sec-fetch-site": "same-origin"})
        cookies = signed_in.headers.get_list("set-cookie")
        session = next(cookie for cookie in cookies if cookie.startswith(name + "="))
        attributes = {part.strip().lower() for part in session.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= attributes
        # Kept across a browser restart for as long as the session lasts at the issuer.
        assert f"max-age={settings.session_ttl}" in attributes
        assert ("secure" in attributes) is secure
        assert not any(part.startswith("domain=") for part in attributes)
        # Signing out removes it, with the attributes it was set with (a browser ignores a
        # __Host- cookie without Secure and Path=/, and would keep the old one).
        (cleared,) = (c for c in signed_out.headers.get_list("set-cookie") if c.startswith(name))
        removal = {part.strip().lower() for part in cleared.split(";")}
        assert f'{name.lower()}=""' in removal and "max-age=0" in removal
        assert {"httponly", "samesite=lax", "path=/"} <= removal
        assert ("secure" in removal) is secure
        # The sign-in form's CSRF cookie: as guarded, for the browser's session only.
        (csrf,) = (c for c in page.headers.get_list("set-cookie") if c.startswith(csrf_name))
        attributes = {part.strip().lower() for part in csrf.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= attributes
        assert ("secure" in attributes) is secure
        assert not any(part.startswith(("domain=", "max-age=", "expires=")) for part in attributes)


# -- logout ----------------------------------------------------------------------------------


async def signed_in_tokens(client, secrets) -> dict[str, str]:
    pkce = Pkce()
    params = await webapp_code(client, secrets, pkce)
    response = await exchange(client, params["code"], pkce, auth=("webapp", secrets["webapp"]))
    tokens: dict[str, str] = response.json()
    return tokens


async def still_signed_in(client) -> bool:
    return (await client.get(authorize_url("spa", SPA, Pkce()))).status_code == 302


CROSS_SITE = {"sec-fetch-site": "cross-site"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "headers",
    [CROSS_SITE, {"sec-fetch-site": "same-site"}, {"referer": "https://evil.example/"}],
    ids=["cross-site", "same-site", "no-fetch-metadata"],
)
async def test_another_site_cannot_sign_the_user_out_without_asking(client, secrets, headers):
    await signed_in_tokens(client, secrets)
    asked = await client.get("/logout", headers=headers, params={"state": "s"})
    assert asked.status_code == 200 and "Sign out?" in asked.text
    assert asked.headers["x-frame-options"] == "DENY"
    # Any site can open this page: a key press meant for that site (Enter, held down) must
    # not land on its button and sign the user out (the consent page's Allow is not focused).
    assert "autofocus" not in asked.text
    assert await still_signed_in(client)
    form = hidden_fields(asked.text)
    assert form["state"] == "s"
    # Posting the confirmation needs the page's CSRF token, from this site.
    forged = await client.post("/logout", data={**form, "csrf_token": "f" * 40}, headers=headers)
    assert forged.status_code == 403 and await still_signed_in(client)
    confirmed = await client.post("/logout", data=form, headers={"sec-fetch-site": "same-origin"})
    assert confirmed.status_code == 200 and "signed out" in confirmed.text
    assert not await still_signed_in(client)


async def test_a_hint_naming_the_signed_in_user_signs_out_at_once(client, secrets, settings, clock):
    tokens = await signed_in_tokens(client, secrets)
    query = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://app.example/bye",
        "state": "s1",
    }
    create_user(settings, "bob", "builder-bob1")
    # Bob signs in in the same browser: alice's ID token no longer names this session's user.
    await client.get("/logout", headers={"sec-fetch-site": "same-origin"})  # by hand
    await sign_in(client, authorize_url("spa", SPA, Pkce()), "bob", "builder-bob1")
    other = await client.get("/logout", params=query, headers=CROSS_SITE)
    assert other.status_code == 200 and "Sign out?" in other.text
    assert await still_signed_in(client)
    await client.get("/logout", headers={"sec-fetch-site": "same-origin"})  # by hand
    # Alice again, later: the ID token of her earlier session does not belong to this one,
    # whichever app holds it (section 2).
    clock.advance(60)
    await sign_in(client, authorize_url("spa", SPA, Pkce()))
    old = await client.get("/logout", params=query, headers=CROSS_SITE)
    assert old.status_code == 200 and "Sign out?" in old.text
    assert await still_signed_in(client)
    # Nor does one of her session in another browser, signed in later.
    this_browser = dict(client.cookies)
    client.cookies.clear()
    clock.advance(60)
    elsewhere = (await signed_in_tokens(client, secrets))["id_token"]
    client.cookies.clear()
    client.cookies.update(this_browser)
    other = await client.get(
        "/logout", params={**query, "id_token_hint": elsewhere}, headers=CROSS_SITE
    )
    assert other.status_code == 200 and "Sign out?" in other.text
    assert await still_signed_in(client)
    query["id_token_hint"] = (await signed_in_tokens(client, secrets))["id_token"]
    out = await client.get("/logout", params=query, headers=CROSS_SITE)
    assert out.status_code == 302 and out.headers["location"] == "https://app.example/bye?state=s1"
    assert not await still_signed_in(client)


async def test_the_user_signs_out_at_once_from_the_issuers_pages(client, secrets):
    await signed_in_tokens(client, secrets)
    out = await client.get("/logout", headers={"sec-fetch-site": "same-origin"})
    assert out.status_code == 200 and "signed out" in out.text
    assert not await still_signed_in(client)


async def test_a_logout_link_opened_from_outside_the_browser_asks_first(client, secrets):
    # "none": typed, a bookmark, or a link in an email or a chat, which anyone can send
    # (RP-Initiated Logout 1.0 section 2: without a hint, the user MUST be asked).
    await signed_in_tokens(client, secrets)
    asked = await client.get("/logout", headers={"sec-fetch-site": "none"})
    assert asked.status_code == 200 and "Sign out?" in asked.text
    assert await still_signed_in(client)


async def test_an_app_may_send_its_logout_request_as_a_form(client, secrets):
    tokens = await signed_in_tokens(client, secrets)
    form = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://app.example/bye",
        "state": "s2",
    }
    # On as a GET: a cross-site form post carries no SameSite=Lax cookie, so the session
    # would go unseen and the page's new CSRF cookie replace that of a form open elsewhere.
    posted = await client.post("/logout", data=form, headers=CROSS_SITE)
    assert posted.status_code == 303, posted.text
    assert "set-cookie" not in posted.headers
    location = posted.headers["location"]
    assert location.startswith("logout?") and dict(parse_qsl(location[7:])) == form
    assert await still_signed_in(client)
    out = await client.get(location, headers=CROSS_SITE)  # the hint names the session's user
    assert out.status_code == 302 and out.headers["location"] == "https://app.example/bye?state=s2"
    assert not await still_signed_in(client)
    bare = await client.post("/logout", content="", headers={**CROSS_SITE, **FORM})
    assert bare.status_code == 303 and bare.headers["location"] == "logout"


async def test_logout_returns_to_the_app_with_an_id_token_whose_key_has_retired(
    client, secrets, settings, clock
):
    # An app's session outlives the key that signed its ID token (rotated daily, a retiring
    # key is published about half an hour more): the hint can no longer be checked, yet it
    # is one of our ID tokens and names its client, so the user still goes back to the app.
    tokens = await signed_in_tokens(client, secrets)
    signed_by = (await decode(client, tokens["id_token"])).header["kid"]
    later = FileKeyStore(settings.keys_dir, clock=lambda: time.time() + 2 * 86400)
    for store in (FileKeyStore(settings.keys_dir), later):  # a rotation, and one a day on
        store.rotate(rotation_policy(settings), force=True)
    retired = {key.kid: key.state for key in later.read_manifest().keys}
    assert retired[signed_by] == "retired"
    query = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://app.example/bye",
        "state": "s1",
    }
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as replica:
        # No session left at the issuer (it ended, or the browser lost it): back at once.
        out = await replica.get("/logout", params=query, headers=CROSS_SITE)
        assert out.status_code == 302
        assert out.headers["location"] == "https://app.example/bye?state=s1"
        # A session: a hint that cannot be checked names no user, so the user is asked first,
        # and goes back to the app after saying yes.
        replica.cookies = client.cookies
        asked = await replica.get("/logout", params=query, headers=CROSS_SITE)
        assert asked.status_code == 200 and "Sign out?" in asked.text
        assert await still_signed_in(replica)
        confirmed = await replica.post(
            "/logout", data=hidden_fields(asked.text), headers={"sec-fetch-site": "same-origin"}
        )
        assert confirmed.status_code == 303
        assert confirmed.headers["location"] == "https://app.example/bye?state=s1"
        assert not await still_signed_in(replica)
        # Only to a URI registered for the client it names, and never for a forged signature
        # under a key still published.
        current = (await signed_in_tokens(replica, secrets))["id_token"]
        # The key it signed with, as published by the replica (the first app sees it only
        # once its poll has reloaded the key set).
        current_kid = (await decode(replica, current)).header["kid"]
        for refused in (
            {**query, "post_logout_redirect_uri": "https://evil.example/"},
            {**query, "id_token_hint": current[:-4] + "AAAA"},
        ):
            out = await replica.get(
                "/logout", params=refused, headers={"sec-fetch-site": "same-origin"}
            )
            assert out.status_code == 200 and "signed out" in out.text
            assert "location" not in out.headers
    # A key revoked as compromised vouches for nothing, not even the client.
    later.revoke(current_kid)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as replica:
        out = await replica.get("/logout", params={**query, "id_token_hint": current})
        assert out.status_code == 200 and "signed out" in out.text
        assert "location" not in out.headers


@pytest.mark.parametrize(
    "query",
    ["state=a&state=b", "post_logout_redirect_uri=https://app.example/bye&state=a%00", "state=%FF"],
    ids=["repeated", "nul", "non-utf8"],
)
async def test_a_malformed_logout_request_is_refused(client, secrets, query):
    # As /authorize and the token endpoint refuse them: no "last value wins".
    await signed_in_tokens(client, secrets)
    refused = await client.get(f"/logout?{query}", headers={"sec-fetch-site": "same-origin"})
    assert refused.status_code == 400 and "cannot be completed" in refused.text
    assert "location" not in refused.headers and await still_signed_in(client)
    posted = await client.post("/logout", content=query, headers={**CROSS_SITE, **FORM})
    assert posted.status_code == 400 and "cannot be completed" in posted.text


@pytest.mark.parametrize("path", ["/authorize", "/logout"])
async def test_a_page_form_it_will_not_read_keeps_its_status(client, path):
    # The fuzzing audit: POST /authorize and /logout answered 400 where /login, /consent and
    # the token endpoint answer 413 and 415.
    huge = await client.post(path, content=b"state=" + b"a" * 70_000, headers=FORM)
    assert huge.status_code == 413 and "cannot be completed" in huge.text
    assert huge.headers["content-type"].startswith("text/html")
    gzipped = await client.post(
        path, content=b"state=a", headers={**FORM, "Content-Encoding": "gzip"}
    )
    assert gzipped.status_code == 415 and "cannot be completed" in gzipped.text


def database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Browser sessions, which every sign-in page reads or writes, fail as if the database
    were unreachable."""

    def unreachable(*_: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(BrowserSessions, "find", unreachable)
    monkeypatch.setattr(BrowserSessions, "start", unreachable)


async def test_authorize_redirects_a_database_outage_once_it_knows_where_to(client, monkeypatch):
    # RFC 6749 4.1.2.1: a 503 cannot reach the app through a redirect; temporarily_unavailable
    # does (the review: a page at the issuer left the app waiting).
    await client.get(authorize_url("spa", SPA, Pkce()))  # the client, known from here
    database_down(monkeypatch)
    response = await client.get(authorize_url("spa", SPA, Pkce(), state="s-1"))
    assert response.status_code == 302 and response.headers["location"].startswith(SPA)
    assert callback_params(response) == {
        "error": "temporarily_unavailable",
        "error_description": "the service cannot reach its database; retry later",
        "state": "s-1",
        "iss": ISSUER,
    }
    metrics = (await client.get("/metrics")).text
    assert 'issuer_token_requests_rejected_total{reason="database_unavailable"} 1.0' in metrics

    # Where the client itself cannot be read, nothing says where to go: a page.
    def unreachable(*_: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(ClientRepository, "get", unreachable)
    page = await client.get(authorize_url("unseen", SPA, Pkce()))
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")


async def test_an_outage_right_after_the_sign_in_keeps_the_new_session(client, monkeypatch):
    # The review: the sign-in answers its request itself; an outage there (the session
    # started, its code not stored) left the browser without its new session, and without
    # the old one it replaced. It goes on at /authorize, which answers the outage or the code.
    page = await client.get(authorize_url("spa", SPA, Pkce(), state="s-2"))
    issue = AuthorizationCodes.issue

    def unreachable(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(AuthorizationCodes, "issue", unreachable)
    signed_in = await submit_login(client, page, "alice", "wonderland1")
    assert signed_in.status_code == 303 and signed_in.headers["location"].startswith("authorize?")
    assert any(c.startswith("issuer_session=") for c in signed_in.headers.get_list("set-cookie"))
    monkeypatch.setattr(AuthorizationCodes, "issue", issue)  # the database is back
    params = callback_params(await client.get(signed_in.headers["location"]))
    assert params["code"] and params["state"] == "s-2"


async def test_the_sign_in_page_answers_a_database_outage_with_a_page(client, monkeypatch):
    # The audit: with the database down, /login showed a browser the token endpoint's JSON.
    # The user is at the issuer's page, and can send it again.
    page = await client.get(authorize_url("spa", SPA, Pkce()))

    database_down(monkeypatch)
    response = await submit_login(client, page, "alice", "wonderland1")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    assert "unavailable" in response.text and "x-frame-options" in response.headers


async def test_a_database_outage_at_the_browser_forms_counts_as_a_rejection(client, monkeypatch):
    # The audit: docs/operations.md named only the OAuth endpoints and /authorize as counted;
    # the sign-in and sign-out forms' 503 for the database count too (their own 429 and 503
    # pages, for a rate limit or a full hashing queue, do not).
    page = await client.get(authorize_url("spa", SPA, Pkce()))

    database_down(monkeypatch)
    assert (await submit_login(client, page, "alice", "wonderland1")).status_code == 503
    assert (await client.get("/logout")).status_code == 503
    metrics = (await client.get("/metrics")).text
    assert 'issuer_token_requests_rejected_total{reason="database_unavailable"} 2.0' in metrics


async def test_a_browser_request_over_the_length_limit_is_refused_at_the_issuer(client):
    # The audit: the issuer echoed requests of up to 3 x 64 KiB into `Location`, which a
    # proxy must then read whole (nginx's 4 KiB default answered 502 and took a replica out).
    within = await client.get(authorize_url("spa", SPA, Pkce(), state="s" * 2000))
    assert within.status_code == 200 and 'name="password"' in within.text
    for response in (
        await client.get(authorize_url("spa", SPA, Pkce(), state="s" * MAX_REQUEST_LENGTH)),
        await client.post(
            "/authorize",
            content=authorize_url("spa", SPA, Pkce(), nonce="n" * 500, state="é" * 6000)[11:],
            headers=FORM,
        ),
        await client.get("/logout?" + urlencode({"state": "s" * MAX_REQUEST_LENGTH})),
        await client.post("/logout", data={"state": "/" * 6000}),
    ):
        assert response.status_code == 400 and "location" not in response.headers
        assert f"over {MAX_REQUEST_LENGTH} characters" in response.text


async def test_an_authorization_request_of_exactly_the_length_limit_is_answered(client):
    url = authorize_url("spa", SPA, Pkce(), state="s" * 2000)
    # Padded with extension parameters (each within the 2,048 a parameter may have), which
    # urlencode leaves as they are: the request as it is sent on is this long.
    for n in range(10):
        padding = MAX_REQUEST_LENGTH - len(url.removeprefix("/authorize?"))
        if padding > 0:
            url += f"&x{n}=" + "v" * min(2000, padding - len(f"&x{n}="))
    assert len(url.removeprefix("/authorize?")) == MAX_REQUEST_LENGTH
    within = await client.get(url)
    assert within.status_code == 200 and 'name="password"' in within.text
    over = await client.get(url + "v")
    assert over.status_code == 400 and f"over {MAX_REQUEST_LENGTH} characters" in over.text


async def test_a_logout_request_of_exactly_the_length_limit_is_answered(client):
    state = "s" * (MAX_REQUEST_LENGTH - len("state="))
    out = await client.get("/logout", params={"state": state}, headers={"sec-fetch-site": "none"})
    assert out.status_code == 200 and "signed out" in out.text
    posted = await client.post("/logout", data={"state": state})
    assert posted.status_code == 303 and posted.headers["location"] == f"logout?state={state}"
    over = await client.post("/logout", data={"state": state + "s"})
    assert over.status_code == 400 and f"over {MAX_REQUEST_LENGTH} characters" in over.text


async def test_a_sign_in_page_that_fails_unexpectedly_says_so_on_a_page(client, monkeypatch):
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(BrowserSessions, "find", broken)
    response = await client.get(authorize_url("spa", SPA, Pkce()))
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text and "server_error" not in response.text


async def test_a_form_the_sign_in_page_refuses_to_read_is_answered_with_a_page(client):
    refused = await client.post("/login", content="{}", headers={"content-type": "text/plain"})
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("text/html")
    assert "cannot be completed" in refused.text
    # The token endpoint keeps its JSON.
    token = await client.post("/token", content="{}", headers={"content-type": "text/plain"})
    assert token.json()["error"] == "invalid_request"


# -- userinfo and metadata -------------------------------------------------------------------


async def test_userinfo_speaks_rfc6750(client, secrets):
    assert (await client.get("/userinfo")).status_code == 401
    cc = await client.post(
        "/token", data={"grant_type": "password", "username": "alice", "password": "wonderland1"}
    )
    no_openid = await client.get(
        "/userinfo", headers={"Authorization": f"Bearer {cc.json()['access_token']}"}
    )
    assert no_openid.status_code == 403
    assert 'error="insufficient_scope"' in no_openid.headers["www-authenticate"]
    forged = await client.get("/userinfo", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401 and "invalid_token" in forged.headers["www-authenticate"]


async def test_userinfo_refuses_a_token_in_the_body_instead_of_ignoring_it(client):
    # The audit: POST /userinfo with access_token in the form answered "no bearer token".
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    token = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    form = {"access_token": token["access_token"]}
    for headers in ({}, {"Authorization": f"Bearer {token['access_token']}"}):
        refused = await client.post("/userinfo", data=form, headers=headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_request"
        assert "body" in refused.json()["error_description"]


async def test_userinfo_refuses_a_token_of_a_client_since_disabled(client, settings):
    # As introspection does: the audit saw /userinfo answer for a disabled client's token.
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    token = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await client.get("/userinfo", headers=bearer)).status_code == 200
    with db_session(settings.database_url) as session:
        session.query(Client).filter_by(client_id="spa").one().disabled = True
        session.commit()
    refused = await client.get("/userinfo", headers=bearer)
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]


async def test_userinfo_says_a_disabled_user_is_disabled(client, settings):
    # The review: a disabled account's token was told "the token's user does not exist".
    pkce = Pkce()
    params = callback_params(await sign_in(client, authorize_url("spa", SPA, pkce)))
    token = (await exchange(client, params["code"], pkce, SPA, client_id="spa")).json()
    with db_session(settings.database_url) as session:
        session.query(User).filter_by(username="alice").one().disabled = True
        session.commit()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    refused = await client.get("/userinfo", headers=bearer)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert refused.json()["error_description"] == "the token's user is disabled"


async def test_the_metadata_is_a_complete_openid_provider_document(settings):
    issuer = "https://issuer.test"  # Authlib's validation wants an https issuer
    async with running(create_app(settings.model_copy(update={"url": issuer})), issuer) as client:
        documents = [
            (await client.get(path)).json()
            for path in (
                "/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server",
            )
        ]
    for metadata in documents:
        OpenIDProviderMetadata(metadata).validate()
        AuthorizationServerMetadata(metadata).validate()
        assert metadata["authorization_endpoint"] == f"{issuer}/authorize"
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert metadata["authorization_response_iss_parameter_supported"] is True
        assert not [name for name, value in metadata.items() if value == []]
