"""The UserInfo endpoint (OpenID Connect Core 5.3): claims about the user an access token
with the `openid` scope was issued for."""

from typing import Any

from starlette.concurrency import run_in_threadpool

from issuer.accounts.users import UserRepository, user_id_of
from issuer.oauth.clients import ClientRepository
from issuer.oauth.revoked_tokens import RevokedTokens
from resource_server.errors import InsufficientScope, InvalidToken
from resource_server.verify import Verifier


class UserinfoEndpoint:
    def __init__(
        self,
        verifier: Verifier,
        revoked: RevokedTokens,
        users: UserRepository,
        clients: ClientRepository,
    ):
        self._verifier = verifier
        self._revoked = revoked
        self._users = users
        self._clients = clients

    async def claims(self, token: str) -> dict[str, Any]:
        """`sub` and `preferred_username`, and `email` with the `email` scope.

        `InvalidToken` (401) for a token that is not valid, revoked or not a user's;
        `InsufficientScope` (403) without `openid`.
        """
        claims = await self._verifier.verify(token)
        if await self._revoked.is_revoked(claims.raw["jti"]):
            raise InvalidToken("the token has been revoked", reason="revoked")
        if "openid" not in claims.scope:
            raise InsufficientScope(("openid",))
        user_id, user = user_id_of(claims.sub), None
        if user_id is not None:
            user = await run_in_threadpool(self._users.get_by_id, user_id)
        if user is None:
            raise InvalidToken("the token's user does not exist", reason="invalid_claim")
        if user.disabled:  # not "does not exist": a developer would look for the wrong cause
            raise InvalidToken("the token's user is disabled", reason="invalid_claim")
        if not user.honours(claims.raw["iat"]):
            raise InvalidToken(
                "the token's user has been signed out everywhere since", reason="revoked"
            )
        if not await self._clients.still_serves(claims.client_id):
            raise InvalidToken("the token's client is no longer registered", reason="invalid_claim")
        body: dict[str, Any] = {"sub": claims.sub, "preferred_username": user.username}
        if "email" in claims.scope and user.email:
            body["email"] = user.email
        return body
