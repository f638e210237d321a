"""Driving the browser flow in process: the authorization URL, the sign-in form, the code."""

import hashlib
import html as html_module
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from resource_server.base64url import b64url_encode

_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return b64url_encode(digest)


def authorize_url(client_id: str, redirect_uri: str, pkce: Pkce, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **params,
    }
    return "/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})


def hidden_fields(html: str) -> dict[str, str]:
    return {name: html_module.unescape(value) for name, value in _HIDDEN.findall(html)}


async def submit_login(
    client: httpx.AsyncClient, page: httpx.Response, username: str, password: str
) -> httpx.Response:
    form = {**hidden_fields(page.text), "username": username, "password": password}
    return await client.post("/login", data=form)


async def sign_in(
    client: httpx.AsyncClient, url: str, username: str = "alice", password: str = "wonderland1"
) -> httpx.Response:
    """From the authorization URL to the response that leaves the issuer (or a page)."""
    response = await client.get(url)
    if response.status_code == 200 and 'name="password"' in response.text:
        response = await submit_login(client, response, username, password)
        assert response.status_code == 303, response.text
        # Straight back to the app, or on at /authorize (consent, another sign-in).
        if response.headers["location"].startswith("authorize?"):
            response = await client.get(response.headers["location"])
    return response


def callback_params(response: httpx.Response) -> dict[str, str]:
    """The app's redirect URI's query: a 302 from /authorize, a 303 from a form."""
    assert response.status_code in (302, 303), response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {name: values[0] for name, values in query.items()}


async def consent(client: httpx.AsyncClient, page: httpx.Response, decision: str) -> httpx.Response:
    form = {**hidden_fields(page.text), "decision": decision}
    return await client.post("/consent", data=form)
