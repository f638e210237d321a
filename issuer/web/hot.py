"""The issuer's hot routes as plain ASGI handlers, for `servicekit.front.FrontedFastAPI`.

`GET /.well-known/jwks.json`, `POST /token` and `GET /healthz` are on the path of every
verifier refresh, every token and every probe. Each handler here does what its FastAPI route
does, through the same function (`JwksAnswers.answer`, `token_response`, `HEALTHY`), minus
the routing and dependency solving: the route reads its services from the lifespan state
through `Depends`, the handler reads the same state from the ASGI scope. Refusals go through
the app's own error handler, so their bodies and headers are the same too.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from issuer.services import Services
from issuer.web.client_address import ClientAddresses
from issuer.web.discovery import JwksAnswers
from issuer.web.oauth import token_response
from servicekit.front import HEALTHY

ErrorHandler = Callable[[Request, Any], Awaitable[Response]]


async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    await HEALTHY(scope, receive, send)


async def jwks(scope: Scope, receive: Receive, send: Send) -> None:
    answers: JwksAnswers = scope["state"]["jwks"]
    lines = [
        value.decode("latin-1") for name, value in scope["headers"] if name == b"if-none-match"
    ]
    await answers.answer(lines)(scope, receive, send)


def token(on_error: ErrorHandler) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """`POST /token`; refusals answered by `on_error`, the app's handler for them."""

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state = scope["state"]
        services: Services = state["services"]
        addresses: ClientAddresses = state["client_addresses"]
        try:
            response: Response = await token_response(request, services.tokens, addresses.of(scope))
        except Exception as exc:
            response = await on_error(request, exc)
        await response(scope, receive, send)

    return handler
