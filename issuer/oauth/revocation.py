"""`POST /revoke` (RFC 7009): refresh tokens revoke their family, access tokens their `jti`."""

import logging
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from issuer.limits.throttle import Throttle
from issuer.oauth.client_auth import ClientAuthenticator
from issuer.oauth.errors import InvalidGrant, InvalidRequest
from issuer.oauth.refresh_tokens import RefreshTokenStore
from issuer.oauth.revoked_tokens import AccessTokenRef, RevokedTokens
from resource_server.errors import InvalidToken
from resource_server.verify import Verifier

log = logging.getLogger("issuer.audit")


class RevocationEndpoint:
    """Revokes a client's own tokens; unknown tokens are not an error (section 2.2)."""

    def __init__(
        self,
        throttle: Throttle,
        clients: ClientAuthenticator,
        refresh_tokens: RefreshTokenStore,
        revoked: RevokedTokens,
        verifier: Verifier,
        clock: Callable[[], float] = time.time,
    ):
        self._throttle = throttle
        self._clients = clients
        self._refresh_tokens = refresh_tokens
        self._revoked = revoked
        self._verifier = verifier
        self._clock = clock

    async def revoke(self, form: dict[str, str], authorization: str | None, ip: str) -> None:
        """Revoke the token if it is ours and the client's."""
        await self._throttle.check_address(ip)
        client = await self._clients.require(form, authorization, ip)
        token = form.get("token")
        if token is None:
            raise InvalidRequest("token is required")
        now = int(self._clock())
        # token_type_hint is only a hint (RFC 7009 section 2.1): both kinds are always tried.
        refresh = await run_in_threadpool(self._refresh_tokens.find, token)
        if refresh is not None:
            if refresh.client_id != client.client_id:
                raise InvalidGrant("the token was issued to another client")
            # Section 2.1: access tokens of the same grant are invalidated too.
            await run_in_threadpool(self._refresh_tokens.revoke_family, refresh.family_id, now)
            log.info("refresh token revoked client_id=%s ip=%s", client.client_id, ip)
            return
        try:
            claims = await self._verifier.verify(token)
        except InvalidToken:
            return  # section 2.2: invalid tokens get 200 as well
        if claims.client_id != client.client_id:
            raise InvalidGrant("the token was issued to another client")
        jti = claims.raw["jti"]
        await self._revoked.revoke([AccessTokenRef(jti, claims.exp)], now)
        log.info("access token revoked client_id=%s jti=%s ip=%s", client.client_id, jti, ip)
