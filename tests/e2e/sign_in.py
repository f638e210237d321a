"""Signing in at the live issuer with httpx, as a browser does: from an authorization URL to
the callback URL the issuer sends the browser to (never requested itself).

The issuer's own pages are followed and their forms submitted with the fields they carry
(hidden ones included) and the cookies the issuer set, with the headers a browser sends for a
form on the same site: `Sec-Fetch-Site: same-origin` and, unless told otherwise, an `Origin`
naming the issuer (`origin="null"` sends what a browser sends under a no-referrer policy,
which the issuer accepts with `Sec-Fetch-Site: same-origin`: see test_oidc_clients.py).
"""

import contextlib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from tests.e2e.stack import PASSWORD


class _Form(HTMLParser):
    """The first form of a page: its action and its named inputs (the buttons apart)."""

    def __init__(self, html: str):
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}
        self._in_form = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action, self._in_form = attributes.get("action", ""), True
        elif self._in_form and tag == "input" and "name" in attributes:
            self.fields[attributes["name"]] = attributes.get("value", "")
        elif self._in_form and tag == "button" and "name" in attributes:
            self.buttons[attributes.get("value", "")] = attributes["name"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def origin_of(url: str) -> str:
    return "{0.scheme}://{0.netloc}".format(urlsplit(url))


def sign_in_like_a_browser(
    authorization_url: str,
    username: str = "alice",
    password: str = PASSWORD,
    *,
    decision: str = "allow",
    origin: str | None = None,
    client: httpx.Client | None = None,
) -> str:
    """The callback URL (the redirect URI with `code` or `error`, `state` and `iss`).

    Signs in when the sign-in form is shown and answers a consent page with `decision`.
    `origin` is the `Origin` header of the form posts (default: the issuer's); `client` keeps
    its cookies across calls (single sign-on), a fresh one is used otherwise.
    """
    issuer = origin_of(authorization_url)
    headers = {
        "Origin": origin if origin is not None else issuer,
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    with httpx.Client() if client is None else contextlib.nullcontext(client) as http:
        response = http.get(authorization_url)
        signed_in = consented = False
        for _ in range(10):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if origin_of(location) != issuer:
                    return location  # leaving the issuer: the app's callback
                response = http.get(location)
                continue
            page = response.text
            assert response.status_code == 200, f"{response.status_code} from the issuer: {page}"
            form = _Form(page)
            assert form.action, f"no form on the issuer's page: {page}"
            action = urljoin(str(response.url), form.action)
            if "password" in form.fields and not signed_in:
                data = {**form.fields, "username": username, "password": password}
                signed_in = True
            elif decision in form.buttons and not consented:
                data = {**form.fields, form.buttons[decision]: decision}
                consented = True
            else:
                raise AssertionError(f"unexpected page from the issuer: {page}")
            response = http.post(action, data=data, headers=headers)
            assert response.status_code == 303, f"{response.status_code}: {response.text}"
        raise AssertionError("the issuer kept redirecting")
