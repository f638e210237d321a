"""`GET` and `POST /userinfo` (OpenID Connect Core 5.3), with Bearer errors per RFC 6750."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from issuer.web.deps import Userinfo
from issuer.web.responses import no_store_json
from resource_server.deps import bearer_token

router = APIRouter()


@router.api_route(
    "/userinfo", methods=["GET", "POST"], summary="Claims about the signed-in user (OIDC 5.3)"
)
async def userinfo(request: Request, endpoint: Userinfo) -> Response:
    claims = await endpoint.claims(bearer_token(request))
    return no_store_json(claims)
