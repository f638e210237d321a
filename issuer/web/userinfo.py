"""`GET` and `POST /userinfo` (OpenID Connect Core 5.3), with Bearer errors per RFC 6750."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from issuer.web.deps import Userinfo
from issuer.web.openapi import USERINFO_DOCS, USERINFO_RESPONSES
from issuer.web.responses import no_store_json
from resource_server.deps import bearer_token, refuse_token_in_body

router = APIRouter()


# One route per method (each operation has its own id in the OpenAPI document), one function.
@router.get(
    "/userinfo",
    summary="Claims about the signed-in user (OIDC 5.3)",
    operation_id="userinfo",
    responses=USERINFO_RESPONSES,
    openapi_extra=USERINFO_DOCS,
)
@router.post(
    "/userinfo",
    summary="Claims about the signed-in user, by POST (OIDC 5.3)",
    operation_id="userinfo_by_post",
    responses=USERINFO_RESPONSES,
    openapi_extra=USERINFO_DOCS,
)
async def userinfo(request: Request, endpoint: Userinfo) -> Response:
    # A token in a POST body (RFC 6750 2.2, not offered) is refused, not ignored: ignored, the
    # client would be told it sent no token at all.
    await refuse_token_in_body(request)
    return no_store_json(await endpoint.claims(bearer_token(request)))
