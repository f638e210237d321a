"""Token endpoint grants: from the request's parameters to an issued token."""

import logging
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from issuer.errors import InvalidGrant, InvalidRequest, UnsupportedGrantType
from issuer.passwords import PasswordHasher
from issuer.scopes import format_scope, grant_scope
from issuer.settings import Settings
from issuer.tokens import TokenSigner
from issuer.users import UserRepository

log = logging.getLogger(__name__)

# One message for unknown user, wrong password and disabled user: no account enumeration.
_BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True)
class GrantContext:
    """What grants need, built once per app."""

    settings: Settings
    users: UserRepository
    hasher: PasswordHasher
    signer: TokenSigner


async def token_response(form: dict[str, str], ctx: GrantContext) -> dict[str, Any]:
    """Dispatch on `grant_type` and return the RFC 6749 section 5.1 body."""
    grant_type = form.get("grant_type")
    if grant_type is None and "username" in form and "password" in form:
        grant_type = "password"  # the classic `curl -d "username=...&password=..."`
    if grant_type is None:
        raise InvalidRequest("grant_type is required")
    if grant_type != "password":
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    return await password_grant(form, ctx)


async def password_grant(form: dict[str, str], ctx: GrantContext) -> dict[str, Any]:
    """RFC 6749 section 4.3: resource owner password credentials."""
    username, password = form.get("username"), form.get("password")
    if username is None or password is None:
        raise InvalidRequest("username and password are required")
    user = await run_in_threadpool(ctx.users.get_by_username, username)
    verification = await ctx.hasher.verify_async(password, user.password_hash if user else None)
    if user is None or not verification.ok or user.disabled:
        log.info("login failed for username=%r", username)
        raise InvalidGrant(_BAD_CREDENTIALS)
    if verification.new_hash is not None:
        await run_in_threadpool(ctx.users.update_password_hash, user.id, verification.new_hash)
    scope = grant_scope(form.get("scope"), user.scope_set)
    issued = ctx.signer.issue(
        subject=str(user.id),
        client_id=ctx.settings.default_client_id,
        audience=ctx.settings.audience,
        scope=scope,
        username=user.username,
    )
    log.info("login succeeded for username=%r", username)
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    if scope:
        body["scope"] = format_scope(scope)
    return body
