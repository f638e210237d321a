"""`POST /introspect` (RFC 7662) for authenticated confidential clients."""

from typing import Any

from starlette.concurrency import run_in_threadpool

from issuer.client_auth import require_client
from issuer.errors import InvalidRequest
from issuer.grants import GrantContext
from resource_server.errors import InvalidToken
from resource_server.verify import Verifier

INACTIVE: dict[str, Any] = {"active": False}


async def introspect(
    form: dict[str, str], authorization: str | None, ctx: GrantContext, verifier: Verifier
) -> dict[str, Any]:
    """The token's state; anything not valid, revoked or not visible to the client is inactive."""
    client = await require_client(form, authorization, ctx.clients, require_secret=True)
    token = form.get("token")
    if token is None:
        raise InvalidRequest("token is required")
    now = ctx.now()
    refresh = await run_in_threadpool(ctx.refresh_tokens.find, token)
    if refresh is not None:
        active = (
            refresh.client_id == client.client_id  # only its own client may see a refresh token
            and refresh.used_at is None
            and refresh.revoked_at is None
            and now < min(refresh.idle_expires_at, refresh.family_expires_at)
        )
        if not active:
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": refresh.client_id,
            "sub": str(refresh.user_id),
            "scope": refresh.scope,
            "iat": refresh.created_at,
            "exp": min(refresh.idle_expires_at, refresh.family_expires_at),
            "iss": ctx.settings.url,
        }
    try:
        claims = await verifier.verify(token)
    except InvalidToken:
        return INACTIVE
    if await ctx.revocations.is_revoked(claims.raw["jti"]):
        return INACTIVE
    raw = claims.raw
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"):
        if name in raw:
            body[name] = raw[name]
    if claims.username is not None:
        body["username"] = claims.username
    return body
