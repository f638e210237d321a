"""CORS for both services: Starlette's middleware, its refusals in the services' error form."""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from servicekit.http_errors import NO_STORE

# The answer headers a browser app's script may read beyond the CORS-safelisted ones: the
# request id (to quote in a report), and what it needs to act on a refusal: when to try
# again (429, 503) and the RFC 6750 challenge.
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "WWW-Authenticate"]


class CorsMiddleware(CORSMiddleware):
    """A refused preflight (an origin, method or header not allowed) answers `400` with an
    OAuth-style JSON error and `no-store`, as every other refusal does, not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        # "Disallowed CORS origin, headers": which parts of the preflight were refused.
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        return JSONResponse(
            {
                "error": "invalid_request",
                "error_description": f"this origin may not make this request ({refused})",
            },
            400,
            {**headers, **NO_STORE},
        )
