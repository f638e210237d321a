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


def post(headers: dict[str, str]) -> Request:
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/login", "headers": raw})


def test_a_form_without_a_csrf_cookie_is_refused_whatever_it_sends():
    # A browser that never saw a page of ours holds no cookie: an empty token is no match.
    cookies = BrowserCookies("http://issuer.test", session_ttl=60)
    for form in ({}, {"csrf_token": ""}, {"csrf_token": "t" * 43}):
        assert not cookies.csrf_ok(post({"sec-fetch-site": "same-origin"}), form)
        assert not cookies.csrf_ok(post({"cookie": "issuer_csrf="}), form)


def test_a_form_the_user_sent_by_hand_is_accepted():
    # Sec-Fetch-Site: none is the user's own doing (typed, a bookmark), never another site's.
    cookies = BrowserCookies("http://issuer.test", session_ttl=60)
    token = "t" * 43
    for site in ("none", "same-origin"):
        request = post({"sec-fetch-site": site, "cookie": f"issuer_csrf={token}"})
        assert cookies.csrf_ok(request, {"csrf_token": token}), site
    # And a browser that sends no fetch metadata nor Origin at all (older ones).
    assert cookies.csrf_ok(post({"cookie": f"issuer_csrf={token}"}), {"csrf_token": token})


@pytest.mark.parametrize("length", [0, 19, 20, 128, 129])
def test_a_csrf_cookie_of_another_making_is_replaced(length):
    # Only a token of a size this site makes is kept; any other is replaced by a new one.
    cookies = BrowserCookies("http://issuer.test", session_ttl=60)
    held = "t" * length
    token, new = cookies.csrf_token(post({"cookie": f"issuer_csrf={held}"}))
    kept = 20 <= length <= 128
    assert new is not kept and (token == held) is kept and 20 <= len(token) <= 128
