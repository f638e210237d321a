"""In a real headless Chromium against the live issuer and resource server: an app sends the
user to sign in (authorization code + PKCE + OpenID Connect), the user types the password and
allows access on the issuer's own pages with JavaScript off, the app exchanges the code and
calls the APIs; a second app signs in without a password (single sign-on); the first app's
logout ends the session. Keeps screenshots of the sign-in and consent pages."""

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from servicekit.processes import run_script
from tests.e2e.browser import ARTIFACTS, needs_browser
from tests.e2e.stack import PASSWORD, Stack, running_stack
from tests.unit.oidc.flow import Pkce, authorize_url

pytestmark = needs_browser

SERVICE = "Acme Identity"
# The app's pages: a script would retitle them, so their title shows that JavaScript was off.
APP_PAGE = b"<!doctype html><title>The app</title><script>document.title = 'scripted'</script>"


class SignInRefused(AssertionError):
    """The issuer answered the sign-in form with an error page instead of going on."""


@dataclass
class App:
    """A relying party's web server on a loopback port: it records the requests it got."""

    url: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, ISSUER_SERVICE_NAME=SERVICE) as stack:
        yield stack


@pytest.fixture
def app() -> Iterator[App]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/favicon.ico":  # the browser's own request, not a redirect
                self.send_error(404)
                return
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(APP_PAGE)))
            self.end_headers()
            self.wfile.write(APP_PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield App(f"http://127.0.0.1:{server.server_port}", paths)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def register(stack: Stack, client_id: str, *args: str) -> None:
    result = run_script(
        "create_client.py", client_id, "--grant", "authorization_code", "--public", *args,
        env=stack.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def redirected_to(prefix: str) -> Any:
    return lambda driver: driver.current_url.startswith(prefix)


def exchange(
    stack: Stack, client_id: str, callback_url: str, redirect_uri: str, pkce: Pkce
) -> dict[str, str]:
    """The code of `callback_url` exchanged at /token, as a public client does (PKCE alone)."""
    response = httpx.post(
        f"{stack.issuer_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": query(callback_url)["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": pkce.verifier,
            "client_id": client_id,
        },
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def test_sign_in_consent_single_sign_on_and_logout(stack: Stack, app: App, browser: WebDriver):
    wait = WebDriverWait(browser, 20)
    callback, bye = f"{app.url}/callback", f"{app.url}/bye"
    register(
        stack, "gallery", "--name", "Photo Gallery", "--require-consent",
        "--redirect-uri", callback, "--post-logout-redirect-uri", bye,
        "--scope", "openid profile",
    )  # fmt: skip
    register(stack, "notes", "--redirect-uri", f"{app.url}/notes", "--scope", "openid")
    # The issuer's pages must work without JavaScript: it is off from here on.
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    pkce, state, nonce = Pkce(), secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    url = authorize_url("gallery", callback, pkce, scope="openid profile", state=state, nonce=nonce)
    browser.get(stack.issuer_url + url)
    assert browser.title == f"Sign in · {SERVICE}"
    assert "Photo Gallery" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_elements(By.TAG_NAME, "script") == []
    browser.save_screenshot(str(ARTIFACTS / "oidc-sign-in.png"))
    browser.find_element(By.NAME, "username").send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()

    wait.until(lambda driver: not driver.title.startswith("Sign in"))
    if not browser.title.startswith("Allow access"):
        heading = browser.find_element(By.TAG_NAME, "h1").text
        raise SignInRefused(f"after signing in: {browser.title!r}: {heading!r}")
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "alice" in main and "Photo Gallery" in main and "profile" in main
    browser.save_screenshot(str(ARTIFACTS / "oidc-consent.png"))
    browser.find_element(By.XPATH, "//button[normalize-space()='Allow']").click()

    wait.until(redirected_to(callback + "?"))
    landed = browser.current_url
    assert query(landed)["code"] and query(landed)["state"] == state
    assert query(landed)["iss"] == stack.issuer_url  # RFC 9207
    assert app.paths == [urlsplit(landed).path + "?" + urlsplit(landed).query]
    assert browser.title == "The app"  # scripts stayed off all along
    tokens = exchange(stack, "gallery", landed, callback, pkce)
    keys = KeySet.import_key_set(httpx.get(f"{stack.issuer_url}/.well-known/jwks.json").json())
    id_token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
    assert id_token.claims["iss"] == stack.issuer_url and id_token.claims["aud"] == "gallery"
    assert id_token.claims["nonce"] == nonce
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = stack.users_me(tokens["access_token"])
    assert me.status_code == 200 and me.json()["username"] == "alice", me.text
    userinfo = httpx.get(f"{stack.issuer_url}/userinfo", headers=bearer)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["preferred_username"] == "alice"
    assert userinfo.json()["sub"] == id_token.claims["sub"] == me.json()["sub"]

    # Single sign-on: another app gets a code without the password. A public app at a
    # loopback address could be any program on the machine, so the user allows it first,
    # though it never asked for consent (RFC 8252 8.6).
    notes_pkce = Pkce()
    browser.get(stack.issuer_url + authorize_url("notes", f"{app.url}/notes", notes_pkce))
    assert browser.title.startswith("Allow access") and not browser.find_elements(
        By.NAME, "password"
    )
    browser.find_element(By.XPATH, "//button[normalize-space()='Allow']").click()
    wait.until(redirected_to(f"{app.url}/notes?"))
    assert len(app.paths) == 2 and app.paths[1].startswith("/notes?code=")
    notes = exchange(stack, "notes", browser.current_url, f"{app.url}/notes", notes_pkce)
    notes_id = jwt.decode(notes["id_token"], keys, algorithms=["RS256"]).claims
    assert notes_id["sub"] == id_token.claims["sub"] and notes_id["aud"] == "notes"

    # Logout at the issuer, back to the app's registered page with its state.
    logout = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": bye, "state": "s"}
    browser.get(f"{stack.issuer_url}/logout?{urlencode(logout)}")
    wait.until(redirected_to(bye))
    assert browser.current_url == f"{bye}?state=s" and app.paths[-1] == "/bye?state=s"
    browser.get(stack.issuer_url + authorize_url("notes", f"{app.url}/notes", Pkce()))
    assert browser.title == f"Sign in · {SERVICE}"
    assert browser.find_elements(By.NAME, "password")
    assert len(app.paths) == 3  # the app was not called back
