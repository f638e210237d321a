"""Authentication errors as values (RFC 6750 section 3.1), each with its code and status.

AuthError (a Starlette HTTPException, so any FastAPI app answers it sensibly)
 ├── MissingToken        401, no error code (the request carried no credentials)
 ├── InvalidToken        401 invalid_token
 ├── InsufficientScope   403 insufficient_scope
 └── KeySetUnavailable   503 temporarily_unavailable, with Retry-After
"""

from typing import ClassVar

from starlette.exceptions import HTTPException

REALM = "api"


class AuthError(HTTPException):
    """An error answered with `WWW-Authenticate: Bearer ...` and an RFC-style JSON body."""

    error: ClassVar[str | None] = None
    status_code: int = 401

    def __init__(
        self,
        description: str = "",
        extra_challenge: dict[str, str] | None = None,
        extra_headers: dict[str, str] | None = None,
    ):
        self.description = description
        challenge = {"realm": REALM}
        if self.error:
            challenge["error"] = self.error
            if description:
                challenge["error_description"] = description
        challenge.update(extra_challenge or {})
        params = ", ".join(f'{key}="{_quote(value)}"' for key, value in challenge.items())
        headers = {"WWW-Authenticate": f"Bearer {params}", **(extra_headers or {})}
        super().__init__(self.status_code, description, headers)

    def body(self) -> dict[str, str]:
        body = {"error": self.error or "invalid_request"}
        if self.description:
            body["error_description"] = self.description
        return body


class MissingToken(AuthError):
    error = None

    def body(self) -> dict[str, str]:
        return {"error": "invalid_request", "error_description": self.description}


class InvalidToken(AuthError):
    error = "invalid_token"

    def __init__(self, description: str, reason: str = "invalid"):
        super().__init__(description)
        # A short, fixed label for metrics (the description is for the developer).
        self.reason = reason


class InsufficientScope(AuthError):
    error = "insufficient_scope"
    status_code = 403

    def __init__(self, required: tuple[str, ...]):
        scope = " ".join(required)
        super().__init__(f"the token lacks scope: {scope}", {"scope": scope})


class KeySetUnavailable(AuthError):
    """No usable key set could be fetched yet: the issuer, not the token, is at fault."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, retry_after: int):
        super().__init__(
            "the issuer's signing keys are not available yet; retry later",
            extra_headers={"Retry-After": str(max(1, retry_after))},
        )


def _quote(value: str) -> str:
    # RFC 6750 section 3: error_description is limited to printable ASCII without `"` and `\`.
    return "".join(ch for ch in value if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')
