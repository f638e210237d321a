"""Swagger UI at /docs from files shipped with `swagger-ui-bundle` (no CDN: works offline),
the OpenAPI document, and static files, each labelled with its route in the request metrics."""

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from servicekit.front import FrontedFastAPI

# The Swagger UI shipped in swagger-ui-bundle (4.x) renders OpenAPI 3.0 documents only.
OPENAPI_VERSION = "3.0.3"
# The pages run Swagger UI's inline script, so no script policy; but no other site may frame
# them (the issuer's sign-in pages are on the same origin) or sniff their type.
PAGE_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class _Template:
    """What the request metrics read of a route: its path template."""

    path: str


# Static files keep their URLs across upgrades: a cache revalidates them (their ETag makes
# that a 304), so new pages never meet an old stylesheet; their type is never sniffed.
STATIC_HEADERS = [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff")]


def mount_static(app: FastAPI, path: str, directory: str, name: str) -> None:
    """Serve `directory` under `path`, counted in the metrics as `path/{path}` (a mount sets
    no route of its own, so its requests would count as `unmatched`)."""
    files, template = StaticFiles(directory=directory), _Template(f"{path}/{{path}}")

    async def labelled(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = template
        if scope["path"].endswith("/"):  # a file's name has no trailing slash
            raise HTTPException(404)
        if not _servable_range(scope["headers"]):
            # RFC 9110 14.2: a range unit we do not understand is ignored, and so is an
            # invalid range (the framework answered both with a plain-text 400).
            scope = {**scope, "headers": [h for h in scope["headers"] if h[0] != b"range"]}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *STATIC_HEADERS]}
            await send(message)

        await files(scope, receive, with_headers)

    app.mount(path, labelled, name=name)


def _servable_range(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request has no Range, or one well-formed `bytes` range set (RFC 9110
    14.1.1: `first-last` with first <= last, `first-` or `-suffix`)."""
    ranges = [value for name, value in headers if name == b"range"]
    if not ranges:
        return True
    unit, _, specs = ranges[0].partition(b"=")
    if len(ranges) > 1 or unit.strip().lower() != b"bytes":
        return False
    for spec in specs.split(b","):
        first, dash, last = spec.strip().partition(b"-")
        if not dash or not (first or last):
            return False
        if not (_position(first) and _position(last)):
            return False
        if first and last and int(first) > int(last):
            return False
    return True


def _position(digits: bytes) -> bool:
    """Empty, or a byte position the framework reads (`int()` refuses 4,300 digits; no file
    here comes near 10**18 bytes)."""
    return not digits or (digits.isdigit() and len(digits) <= 18)


def install_docs(app: FrontedFastAPI, init_oauth: dict[str, Any] | None = None) -> None:
    """Swagger UI at /docs from files shipped with the package (no CDN: works offline), and
    the OpenAPI document at /openapi.json (for an app made with `openapi_url=None`: the
    framework's own route sets no route for the metrics); `HEAD` on each, as on its assets."""
    app.openapi_version = OPENAPI_VERSION
    mount_static(app, "/docs-assets", str(swagger_ui_path), "docs-assets")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return _framed_nowhere(
            _in_english(
                get_swagger_ui_html(
                    openapi_url="/openapi.json",
                    title=f"{app.title} - API docs",
                    swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                    swagger_css_url="/docs-assets/swagger-ui.css",
                    swagger_favicon_url="/docs-assets/favicon-32x32.png",
                    oauth2_redirect_url="/docs/oauth2-redirect",
                    init_oauth=init_oauth,
                )
            )
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return _framed_nowhere(get_swagger_ui_oauth2_redirect_html())

    app.answer_head("/openapi.json", "/docs", "/docs/oauth2-redirect")


def _in_english(response: HTMLResponse) -> HTMLResponse:
    """The framework's Swagger UI page with the language of its text (WCAG 3.1.1): it begins
    `<html>`, and screen readers would read it in the user's default voice."""
    body = bytes(response.body).replace(b"<html>", b'<html lang="en">', 1)
    return HTMLResponse(body, response.status_code)


def _framed_nowhere(response: HTMLResponse) -> HTMLResponse:
    response.headers.update(PAGE_HEADERS)
    return response
