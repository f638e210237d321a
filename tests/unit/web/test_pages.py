"""The browser pages' origin check: the origin a browser sends, whatever way ISSUER_URL is
written."""

import pytest
from starlette.requests import Request

from issuer.web.pages import BrowserCookies
from resource_server.urls import web_origin


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://idp.example.com", "https://idp.example.com"),
        ("https://IDP.Example.com:443/auth/", "https://idp.example.com"),
        ("https://idp.example.com:8443", "https://idp.example.com:8443"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
    ],
)
def test_the_origin_is_what_a_browser_sends(url, origin):
    assert web_origin(url) == origin


def form_post(origin: str, token: str) -> Request:
    headers = [
        (b"origin", origin.encode()),
        (b"sec-fetch-site", b"same-origin"),
        (b"cookie", f"__Host-csrf={token}".encode()),
    ]
    return Request({"type": "http", "method": "POST", "path": "/login", "headers": headers})


def test_a_browsers_form_post_is_accepted_under_an_issuer_url_with_its_default_port():
    # The audit: ISSUER_URL=https://idp.example.com:443 refused every form as expired.
    cookies = BrowserCookies("https://IDP.example.com:443", session_ttl=60)
    token = "t" * 43
    assert cookies.secure and cookies.csrf == "__Host-csrf"
    assert cookies.csrf_ok(form_post("https://idp.example.com", token), {"csrf_token": token})
    assert not cookies.csrf_ok(form_post("https://evil.example", token), {"csrf_token": token})
