"""Token endpoint grants (RFC 6749 sections 4.3, 4.4 and 6): request parameters in, tokens out.

Hand-written rather than Authlib's grant classes: the contract's password grant works with no
client at all (the tutorial's `curl -d username=...&password=...`), which Authlib's grants
refuse; Authlib's server is synchronous and framework-bound (Flask, Django), where this one
keeps password hashing on a bounded pool off the event loop; and refresh rotation with
reuse detection needs an atomic store operation that Authlib leaves to the application anyway.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from issuer.client_auth import ClientCredentials, authenticate, read_credentials
from issuer.clients import CachedClients, Client
from issuer.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from issuer.metrics import IssuerMetrics
from issuer.passwords import PasswordHasher
from issuer.refresh_tokens import AccessTokenRef, FamilyRevoked, RefreshGrant, RefreshTokenStore
from issuer.revocations import RevocationList
from issuer.scopes import format_scope, grant_scope, parse_scope
from issuer.settings import Settings
from issuer.throttle import LoginThrottle
from issuer.tokens import IssuedToken, TokenSigner
from issuer.users import UserRepository

log = logging.getLogger("issuer.audit")

# One message for unknown user, wrong password and disabled user: no account enumeration.
_BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True)
class GrantContext:
    """What grants need, built once per app."""

    settings: Settings
    users: UserRepository
    clients: CachedClients
    hasher: PasswordHasher
    signer: TokenSigner
    refresh_tokens: RefreshTokenStore
    revocations: RevocationList
    throttle: LoginThrottle
    metrics: IssuerMetrics
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> int:
        return int(self.clock())


@dataclass(frozen=True)
class TokenRequest:
    form: dict[str, str]
    credentials: ClientCredentials | None
    ip: str


async def token_response(
    form: dict[str, str], authorization: str | None, ip: str, ctx: GrantContext
) -> dict[str, Any]:
    """Rate-limit, dispatch on `grant_type` and return the RFC 6749 section 5.1 body."""
    credentials = read_credentials(form, authorization)
    await ctx.throttle.check_request(ip, credentials.client_id if credentials else None)
    grant_type = form.get("grant_type")
    if grant_type is None and "username" in form and "password" in form:
        grant_type = "password"  # the classic `curl -d "username=...&password=..."`
    if grant_type is None:
        raise InvalidRequest("grant_type is required")
    grant = _GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    body = await grant(TokenRequest(form, credentials, ip), ctx)
    ctx.metrics.tokens_issued.labels(grant_type).inc()
    return body


async def password_grant(request: TokenRequest, ctx: GrantContext) -> dict[str, Any]:
    """RFC 6749 section 4.3: resource owner password credentials, with or without a client."""
    form, credentials = request.form, request.credentials
    client = await _allowed_client(credentials, ctx, "password") if credentials else None
    username, password = form.get("username"), form.get("password")
    if username is None or password is None:
        raise InvalidRequest("username and password are required")
    await ctx.throttle.check_login(username, request.ip)
    user = await run_in_threadpool(ctx.users.get_by_username, username)
    verification = await ctx.hasher.verify_async(password, user.password_hash if user else None)
    if user is None or not verification.ok or user.disabled:
        await ctx.throttle.record_failure(username, request.ip)
        ctx.metrics.login_failures.labels("bad_credentials").inc()
        log.info("login failed username=%r ip=%s", username, request.ip)
        raise InvalidGrant(_BAD_CREDENTIALS)
    await ctx.throttle.record_success(username, request.ip)
    if verification.new_hash is not None:
        await run_in_threadpool(ctx.users.update_password_hash, user.id, verification.new_hash)
    allowed = user.scope_set if client is None else user.scope_set & client.scope_set
    scope = grant_scope(form.get("scope"), allowed)
    issued = _issue(ctx, client, subject=str(user.id), scope=scope, username=user.username)
    body = _token_body(issued)
    if client is not None and client.allows("refresh_token"):
        body["refresh_token"] = await run_in_threadpool(
            lambda: ctx.refresh_tokens.start_family(
                client_id=client.client_id,
                user_id=user.id,
                scope=format_scope(scope),
                access=AccessTokenRef(issued.jti, issued.expires_at),
                now=ctx.now(),
            )
        )
    log.info(
        "login succeeded username=%r ip=%s client_id=%s",
        username,
        request.ip,
        _client_id(client, ctx),
    )
    return body


async def client_credentials_grant(request: TokenRequest, ctx: GrantContext) -> dict[str, Any]:
    """RFC 6749 section 4.4: a confidential client acting for itself (`sub` is the client)."""
    form, credentials = request.form, request.credentials
    if credentials is None:
        raise InvalidClient("client authentication is required")
    client = await _allowed_client(credentials, ctx, "client_credentials", require_secret=True)
    scope = grant_scope(form.get("scope"), client.scope_set)
    # No refresh token (section 4.4.3): the client can simply authenticate again.
    return _token_body(_issue(ctx, client, subject=client.client_id, scope=scope))


async def refresh_token_grant(request: TokenRequest, ctx: GrantContext) -> dict[str, Any]:
    """RFC 6749 section 6, with rotation and reuse detection (RFC 9700 section 4.14.2)."""
    form, credentials = request.form, request.credentials
    if credentials is None:
        raise InvalidClient("client authentication (or client_id for a public client) is required")
    client = await _allowed_client(credentials, ctx, "refresh_token")
    token = form.get("refresh_token")
    if token is None:
        raise InvalidRequest("refresh_token is required")
    requested = form.get("scope")
    now = ctx.now()

    def issue(grant: RefreshGrant) -> tuple[IssuedToken, AccessTokenRef]:
        user = ctx.users.get_by_id(grant.user_id)
        if user is None or user.disabled:
            raise InvalidGrant("the user of this refresh token can no longer log in")
        # Never wider than the original grant, nor than what user and client hold today.
        allowed = frozenset(parse_scope(grant.scope)) & user.scope_set & client.scope_set
        scope = (
            grant_scope(requested, allowed)
            if requested
            else tuple(s for s in parse_scope(grant.scope) if s in allowed)
        )
        issued = _issue(ctx, client, subject=str(user.id), scope=scope, username=user.username)
        return issued, AccessTokenRef(issued.jti, issued.expires_at)

    try:
        issued, successor = await run_in_threadpool(
            ctx.refresh_tokens.rotate, token, client.client_id, now, issue
        )
    except FamilyRevoked as exc:
        await ctx.revocations.revoke(exc.access_tokens, now)
        log.warning(
            "refresh token reuse; session revoked client_id=%s ip=%s", client.client_id, request.ip
        )
        raise
    body = _token_body(issued)
    body["refresh_token"] = successor
    return body


_GRANTS = {
    "password": password_grant,
    "client_credentials": client_credentials_grant,
    "refresh_token": refresh_token_grant,
}


async def _allowed_client(
    credentials: ClientCredentials, ctx: GrantContext, grant_type: str, require_secret: bool = False
) -> Client:
    client = await authenticate(ctx.clients, credentials, require_secret=require_secret)
    if not client.allows(grant_type):
        raise UnauthorizedClient(f"client {client.client_id} may not use grant_type {grant_type}")
    return client


def _issue(
    ctx: GrantContext,
    client: Client | None,
    *,
    subject: str,
    scope: tuple[str, ...],
    username: str | None = None,
) -> IssuedToken:
    settings = ctx.settings
    audience: str | list[str] = settings.audience
    ttl = settings.access_token_ttl
    if client is not None:
        audiences = client.audience_list
        if audiences:
            audience = audiences[0] if len(audiences) == 1 else audiences
        # A client may shorten, never lengthen, the TTL that key retirement is paced by.
        ttl = min(client.access_token_ttl or ttl, ttl)
    return ctx.signer.issue(
        subject=subject,
        client_id=_client_id(client, ctx),
        audience=audience,
        scope=scope,
        username=username,
        ttl=ttl,
    )


def _client_id(client: Client | None, ctx: GrantContext) -> str:
    return client.client_id if client is not None else ctx.settings.default_client_id


def _token_body(issued: IssuedToken) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    if issued.scope:
        body["scope"] = format_scope(issued.scope)
    return body
