"""OAuth 2.0 errors as values: each carries its RFC 6749 section 5.2 code and HTTP status.

OAuthError
 ├── InvalidRequest        400 invalid_request
 │    └── RequestTooLarge  413 invalid_request
 ├── InvalidClient         401 invalid_client, with a Basic challenge
 ├── InvalidGrant          400 invalid_grant
 ├── UnauthorizedClient    400 unauthorized_client
 ├── UnsupportedGrantType  400 unsupported_grant_type
 ├── InvalidScope          400 invalid_scope
 ├── RateLimited           429 invalid_request, with Retry-After
 ├── TemporarilyUnavailable 503 temporarily_unavailable, with Retry-After
 └── ServerError           500 server_error
"""

import re
from typing import ClassVar

CLIENT_CHALLENGE = {"WWW-Authenticate": 'Basic realm="oauth", charset="UTF-8"'}


# RFC 6749 section 5.2: `error_description` holds %x20-21 / %x23-5B / %x5D-7E only.
_OUTSIDE_CHARSET = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# A sentence for a developer; what it quotes of the request is cut (a 60 KB `scope` came
# back whole in the description).
MAX_DESCRIPTION = 300


def describable(text: str) -> str:
    """`text` as an `error_description` may hold it: "?" for every other character, and
    cut to `MAX_DESCRIPTION` characters."""
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    return _OUTSIDE_CHARSET.sub("?", text)


class OAuthError(Exception):
    """An error answered with an RFC 6749 section 5.2 JSON body."""

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(description or self.error)
        # Descriptions may quote the request; what they send back keeps to the RFC's charset.
        self.description = describable(description) if description else None
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        """The JSON error body: `error` and, when known, `error_description`."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class RequestTooLarge(InvalidRequest):
    status_code = 413


class RequestTimeout(InvalidRequest):
    status_code = 408


class UnsupportedEncoding(InvalidRequest):
    status_code = 415  # RFC 9110 section 8.4: a content coding the server does not accept


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str | None = None):
        # RFC 9110 section 15.5.2: a 401 always carries a challenge, whatever method failed.
        super().__init__(description, headers=CLIENT_CHALLENGE)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class RateLimited(OAuthError):
    # RFC 6749 section 5.2 defines no rate-limit code; the status and Retry-After say it.
    error = "invalid_request"
    status_code = 429

    def __init__(self, retry_seconds: int, description: str = "too many requests; retry later"):
        super().__init__(description, headers={"Retry-After": str(retry_seconds)})


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str, retry_after: int = 1):
        super().__init__(description, headers={"Retry-After": str(retry_after)})


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500
