"""The issuer's HTML pages: rendering, the headers every page carries, and the browser's
cookies (the session and the CSRF token).

Pages are never cached (`no-store`) and never framed (`frame-ancestors 'none'`,
`X-Frame-Options: DENY`: no clickjacking of the sign-in or consent buttons). Forms carry a
CSRF token that must equal the one in a cookie this site set (double submit); a cross-site
`Origin` or `Sec-Fetch-Site` is refused outright.
"""

import hmac
import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from resource_server.urls import web_origin

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True),
)
STATIC_DIRECTORY = Path(__file__).with_name("static")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    # No form-action: browsers apply it to the redirect that ends a sign-in too.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` on the
    # form posts, which the CSRF check must refuse.
    "Referrer-Policy": "same-origin",
}


class BrowserCookies:
    """Names and attributes of the issuer's cookies; `Secure` and `__Host-` under https."""

    def __init__(self, issuer_url: str, session_ttl: int):
        self.secure = issuer_url.startswith("https://")
        prefix = "__Host-" if self.secure else "issuer_"
        self.session = f"{prefix}session"
        self.csrf = f"{prefix}csrf"
        self._origin = web_origin(issuer_url)
        self._session_ttl = session_ttl

    def set_session(self, response: Response, session_id: str) -> None:
        response.set_cookie(
            self.session,
            session_id,
            max_age=self._session_ttl,
            path="/",
            httponly=True,
            secure=self.secure,
            samesite="lax",
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session, path="/", secure=self.secure, httponly=True)

    def csrf_token(self, request: Request) -> tuple[str, bool]:
        """The browser's CSRF token, and whether it is new (so the cookie must be set)."""
        current = request.cookies.get(self.csrf)
        if current and 20 <= len(current) <= 128:
            return current, False
        return secrets.token_urlsafe(32), True

    def set_csrf(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.csrf, token, path="/", httponly=True, secure=self.secure, samesite="lax"
        )

    def csrf_ok(self, request: Request, form: dict[str, str]) -> bool:
        """The form's token is the cookie's, and the request came from this site."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        # `Origin: null` comes from privacy settings too; the browser vouches for the site.
        if (
            origin is not None
            and origin != self._origin
            and not (origin == "null" and site == "same-origin")
        ):
            return False
        cookie, sent = request.cookies.get(self.csrf, ""), form.get("csrf_token", "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def page(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """A rendered page with the page headers."""
    body = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def form_page(
    request: Request,
    cookies: BrowserCookies,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page whose form carries the browser's CSRF token, setting the cookie if it is new."""
    token, new = cookies.csrf_token(request)
    response = page(template, status, headers, csrf_token=token, **context)
    if new:
        cookies.set_csrf(response, token)
    return response


def redirect(location: str, status: int = 302) -> RedirectResponse:
    return RedirectResponse(location, status_code=status, headers={"Cache-Control": "no-store"})
