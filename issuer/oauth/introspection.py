"""`POST /introspect` (RFC 7662) for authenticated confidential clients."""

import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from issuer.oauth.client_auth import require_client
from issuer.oauth.clients import CachedClients
from issuer.oauth.errors import InvalidRequest
from issuer.oauth.refresh_tokens import RefreshTokenStore
from issuer.oauth.revoked_tokens import RevokedTokens
from resource_server.errors import InvalidToken
from resource_server.verify import Verifier

INACTIVE: dict[str, Any] = {"active": False}
# Section 2.2: the members an active access token's answer may carry, copied from its claims.
_ACCESS_TOKEN_MEMBERS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti")


class IntrospectionEndpoint:
    """A token's state; anything not valid, revoked or not visible to the client is inactive."""

    def __init__(
        self,
        issuer: str,
        clients: CachedClients,
        refresh_tokens: RefreshTokenStore,
        revoked: RevokedTokens,
        verifier: Verifier,
        clock: Callable[[], float] = time.time,
    ):
        self._issuer = issuer
        self._clients = clients
        self._refresh_tokens = refresh_tokens
        self._revoked = revoked
        self._verifier = verifier
        self._clock = clock

    async def introspect(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        client = await require_client(form, authorization, self._clients, require_secret=True)
        token = form.get("token")
        if token is None:
            raise InvalidRequest("token is required")
        now = int(self._clock())
        refresh = await run_in_threadpool(self._refresh_tokens.find_usable, token, now)
        if refresh is not None:
            # Only its own client may see a refresh token.
            if refresh.client_id != client.client_id:
                return INACTIVE
            return {
                "active": True,
                "token_type": "refresh_token",
                "client_id": refresh.client_id,
                "sub": str(refresh.user_id),
                "scope": refresh.scope,
                "iat": refresh.created_at,
                "exp": min(refresh.idle_expires_at, refresh.family_expires_at),
                "iss": self._issuer,
            }
        try:
            claims = await self._verifier.verify(token)
        except InvalidToken:
            return INACTIVE
        if await self._revoked.is_revoked(claims.raw["jti"]):
            return INACTIVE
        body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
        body.update(
            {name: claims.raw[name] for name in _ACCESS_TOKEN_MEMBERS if name in claims.raw}
        )
        if claims.username is not None:
            body["username"] = claims.username
        return body
