"""OpenAPI descriptions of the issuer's form endpoints, with examples.

The endpoints read their form themselves (for RFC 6749 error bodies on any malformed input),
so FastAPI cannot infer the request bodies: they are declared here.
"""

from typing import Any

from issuer.oauth.clients import GRANT_TYPES


def _form(
    properties: dict[str, Any], required: list[str], examples: dict[str, Any]
) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": properties, "required": required},
                "examples": {name: {"value": value} for name, value in examples.items()},
            }
        },
    }


def _json(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


_STRING = {"type": "string"}
_ERROR = _json(
    "RFC 6749 section 5.2 error",
    {"error": "invalid_grant", "error_description": "invalid username or password"},
)

TOKEN_DOCS: dict[str, Any] = {
    "requestBody": _form(
        {
            "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
            "username": _STRING,
            "password": {"type": "string", "format": "password"},
            "scope": _STRING,
            "code": _STRING,
            "redirect_uri": _STRING,
            "code_verifier": _STRING,
            "refresh_token": _STRING,
            "client_id": _STRING,
            "client_secret": {"type": "string", "format": "password"},
        },
        [],
        {
            "authorization_code (PKCE)": {
                "grant_type": "authorization_code",
                "code": "SplxlOBeZQQYbYS6WxSbIA...",
                "redirect_uri": "https://app.example/callback",
                "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                "client_id": "spa",
            },
            "password (the tutorial's form)": {"username": "johndoe", "password": "secret123"},
            "client_credentials": {"grant_type": "client_credentials", "scope": "read"},
            "refresh_token": {
                "grant_type": "refresh_token",
                "client_id": "spa",
                "refresh_token": "Xf3...",
            },
        },
    ),
    "responses": {
        "200": _json(
            "Access token (RFC 6749 section 5.1)",
            {
                "access_token": "eyJhbGciOiJSUzI1NiIs...",
                "token_type": "Bearer",
                "expires_in": 900,
                "scope": "profile",
            },
        ),
        "400": _ERROR,
        "401": _json("Client authentication failed", {"error": "invalid_client"}),
        "413": _json("Body over 64 KiB", {"error": "invalid_request"}),
        "429": _json("Rate limited; see Retry-After", {"error": "invalid_request"}),
        "503": _json(
            "Password hashing at capacity; see Retry-After", {"error": "temporarily_unavailable"}
        ),
    },
}
REVOKE_DOCS: dict[str, Any] = {
    "requestBody": _form(
        {
            "token": _STRING,
            "token_type_hint": _STRING,
            "client_id": _STRING,
            "client_secret": _STRING,
        },
        ["token"],
        {"refresh token": {"token": "Xf3...", "client_id": "spa"}},
    ),
    "responses": {
        "200": {"description": "Revoked (or unknown: RFC 7009 section 2.2)"},
        "400": _ERROR,
        "401": _json("Client authentication failed", {"error": "invalid_client"}),
    },
}
INTROSPECT_DOCS: dict[str, Any] = {
    "requestBody": _form(
        {"token": _STRING, "token_type_hint": _STRING},
        ["token"],
        {"access token": {"token": "eyJhbGciOiJSUzI1NiIs..."}},
    ),
    "responses": {
        "200": _json(
            "Token state (RFC 7662 section 2.2)",
            {
                "active": True,
                "token_type": "Bearer",
                "scope": "profile",
                "client_id": "spa",
                "sub": "1",
                "username": "johndoe",
                "exp": 1795925258,
            },
        ),
        "401": _json("Client authentication failed", {"error": "invalid_client"}),
    },
}
JWKS_DOCS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {
                "example": {
                    "keys": [
                        {
                            "kty": "RSA",
                            "kid": "ummUy4U9cry3A0iwn-ZHxZdjDKviq6sWoQSdEgs8jEc",
                            "use": "sig",
                            "alg": "RS256",
                            "n": "ptIgleL7P9T_...",
                            "e": "AQAB",
                        }
                    ]
                }
            }
        }
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}
