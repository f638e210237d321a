"""Swagger UI at /docs from files shipped with `swagger-ui-bundle` (no CDN: works offline)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

# The Swagger UI shipped in swagger-ui-bundle (4.x) renders OpenAPI 3.0 documents only.
OPENAPI_VERSION = "3.0.3"


def install_docs(app: FastAPI, init_oauth: dict[str, Any] | None = None) -> None:
    """Swagger UI at /docs from files shipped with the package (no CDN: works offline)."""
    app.openapi_version = OPENAPI_VERSION
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            init_oauth=init_oauth,
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
