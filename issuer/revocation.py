"""`POST /revoke` (RFC 7009): refresh tokens revoke their family, access tokens their `jti`."""

import logging

from starlette.concurrency import run_in_threadpool

from issuer.client_auth import require_client
from issuer.errors import InvalidGrant, InvalidRequest
from issuer.grants import GrantContext
from issuer.refresh_tokens import AccessTokenRef
from resource_server.errors import InvalidToken
from resource_server.verify import Verifier

log = logging.getLogger("issuer.audit")


async def revoke(
    form: dict[str, str], authorization: str | None, ctx: GrantContext, verifier: Verifier
) -> None:
    """Revoke the token if it is ours and the client's; unknown tokens are not an error."""
    client = await require_client(form, authorization, ctx.clients)
    token = form.get("token")
    if token is None:
        raise InvalidRequest("token is required")
    now = ctx.now()
    # token_type_hint only orders the look-ups (section 2.1); both kinds are tried.
    refresh = await run_in_threadpool(ctx.refresh_tokens.find, token)
    if refresh is not None:
        if refresh.client_id != client.client_id:
            raise InvalidGrant("the token was issued to another client")
        live = await run_in_threadpool(ctx.refresh_tokens.revoke_family, refresh.family_id, now)
        # Section 2.1: access tokens of the same grant are invalidated too.
        await ctx.revocations.revoke(live, now)
        log.info("refresh token revoked client_id=%s", client.client_id)
        return
    try:
        claims = await verifier.verify(token)
    except InvalidToken:
        return  # section 2.2: invalid tokens get 200 as well
    if claims.client_id != client.client_id:
        raise InvalidGrant("the token was issued to another client")
    jti = claims.raw["jti"]
    await ctx.revocations.revoke([AccessTokenRef(jti, claims.exp)], now)
    log.info("access token revoked client_id=%s jti=%s", client.client_id, jti)
