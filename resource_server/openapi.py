"""The resource server's OpenAPI document: Swagger UI's Authorize button signs in at the
issuer's page (authorization code with PKCE, as any browser app would)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEME = "IssuerSignIn"
DOCS_SCOPES = {"openid": "Sign in with your account", "profile": "See your username"}
ME_EXAMPLE = {
    "sub": "1",
    "username": "johndoe",
    "scope": "profile",
    "client_id": "public",
    "exp": 1795925258,
}
READY_EXAMPLE = {
    "ready": True,
    "keys": "fresh",
    "last_fetch_failed": False,
    "consecutive_fetch_failures": 0,
}
NOT_READY_EXAMPLE = {
    "ready": False,
    "keys": "none",
    "last_fetch_failed": True,
    "consecutive_fetch_failures": 3,
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_CHALLENGE = '`Bearer realm="api"`, with `error` and `error_description` when there is one'
# RFC 6750 section 3.1: the body carries `error` exactly when the challenge does.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Malformed request (RFC 6750 `invalid_request`): a malformed "
        "`Authorization` header, or a token in the URI or a form body (only the header is "
        "accepted).",
        "headers": {"WWW-Authenticate": _header(_CHALLENGE)},
        "content": {
            "application/json": {
                "example": {
                    "error": "invalid_request",
                    "error_description": "the Authorization header must be 'Bearer <token>'",
                }
            }
        },
    },
    401: {
        "description": "No bearer token (a bare challenge, no error code), or a forged, "
        "expired or foreign one (`invalid_token`).",
        "headers": {"WWW-Authenticate": _header(_CHALLENGE)},
        "content": {
            "application/json": {
                "examples": {
                    "no token": {
                        "value": {"error_description": "the request carries no bearer token"}
                    },
                    "invalid token": {
                        "value": {
                            "error": "invalid_token",
                            "error_description": "the token has expired",
                        }
                    },
                }
            }
        },
    },
    503: {
        "description": "The issuer's keys could not be fetched yet; retry after `Retry-After`. "
        "Not an authentication error: no challenge and no error code.",
        "headers": {"Retry-After": _header("seconds to wait before retrying")},
        "content": {
            "application/json": {
                "example": {
                    "error_description": (
                        "the issuer's signing keys are temporarily unavailable; retry later"
                    )
                }
            }
        },
    },
}


def install_openapi(app: FastAPI, issuer_url: str) -> None:
    """Declare the issuer's authorization-code flow, so Swagger UI can sign the user in."""
    issuer_url = issuer_url.rstrip("/")  # the identifier may end in "/"; its URLs do not

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version="1.0.0",
                openapi_version=app.openapi_version,
                description=(
                    "Verifies the issuer's RS256 access tokens. Use **Authorize** to sign in on "
                    f"the issuer's page (`{issuer_url}/authorize`, authorization code with "
                    "PKCE), then call `/users/me`."
                ),
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                SCHEME: {
                    "type": "oauth2",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": f"{issuer_url}/authorize",
                            "tokenUrl": f"{issuer_url}/token",
                            "scopes": DOCS_SCOPES,
                        }
                    },
                }
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
