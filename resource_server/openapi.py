"""The resource server's OpenAPI document: Swagger UI's Authorize button logs in at the issuer."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEME = "IssuerPassword"
ME_EXAMPLE = {
    "sub": "1",
    "username": "johndoe",
    "scope": "profile",
    "client_id": "public",
    "exp": 1795925258,
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing, malformed, forged, expired or foreign token (RFC 6750).",
        "content": {
            "application/json": {
                "example": {"error": "invalid_token", "error_description": "the token has expired"}
            }
        },
    },
    503: {
        "description": "The issuer's keys could not be fetched yet; retry after `Retry-After`.",
        "content": {
            "application/json": {
                "example": {
                    "error": "temporarily_unavailable",
                    "error_description": "the signing keys are not available yet; retry later",
                }
            }
        },
    },
}


def install_openapi(app: FastAPI, issuer_url: str) -> None:
    """Declare the issuer's password flow, so Swagger UI can obtain a token for the user."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version="1.0.0",
                openapi_version=app.openapi_version,
                description=(
                    "Verifies the issuer's RS256 access tokens. Use **Authorize** to log in "
                    f"at `{issuer_url}/token` (password flow), then call `/users/me`."
                ),
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                SCHEME: {
                    "type": "oauth2",
                    "flows": {"password": {"tokenUrl": f"{issuer_url}/token", "scopes": {}}},
                }
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
