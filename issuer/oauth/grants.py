"""Token endpoint grants (RFC 6749 sections 4.1, 4.3, 4.4 and 6): request parameters in, tokens
out.

Hand-written rather than Authlib's grant classes: the password grant here works with no
client at all (the tutorial's `curl -d username=...&password=...`), which Authlib's grants
refuse; Authlib's server is synchronous and framework-bound (Flask, Django), where this one
keeps password hashing on a bounded pool off the event loop; and refresh rotation with
reuse detection needs an atomic store operation that Authlib leaves to the application anyway.
"""

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from issuer.accounts.users import UserRepository
from issuer.limits.throttle import Throttle
from issuer.metrics import IssuerMetrics
from issuer.oauth import pkce
from issuer.oauth.client_auth import ClientAuthenticator, ClientCredentials, read_credentials
from issuer.oauth.clients import GRANT_TYPES, Client
from issuer.oauth.codes import (
    AuthorizationCodes,
    CodeGrant,
    CodeReused,
    Issued,
    NotTheCodesRequest,
)
from issuer.oauth.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from issuer.oauth.password_login import PasswordLogin, still_stands
from issuer.oauth.refresh_tokens import FamilyRevoked, RefreshGrant, RefreshTokenStore
from issuer.oauth.revoked_tokens import AccessTokenRef, RevokedTokens
from issuer.oauth.scopes import format_scope, grant_scope, held_by_user, parse_scope
from issuer.oauth.tokens import IssuedToken, TokenSigner

log = logging.getLogger("issuer.audit")
# What a grant type's name looks like (RFC 6749 A.10: a name or an absolute URI).
_GRANT_TYPE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,100}")


class TokenRequest(NamedTuple):  # made per request: a frozen dataclass costs 3x
    form: dict[str, str]
    credentials: ClientCredentials | None
    ip: str


@dataclass(frozen=True)
class IssuancePolicy:
    """What a token gets when its client says nothing else (from `Settings`)."""

    audience: str
    access_token_ttl: int
    # RFC 9068 requires `client_id`; tokens from a request that names no client carry this one.
    default_client_id: str


