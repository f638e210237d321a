"""`GET` and `POST /userinfo` (OpenID Connect Core 5.3), with Bearer errors per RFC 6750."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from issuer.web.deps import Userinfo
from issuer.web.openapi import USERINFO_RESPONSES
from issuer.web.responses import no_store_json
from resource_server.deps import bearer_token

router = APIRouter()


# Two routes, not one with two methods: each operation needs its own id in the OpenAPI
# document.
@router.get(
    "/userinfo",
    summary="Claims about the signed-in user (OIDC 5.3)",
    responses=USERINFO_RESPONSES,
)
async def userinfo(request: Request, endpoint: Userinfo) -> Response:
    return no_store_json(await endpoint.claims(bearer_token(request)))


@router.post(
    "/userinfo",
    summary="Claims about the signed-in user, by POST (OIDC 5.3)",
    responses=USERINFO_RESPONSES,
)
async def userinfo_by_post(request: Request, endpoint: Userinfo) -> Response:
    return await userinfo(request, endpoint)
