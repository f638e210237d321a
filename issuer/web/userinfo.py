"""`GET` and `POST /userinfo` (OpenID Connect Core 5.3), with Bearer errors per RFC 6750."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from issuer.web.deps import Userinfo
from issuer.web.headers import NO_STORE
from resource_server.deps import bearer_token

router = APIRouter()


@router.api_route(
    "/userinfo", methods=["GET", "POST"], summary="Claims about the signed-in user (OIDC 5.3)"
)
async def userinfo(request: Request, endpoint: Userinfo) -> JSONResponse:
    claims = await endpoint.claims(bearer_token(request))
    return JSONResponse(claims, headers=NO_STORE)
