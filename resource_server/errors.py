"""Authentication errors as values (RFC 6750 section 3.1), each with its code and status.

AuthError (a Starlette HTTPException, so any FastAPI app answers it sensibly)
 ├── MissingToken        401, no error code (no credentials, or another scheme than Bearer)
 ├── InvalidRequest      400 invalid_request (malformed Authorization; a token in the URI or body)
 ├── InvalidToken        401 invalid_token
 ├── InsufficientScope   403 insufficient_scope
 └── KeySetUnavailable   503 with Retry-After and no challenge (the issuer is at fault)

The JSON body always carries `error_description` (prose for the developer) and carries `error`
exactly when the `WWW-Authenticate` challenge does: only RFC 6750's own codes are ever sent.
"""

from typing import ClassVar

from starlette.exceptions import HTTPException

REALM = "api"


class AuthError(HTTPException):
    """An error answered with an RFC 6750 status, challenge and JSON body."""

    error: ClassVar[str | None] = None
    status_code: int = 401
    # Whether the answer carries a `WWW-Authenticate: Bearer ...` challenge.
    challenges: ClassVar[bool] = True

    def __init__(
        self,
        description: str = "",
        extra_challenge: dict[str, str] | None = None,
        extra_headers: dict[str, str] | None = None,
        reason: str = "invalid",
    ):
        self.description = description
        # A short, fixed label for metrics (the description is for the developer).
        self.reason = reason
        headers = dict(extra_headers or {})
        if self.challenges:
            challenge = {"realm": REALM}
            if self.error:
                challenge["error"] = self.error
                if description:
                    challenge["error_description"] = description
            challenge.update(extra_challenge or {})
            params = ", ".join(f'{key}="{_quote(value)}"' for key, value in challenge.items())
            headers["WWW-Authenticate"] = f"Bearer {params}"
        super().__init__(self.status_code, description, headers)

    def body(self) -> dict[str, str]:
        """The JSON body: `error` only when the challenge names one, always a description."""
        body = {"error": self.error} if self.error else {}
        if self.description:
            body["error_description"] = self.description
        return body


class MissingToken(AuthError):
    """No bearer credentials: RFC 6750 section 3.1 says no error code, in the header or body."""

    error = None

    def __init__(self, description: str):
        super().__init__(description, reason="no_token")


class InvalidRequest(AuthError):
    """A malformed request (RFC 6750 section 3.1): 400 invalid_request."""

    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str, reason: str = "header"):
        super().__init__(description, reason=reason)


class InvalidToken(AuthError):
    """A token that does not verify: 401 invalid_token."""

    error = "invalid_token"

    def __init__(self, description: str, reason: str = "invalid"):
        super().__init__(description, reason=reason)


class InsufficientScope(AuthError):
    """A valid token without every required scope: 403 insufficient_scope."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, required: tuple[str, ...]):
        scope = " ".join(required)
        super().__init__(
            f"the token lacks scope: {scope}", {"scope": scope}, reason="insufficient_scope"
        )


class KeySetUnavailable(AuthError):
    """No usable key set could be fetched yet: the issuer, not the token, is at fault.

    RFC 6750 defines no error code for this, so none is sent; and since the credentials were
    not judged, there is no challenge either: 503 with Retry-After, a description in the body.
    """

    error = None
    status_code = 503
    challenges = False

    def __init__(self, retry_after: int):
        super().__init__(
            "the issuer's signing keys are temporarily unavailable; retry later",
            extra_headers={"Retry-After": str(max(1, retry_after))},
            reason="keys_unavailable",
        )


def _quote(value: str) -> str:
    # RFC 6750 section 3: error_description is limited to printable ASCII without `"` and `\`.
    return "".join(ch for ch in value if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')