class TokenEndpoint:
    """`POST /token`: rate-limit, dispatch on `grant_type`, return the RFC 6749 5.1 body."""

    def __init__(
        self,
        policy: IssuancePolicy,
        users: UserRepository,
        logins: PasswordLogin,
        clients: ClientAuthenticator,
        signer: TokenSigner,
        codes: AuthorizationCodes,
        refresh_tokens: RefreshTokenStore,
        revoked: RevokedTokens,
        throttle: Throttle,
        metrics: IssuerMetrics,
        clock: Callable[[], float] = time.time,
    ):
        self._policy = policy
        self._users = users
        self._logins = logins
        self._clients = clients
        self._signer = signer
        self._codes = codes
        self._refresh_tokens = refresh_tokens
        self._revoked = revoked
        self._throttle = throttle
        self._metrics = metrics
        self._clock = clock
        self._grants: dict[str, Callable[[TokenRequest], Awaitable[dict[str, Any]]]] = {
            "authorization_code": self._authorization_code,
            "password": self._password,
            "client_credentials": self._client_credentials,
            "refresh_token": self._refresh_token,
        }
        assert set(self._grants) == set(GRANT_TYPES), "every registrable grant type is served"
        self._issued = {grant: metrics.tokens_issued.labels(grant) for grant in self._grants}

    async def respond(
        self, form: dict[str, str], authorization: str | None, ip: str
    ) -> dict[str, Any]:
        """The token response for a parsed form; `OAuthError` for every refusal."""
        await self._throttle.check_address(ip)
        credentials = read_credentials(form, authorization)
        grant_type = form.get("grant_type")
        if grant_type is None and "username" in form and "password" in form:
            grant_type = "password"  # the classic `curl -d "username=...&password=..."`
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        grant = self._grants.get(grant_type)
        if grant is None:
            # Quoted only if it could be a grant type's name: a value such as
            # "client_credentials;client_secret=..." (a form split on ";") is not sent back.
            named = f" {grant_type!r}" if _GRANT_TYPE_NAME.fullmatch(grant_type) else ""
            raise UnsupportedGrantType(f"grant_type{named} is not supported")
        body = await grant(TokenRequest(form, credentials, ip))
        self._issued[grant_type].inc()
        return body

    async def _authorization_code(self, request: TokenRequest) -> dict[str, Any]:
        """RFC 6749 section 4.1.3 with PKCE (RFC 7636 section 4.6) and OpenID Connect tokens."""
        form = request.form
        client = await self._allowed_client(request.credentials, request.ip, "authorization_code")
        code, redirect_uri = form.get("code"), form.get("redirect_uri")
        verifier = form.get("code_verifier")
        if code is None or redirect_uri is None or verifier is None:
            raise InvalidRequest("code, redirect_uri and code_verifier are required")
        now = self._now()

        def issue(grant: CodeGrant, session: Session) -> tuple[dict[str, Any], Issued]:
            # One answer for the three: a refused request leaves the code unspent, so a
            # stranger retrying it must not learn which binding was wrong.
            if (
                grant.client_id != client.client_id
                or grant.redirect_uri != redirect_uri
                or not pkce.verifies(verifier, grant.code_challenge)
            ):
                raise NotTheCodesRequest(
                    "the code was not issued to this client, redirect_uri and code_verifier"
                )
            # In the code's transaction: a second connection per exchange, wanted while this
            # one is held, starved the pool under load.
            user = self._users.get_by_id(grant.user_id, session)
            if user is None or user.disabled:
                raise InvalidGrant("the user can no longer log in")
            # Signed out everywhere since the sign-in the code came from: its unused codes
            # are being dropped, and one exchanged meanwhile must not yield a token that
            # outlives the new password (`honours` would take it: its `iat` is later).
            if user.signed_out_at is not None and grant.auth_time <= user.signed_out_at:
                raise InvalidGrant("the user has signed out everywhere since this code was issued")
            scope = parse_scope(grant.scope)
            issued = self._issue(client, subject=str(user.id), scope=scope, username=user.username)
            access = AccessTokenRef(issued.jti, issued.expires_at)
            body = _token_body(issued)
            family_id = None
            if client.allows("refresh_token"):
                body["refresh_token"], family_id = self._refresh_tokens.start_family_in(
                    session,
                    client_id=client.client_id,
                    user_id=user.id,
                    scope=grant.scope,
                    access=access,
                    now=now,
                )
            if "openid" in scope:
                body["id_token"] = self._signer.id_token(
                    subject=str(user.id),
                    client_id=client.client_id,
                    auth_time=grant.auth_time,
                    nonce=grant.nonce,
                    access_token=issued.access_token,
                )
            return body, Issued(access, family_id)

        try:
            body: dict[str, Any] = await run_in_threadpool(self._codes.redeem, code, now, issue)
        except CodeReused as exc:
            revoked = exc.issued is not None and exc.sent_by_its_client(
                client.client_id, redirect_uri, verifier
            )
            if revoked and exc.issued is not None:
                if exc.issued.family_id is None:
                    await self._revoked.revoke([exc.issued.access], now)
                else:  # the family's first token holds the code's access token
                    await run_in_threadpool(
                        self._refresh_tokens.revoke_family, exc.issued.family_id, now
                    )
            log.warning(
                "authorization code reuse; its tokens %s client_id=%s ip=%s",
                "revoked" if revoked else "kept (the replay did not prove the code's client)",
                client.client_id,
                request.ip,
            )
            raise
        log.info("authorization code redeemed client_id=%s ip=%s", client.client_id, request.ip)
        return body

    async def _password(self, request: TokenRequest) -> dict[str, Any]:
        """RFC 6749 section 4.3: resource owner password credentials, with or without a client."""
        form, credentials = request.form, request.credentials
        client = (
            await self._allowed_client(credentials, request.ip, "password") if credentials else None
        )
        username, password = form.get("username"), form.get("password")
        if username is None or password is None:
            raise InvalidRequest("username and password are required")
        user = await self._logins.verify(username, password, request.ip)
        allowed = user.scope_set if client is None else user.scope_set & client.scope_set
        scope = grant_scope(form.get("scope"), allowed)
        issued = await self._issue_async(
            client, subject=str(user.id), scope=scope, username=user.username
        )
        body = _token_body(issued)
        if client is not None and client.allows("refresh_token"):
            body["refresh_token"] = await run_in_threadpool(
                lambda: self._refresh_tokens.start_family(
                    client_id=client.client_id,
                    user_id=user.id,
                    scope=format_scope(scope),
                    access=AccessTokenRef(issued.jti, issued.expires_at),
                    now=self._now(),
                    # Not if the user was signed out everywhere since the password was checked.
                    confirm=still_stands(user),
                )
            )
        log.info(
            "login succeeded username=%r ip=%s client_id=%s",
            user.username,
            request.ip,
            self._client_id(client),
        )
        return body

    async def _client_credentials(self, request: TokenRequest) -> dict[str, Any]:
        """RFC 6749 section 4.4: a confidential client acting for itself (`sub` is the client)."""
        client = await self._allowed_client(
            request.credentials, request.ip, "client_credentials", require_secret=True
        )
        scope = grant_scope(request.form.get("scope"), client.scope_set)
        # No refresh token (section 4.4.3): the client can simply authenticate again.
        return _token_body(
            await self._issue_async(client, subject=client_subject(client.client_id), scope=scope)
        )

    async def _refresh_token(self, request: TokenRequest) -> dict[str, Any]:
        """RFC 6749 section 6, with rotation and reuse detection (RFC 9700 section 4.14.2)."""
        form = request.form
        client = await self._allowed_client(request.credentials, request.ip, "refresh_token")
        token = form.get("refresh_token")
        if token is None:
            raise InvalidRequest("refresh_token is required")
        requested = form.get("scope")
        now = self._now()

        def issue(grant: RefreshGrant, session: Session) -> tuple[IssuedToken, AccessTokenRef]:
            user = self._users.get_by_id(grant.user_id, session)  # in the rotation's transaction
            if user is None or user.disabled:
                raise InvalidGrant("the user of this refresh token can no longer log in")
            # Never wider than the original grant, nor than what user and client hold today.
            held = held_by_user(parse_scope(grant.scope), user.scope_set)
            allowed = frozenset(held) & client.scope_set
            scope = (
                grant_scope(requested, allowed)
                if requested
                else tuple(s for s in parse_scope(grant.scope) if s in allowed)
            )
            if grant.scope and not scope:  # an empty scope cannot say it differs (RFC 6749 5.1)
                raise InvalidGrant("the user or client no longer holds any scope of this grant")
            issued = self._issue(client, subject=str(user.id), scope=scope, username=user.username)
            return issued, AccessTokenRef(issued.jti, issued.expires_at)

        try:
            issued, successor = await run_in_threadpool(
                self._refresh_tokens.rotate, token, client.client_id, now, issue
            )
        except FamilyRevoked:  # its access tokens were revoked with it
            log.warning(
                "refresh token reuse; session revoked client_id=%s ip=%s",
                client.client_id,
                request.ip,
            )
            raise
        body = _token_body(issued)
        body["refresh_token"] = successor
        return body

    async def _allowed_client(
        self,
        credentials: ClientCredentials | None,
        ip: str,
        grant_type: str,
        require_secret: bool = False,
    ) -> Client:
        """The authenticated client, registered for `grant_type`; `InvalidClient` if none."""
        if credentials is None:
            raise InvalidClient(
                "client authentication (or client_id for a public client) is required"
            )
        client = await self._clients.authenticate(credentials, ip, require_secret)
        if not client.allows(grant_type):
            raise UnauthorizedClient(
                f"client {client.client_id} may not use grant_type {grant_type}"
            )
        return client

    def _issue(
        self,
        client: Client | None,
        *,
        subject: str,
        scope: tuple[str, ...],
        username: str | None = None,
    ) -> IssuedToken:
        """Sign in this thread (the grants that already run on a worker thread)."""
        audience, ttl = self._audience_and_ttl(client)
        return self._signer.issue(
            subject=subject,
            client_id=self._client_id(client),
            audience=audience,
            scope=scope,
            username=username,
            ttl=ttl,
        )

    async def _issue_async(
        self,
        client: Client | None,
        *,
        subject: str,
        scope: tuple[str, ...],
        username: str | None = None,
    ) -> IssuedToken:
        """Sign on the signer's pool (the grants that run on the event loop)."""
        audience, ttl = self._audience_and_ttl(client)
        return await self._signer.issue_async(
            subject=subject,
            client_id=self._client_id(client),
            audience=audience,
            scope=scope,
            username=username,
            ttl=ttl,
        )

    def _audience_and_ttl(self, client: Client | None) -> tuple[str | list[str], int]:
        audience: str | list[str] = self._policy.audience
        ttl = self._policy.access_token_ttl
        if client is not None:
            audiences = client.audience_list
            if audiences:
                audience = audiences[0] if len(audiences) == 1 else audiences
            ttl = client.token_ttl(ttl)
        return audience, ttl

    def _client_id(self, client: Client | None) -> str:
        return client.client_id if client is not None else self._policy.default_client_id

    def _now(self) -> int:
        return int(self._clock())


def client_subject(client_id: str) -> str:
    """The `sub` of a client acting for itself (RFC 9068 section 2.2).

    Users' subjects are their numeric ids and client ids cannot contain ":", so the two
    namespaces can never collide: a resource server tells them apart by the prefix.
    """
    return f"client:{client_id}"


def _token_body(issued: IssuedToken) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    if issued.scope:
        body["scope"] = format_scope(issued.scope)
    return body
