"""OpenAPI descriptions of the issuer's form endpoints, with examples.

The endpoints read their form themselves (for RFC 6749 error bodies on any malformed input),
so FastAPI cannot infer the request bodies: they are declared here.
"""

from typing import Any

from fastapi import FastAPI

from issuer.oauth.clients import GRANT_TYPES
from issuer.oauth.codes import MAX_NONCE_LENGTH
from resource_server.content_length import BODY_DEADLINE

# How callers prove who they are (RFC 6749 2.3.1, RFC 6750 2.1), named by the operations.
SECURITY_SCHEMES = {
    "client": {
        "type": "http",
        "scheme": "basic",
        "description": "client_secret_basic: client_id and secret (client_secret_post and "
        "public clients name themselves in the form instead)",
    },
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (RFC 9068)"},
}
# Basic, or nothing in the header (the form's client_id / client_secret, or no client).
_CLIENT_OR_FORM: list[dict[str, list[str]]] = [{"client": []}, {}]


def _form(
    properties: dict[str, Any], required: list[str], examples: dict[str, Any]
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:  # OpenAPI 3.0: a `required` list has at least one entry
        schema["required"] = required
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": schema,
                "examples": {name: {"value": value} for name, value in examples.items()},
            }
        },
    }


def _json(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


_STRING = {"type": "string"}
_TOKEN = {"type": "string", "minLength": 1}
_ERROR = _json(
    "RFC 6749 section 5.2 error",
    {"error": "invalid_grant", "error_description": "invalid username or password"},
)
# What every form endpoint answers a body it will not read (`issuer.web.forms`).
_BODY_REFUSALS = {
    "408": _json(
        f"The body stopped arriving ({BODY_DEADLINE:g} s after it began)",
        {"error": "invalid_request"},
    ),
    "413": _json("Body over 64 KiB", {"error": "invalid_request"}),
    "415": _json("A content-encoded body", {"error": "invalid_request"}),
}


def install_security_schemes(app: FastAPI) -> None:
    """Declare `SECURITY_SCHEMES` in the app's OpenAPI document (FastAPI derives none for
    endpoints that read their credentials themselves)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


TOKEN_DOCS: dict[str, Any] = {
    "security": _CLIENT_OR_FORM,
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
        **_BODY_REFUSALS,
        "429": _json("Rate limited; see Retry-After", {"error": "invalid_request"}),
        "503": _json(
            "Password hashing at capacity, or the database unreachable; see Retry-After",
            {"error": "temporarily_unavailable"},
        ),
    },
}
REVOKE_DOCS: dict[str, Any] = {
    "security": _CLIENT_OR_FORM,
    "requestBody": _form(
        {
            "token": _TOKEN,
            "token_type_hint": _STRING,
            "client_id": _STRING,
            "client_secret": _STRING,
        },
        ["token"],
        {"refresh token": {"token": "Xf3...", "client_id": "spa"}},
    ),
    "responses": {
        "200": {"description": "Revoked (or unknown: RFC 7009 section 2.2); no body"},
        "400": _ERROR,
        "401": _json("Client authentication failed", {"error": "invalid_client"}),
        **_BODY_REFUSALS,
        "429": _json("Rate limited; see Retry-After", {"error": "invalid_request"}),
        "503": _json("Database unreachable; see Retry-After", {"error": "temporarily_unavailable"}),
    },
}
INTROSPECT_DOCS: dict[str, Any] = {
    # A confidential client only, by Basic or by the form (client_secret_post, as the
    # metadata's introspection_endpoint_auth_methods_supported says).
    "security": _CLIENT_OR_FORM,
    "requestBody": _form(
        {
            "token": _TOKEN,
            "token_type_hint": _STRING,
            "client_id": _STRING,
            "client_secret": {"type": "string", "format": "password"},
        },
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
        "400": _ERROR,
        "401": _json("Client authentication failed", {"error": "invalid_client"}),
        **_BODY_REFUSALS,
        "429": _json("Rate limited; see Retry-After", {"error": "invalid_request"}),
        "503": _json("Database unreachable; see Retry-After", {"error": "temporarily_unavailable"}),
    },
}
# The browser endpoints' parameters (`issuer.oidc.authorize`, `issuer.oidc.logout`): the query
# of a GET, the same names as the form of a POST.
_AUTHORIZE_PARAMETERS: list[tuple[str, dict[str, Any], bool, str]] = [
    ("response_type", {"type": "string", "enum": ["code"]}, True, "RFC 6749 4.1.1"),
    ("client_id", _STRING, True, "a registered client"),
    ("redirect_uri", _STRING, True, "one of the client's registered redirect URIs"),
    ("scope", _STRING, False, "space-separated; default: all the client may ask for"),
    ("state", _STRING, False, "returned unchanged with the answer"),
    (
        "code_challenge",
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
        True,
        "BASE64URL(SHA256(code_verifier)) (RFC 7636)",
    ),
    ("code_challenge_method", {"type": "string", "enum": ["S256"]}, True, "`plain` is refused"),
    ("nonce", {"type": "string", "maxLength": MAX_NONCE_LENGTH}, False, "copied into the ID token"),
    ("prompt", _STRING, False, "`none`, or any of `login`, `consent`, `select_account`"),
    ("max_age", {"type": "string", "pattern": "^[0-9]+$"}, False, "seconds since sign-in"),
    ("login_hint", _STRING, False, "the username to fill in"),
    ("id_token_hint", _STRING, False, "an ID token of the user expected to be signed in"),
    ("response_mode", {"type": "string", "enum": ["query"]}, False, "only `query`"),
]
_LOGOUT_PARAMETERS: list[tuple[str, dict[str, Any], bool, str]] = [
    ("id_token_hint", _STRING, False, "an ID token this issuer signed (it may have expired)"),
    (
        "post_logout_redirect_uri",
        _STRING,
        False,
        "a URI registered for the hint's client; followed only with `id_token_hint`",
    ),
    ("state", _STRING, False, "returned unchanged with the redirect"),
    ("client_id", _STRING, False, "the hint's client"),
]


def _query(parameters: list[tuple[str, dict[str, Any], bool, str]]) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": required,
                "schema": schema,
                "description": text,
            }
            for name, schema, required, text in parameters
        ]
    }


def _page_form(
    parameters: list[tuple[str, dict[str, Any], bool, str]], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    properties = {name: {**schema, "description": text} for name, schema, _, text in parameters}
    required = [name for name, _, needed, _ in parameters if needed]
    schema: dict[str, Any] = {"type": "object", "properties": {**properties, **(extra or {})}}
    if required:
        schema["required"] = required
    return {
        "requestBody": {
            "required": bool(required),  # a sign-out request may carry nothing
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


AUTHORIZE_DOCS = _query(_AUTHORIZE_PARAMETERS)
AUTHORIZE_FORM_DOCS = _page_form(_AUTHORIZE_PARAMETERS)
LOGOUT_DOCS = _query(_LOGOUT_PARAMETERS)
LOGOUT_FORM_DOCS = _page_form(
    _LOGOUT_PARAMETERS,
    {"csrf_token": {**_STRING, "description": "only from the issuer's own confirmation page"}},
)
_PAGE = {"description": "An HTML page: sign-in, consent, or an error the client cannot be sent"}
_PAGE_CONTENT = {"content": {"text/html": {"schema": {"type": "string"}}}}
# The same refusals from the browser's form endpoints, as pages.
_PAGE_BODY_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"description": answer["description"], **_PAGE_CONTENT}
    for status, answer in _BODY_REFUSALS.items()
}
# Every browser endpoint reads the database (clients, sessions): out of reach, a page says so.
_PAGE_UNAVAILABLE = {
    "description": "The database is out of reach; see Retry-After",
    **_PAGE_CONTENT,
}
AUTHORIZE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {**_PAGE, **_PAGE_CONTENT},
    302: {"description": "Back to the client's redirect_uri with code or error, state, iss"},
    400: {"description": "The client or redirect URI is not established", **_PAGE_CONTENT},
    503: _PAGE_UNAVAILABLE,
}
AUTHORIZE_FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    303: {
        "description": "A valid request: on to GET /authorize with the same parameters. "
        "Otherwise back to the client's redirect_uri with error, state, iss"
    },
    400: AUTHORIZE_RESPONSES[400],
    **_PAGE_BODY_REFUSALS,
    503: _PAGE_UNAVAILABLE,
}
_BAD_LOGOUT = {"description": "A malformed sign-out request", **_PAGE_CONTENT}
LOGOUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Signed out, or asked to confirm signing out", **_PAGE_CONTENT},
    302: {"description": "To the registered post_logout_redirect_uri, with state"},
    400: _BAD_LOGOUT,
    503: _PAGE_UNAVAILABLE,
}
LOGOUT_FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Signed out (the user confirmed)", **_PAGE_CONTENT},
    303: {
        "description": "An app's request: on to GET /logout with the same parameters. "
        "The user's confirmation: to the registered post_logout_redirect_uri, with state"
    },
    400: _BAD_LOGOUT,
    403: {"description": "The confirmation form was not sent from this site", **_PAGE_CONTENT},
    **_PAGE_BODY_REFUSALS,
    503: _PAGE_UNAVAILABLE,
}
USERINFO_DOCS: dict[str, Any] = {"security": [{"bearer": []}]}
USERINFO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("Claims (OpenID Connect 5.3.2)", {"sub": "1", "preferred_username": "johndoe"}),
    400: _json("A token in the query or body (RFC 6750 2.2, 2.3)", {"error": "invalid_request"}),
    401: _json("No, or an invalid, access token (RFC 6750 3.1)", {"error": "invalid_token"}),
    403: _json("The token lacks the openid scope", {"error": "insufficient_scope"}),
    503: _json("Database unreachable; see Retry-After", {"error": "temporarily_unavailable"}),
}
READYZ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("Ready", {"ready": True, "database": True, "keys": True}),
    503: _json("Not ready: the failing check", {"ready": False, "database": False, "keys": True}),
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
