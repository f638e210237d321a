"""`POST /token`, `POST /revoke` and `POST /introspect`."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from issuer.oauth.errors import InvalidRequest
from issuer.oauth.grants import TokenEndpoint
from issuer.web.deps import ClientAddress, Introspection, Revocation, Tokens
from issuer.web.forms import read_form
from issuer.web.openapi import INTROSPECT_DOCS, REVOKE_DOCS, TOKEN_DOCS
from issuer.web.responses import no_store_json
from servicekit.http_errors import NO_STORE

router = APIRouter()


@router.post("/token", summary="OAuth 2.0 token endpoint (RFC 6749)", openapi_extra=TOKEN_DOCS)
async def token(request: Request, tokens: Tokens, address: ClientAddress) -> Response:
    return await token_response(request, tokens, address)


async def token_response(request: Request, tokens: TokenEndpoint, address: str) -> Response:
    """The answer to `POST /token` (also served by `issuer.web.hot`); raises refusals."""
    form = await read_form(request)
    body = await tokens.respond(form, authorization(request), address)
    return no_store_json(body)


@router.post(
    "/revoke",
    summary="Token revocation (RFC 7009)",
    response_class=Response,
    openapi_extra=REVOKE_DOCS,
)
async def revoke(request: Request, revocation: Revocation, address: ClientAddress) -> Response:
    form = await read_form(request)
    await revocation.revoke(form, authorization(request), address)
    return Response(status_code=200, headers=NO_STORE)


@router.post("/introspect", summary="Token introspection (RFC 7662)", openapi_extra=INTROSPECT_DOCS)
async def introspect(
    request: Request, introspection: Introspection, address: ClientAddress
) -> Response:
    form = await read_form(request)
    body = await introspection.introspect(form, authorization(request), address)
    return no_store_json(body)


def authorization(request: Request) -> str | None:
    """The request's one `Authorization` header. Two are refused (RFC 9110 5.3: the field
    is not a list), since a proxy that reads the other one would authenticate another client
    than we do."""
    values = [value for name, value in request.scope["headers"] if name == b"authorization"]
    if len(values) > 1:
        raise InvalidRequest("the request has more than one Authorization header")
    return values[0].decode("latin-1") if values else None
