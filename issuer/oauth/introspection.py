"""`POST /introspect` (RFC 7662) for authenticated confidential clients.

Section 4: the answer is only for whom it concerns. An access token is described only to a
client registered as a resource server for one of its audiences (`--resource-server AUD`)
or to the client it was issued to; a refresh token only to its own client. Everyone else
learns `{"active": false}`, exactly what an unknown token gives. A token of a user, or of a
client, that has been disabled or deleted is inactive too: it could not be refreshed, nor used
at `/userinfo`.
"""

import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from issuer.accounts.users import UserRepository, user_id_of
from issuer.limits.throttle import Throttle
from issuer.oauth.client_auth import ClientAuthenticator
from issuer.oauth.clients import ClientRepository
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
        throttle: Throttle,
        clients: ClientAuthenticator,
        refresh_tokens: RefreshTokenStore,
        revoked: RevokedTokens,
        verifier: Verifier,
        users: UserRepository,
        registered: ClientRepository,
        clock: Callable[[], float] = time.time,
    ):
        self._issuer = issuer
        self._users = users
        self._registered = registered
        self._throttle = throttle
        self._clients = clients
        self._refresh_tokens = refresh_tokens
        self._revoked = revoked
        self._verifier = verifier
        self._clock = clock

    async def introspect(
        self, form: dict[str, str], authorization: str | None, ip: str
    ) -> dict[str, Any]:
        await self._throttle.check_address(ip)
        client = await self._clients.require(form, authorization, ip, require_secret=True)
        token = form.get("token")
        if token is None:
            raise InvalidRequest("token is required")
        now = int(self._clock())
        refresh = await run_in_threadpool(self._refresh_tokens.find_usable, token, now)
        if refresh is not None:
            # Signing out everywhere revoked the families it ended: the user's state is enough.
            if refresh.client_id != client.client_id or not await self._may_act(refresh.user_id):
                return INACTIVE
            # RFC 7662 section 2.2's token_type is an access-token type: omitted here.
            answer: dict[str, Any] = {
                "active": True,
                "client_id": refresh.client_id,
                "sub": str(refresh.user_id),
                "iat": refresh.created_at,
                "exp": min(refresh.idle_expires_at, refresh.family_expires_at),
                "iss": self._issuer,
            }
            # A grant of no scope has none to name: "" is no RFC 6749 3.3 scope (and an
            # access token of such a grant carries no `scope` claim either).
            if refresh.scope:
                answer["scope"] = refresh.scope
            return answer
        try:
            claims = await self._verifier.verify(token)
        except InvalidToken:
            return INACTIVE
        if claims.client_id != client.client_id and not client.serves(claims.raw["aud"]):
            return INACTIVE
        if await self._revoked.is_revoked(claims.raw["jti"]):
            return INACTIVE
        user_id = user_id_of(claims.sub)
        if user_id is not None and not await self._may_act(user_id, claims.raw["iat"]):
            return INACTIVE
        if claims.client_id != client.client_id and not await self._registered.still_serves(
            claims.client_id
        ):
            return INACTIVE
        body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
        body.update(
            {name: claims.raw[name] for name in _ACCESS_TOKEN_MEMBERS if name in claims.raw}
        )
        if claims.username is not None:
            body["username"] = claims.username
        return body

    async def _may_act(self, user_id: int, issued_at: object = None) -> bool:
        """Whether the user still exists and is not disabled, and (given an access token's
        `iat`) has not been signed out everywhere since the token was issued."""
        user = await run_in_threadpool(self._users.get_by_id, user_id)
        if user is None or user.disabled:
            return False
        return issued_at is None or user.honours(issued_at)
