"""What verifiers and clients discover: the JWKS and the server metadata."""

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from issuer.keys.model import jwks_lifetime
from issuer.keys.store import LoadedKeys
from issuer.services import Services
from issuer.web.deps import Metadata
from issuer.web.openapi import JWKS_DOCS
from issuer.web.responses import JSON_MEDIA_TYPE

router = APIRouter()


class JwksAnswers:
    """The JWKS responses (200 and 304), built once per key set and `max-age`: a request
    costs a comparison of its `If-None-Match`, never a serialization."""

    def __init__(self, services: Services, clock: Callable[[], float] = time.time):
        self._services = services
        self._clock = clock
        self._counts = services.metrics.jwks_requests
        # (key set, max-age, 200, 304, whether the max-age can change with time)
        self._built: tuple[LoadedKeys, int, Response, Response, bool] | None = None

    def answer(self, if_none_match: str | None) -> Response:
        """The response to a JWKS request carrying `if_none_match` (shared: do not modify)."""
        loaded, built = self._services.keyring.current, self._built
        # Without a revocation the max-age is fixed: no clock, no recomputation.
        if built is None or built[0] is not loaded or built[4]:
            built = self._build(loaded)
        if if_none_match and loaded.jwks.matches(if_none_match):
            self._counts.not_modified += 1
            return built[3]
        self._counts.ok += 1
        return built[2]

    def _build(self, loaded: LoadedKeys) -> tuple[LoadedKeys, int, Response, Response, bool]:
        settings = self._services.settings
        max_age = jwks_lifetime(
            loaded.manifest,
            int(self._clock()),
            settings.jwks_max_age,
            settings.jwks_max_age_after_revocation,
        )
        built = self._built
        if built is None or built[0] is not loaded or built[1] != max_age:
            document = loaded.jwks
            headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": document.etag}
            ok = Response(document.body, media_type=JSON_MEDIA_TYPE, headers=headers)
            not_modified = Response(status_code=304, headers=headers)
            timed = loaded.manifest.last_revocation is not None
            built = self._built = (loaded, max_age, ok, not_modified, timed)
        return built


async def _jwks(request: Request) -> JwksAnswers:
    answers: JwksAnswers = request.state.jwks
    return answers


Jwks = Annotated[JwksAnswers, Depends(_jwks)]


@router.get(
    "/.well-known/jwks.json", summary="The public signing keys (RFC 7517)", responses=JWKS_DOCS
)
async def jwks(request: Request, answers: Jwks) -> Response:
    return answers.answer(request.headers.get("if-none-match"))


@router.get("/.well-known/oauth-authorization-server", summary="Server metadata (RFC 8414)")
@router.get("/.well-known/openid-configuration", summary="Server metadata (OpenID Discovery path)")
async def metadata(cache: Metadata) -> Response:
    body = await run_in_threadpool(cache.rebuild) if cache.claim_rebuild() else cache.body()
    return Response(
        body, media_type=JSON_MEDIA_TYPE, headers={"Cache-Control": "public, max-age=3600"}
    )
