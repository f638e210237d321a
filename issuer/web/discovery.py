"""What verifiers and clients discover: the JWKS and the server metadata."""

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from issuer.keys.model import jwks_lifetime
from issuer.web.deps import Keys, Metadata, ServicesDep
from issuer.web.headers import JSON_MEDIA_TYPE
from issuer.web.openapi import JWKS_DOCS

router = APIRouter()


@router.get(
    "/.well-known/jwks.json", summary="The public signing keys (RFC 7517)", responses=JWKS_DOCS
)
async def jwks(request: Request, keys: Keys, services: ServicesDep) -> Response:
    loaded, settings = keys.current, services.settings
    document = loaded.jwks
    max_age = jwks_lifetime(
        loaded.manifest,
        int(time.time()),
        settings.jwks_max_age,
        settings.jwks_max_age_after_revocation,
    )
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": document.etag}
    if document.matches(request.headers.get("if-none-match")):
        services.metrics.jwks_requests.labels("304").inc()
        return Response(status_code=304, headers=headers)
    services.metrics.jwks_requests.labels("200").inc()
    return Response(document.body, media_type=JSON_MEDIA_TYPE, headers=headers)


@router.get("/.well-known/oauth-authorization-server", summary="Server metadata (RFC 8414)")
@router.get("/.well-known/openid-configuration", summary="Server metadata (OpenID Discovery path)")
async def metadata(cache: Metadata) -> Response:
    body = await run_in_threadpool(cache.rebuild) if cache.stale else cache.body()
    return Response(
        body, media_type=JSON_MEDIA_TYPE, headers={"Cache-Control": "public, max-age=3600"}
    )
