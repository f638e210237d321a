"""What verifiers and clients discover: the JWKS and the server metadata."""

import time
from collections.abc import Callable
from typing import Annotated, NamedTuple

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


class _Answers(NamedTuple):
    loaded: LoadedKeys
    ok: Response
    not_modified: Response
    until: int | None  # when the max-age changes (a revocation's window ends), if it will


class JwksAnswers:
    """The JWKS responses (200 and 304), built once per key set and `max-age`: a request
    costs a comparison of its `If-None-Match`, never a serialization."""

    def __init__(self, services: Services, clock: Callable[[], float] = time.time):
        self._services = services
        self._clock = clock
        self._counts = services.metrics.jwks_requests
        self._built: _Answers | None = None

    def answer(self, if_none_match: list[str]) -> Response:
        """The response to a JWKS request carrying these `If-None-Match` lines, read as one
        list (RFC 9110 section 5.3) (shared: do not modify)."""
        loaded, built = self._services.keyring.current, self._built
        # The clock is read only while a revocation's shortened max-age lasts.
        if (
            built is None
            or built.loaded is not loaded
            or (built.until is not None and self._clock() >= built.until)
        ):
            built = self._built = self._build(loaded)
        if if_none_match and loaded.jwks.matches(", ".join(if_none_match)):
            self._counts.not_modified += 1
            return built.not_modified
        self._counts.ok += 1
        return built.ok

    def _build(self, loaded: LoadedKeys) -> _Answers:
        settings = self._services.settings
        lifetime = jwks_lifetime(
            loaded.manifest,
            int(self._clock()),
            settings.jwks_max_age,
            settings.jwks_max_age_after_revocation,
        )
        document = loaded.jwks
        headers = {"Cache-Control": f"public, max-age={lifetime.max_age}", "ETag": document.etag}
        ok = Response(document.body, media_type=JSON_MEDIA_TYPE, headers=headers)
        not_modified = Response(status_code=304, headers=headers)
        return _Answers(loaded, ok, not_modified, lifetime.until)


async def _jwks(request: Request) -> JwksAnswers:
    answers: JwksAnswers = request.state.jwks
    return answers


Jwks = Annotated[JwksAnswers, Depends(_jwks)]


@router.get(
    "/.well-known/jwks.json", summary="The public signing keys (RFC 7517)", responses=JWKS_DOCS
)
async def jwks(request: Request, answers: Jwks) -> Response:
    return answers.answer(request.headers.getlist("if-none-match"))


@router.get("/.well-known/oauth-authorization-server", summary="Server metadata (RFC 8414)")
@router.get("/.well-known/openid-configuration", summary="Server metadata (OpenID Discovery path)")
async def metadata(cache: Metadata) -> Response:
    body = await run_in_threadpool(cache.rebuild) if cache.claim_rebuild() else cache.body()
    return Response(
        body, media_type=JSON_MEDIA_TYPE, headers={"Cache-Control": "public, max-age=3600"}
    )
