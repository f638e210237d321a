"""The authorization endpoint's decisions (RFC 6749 4.1, RFC 7636, OpenID Connect Core 3.1).

A request is validated in two tiers (RFC 6749 4.1.2.1): while the client or its redirect URI
is not established, nothing can be sent back (`UntrustedRequest`: an error page at the
issuer); after that, every error goes back to the client's redirect URI with `error`,
`error_description`, `state` and `iss` (`AuthorizationError`, RFC 9207). A valid request
then needs a signed-in user (the sign-in page), maybe consent (the consent page), and ends in
a redirect carrying a fresh code.

A public client sending the browser to a loopback address (any redirect URI not https) could
be any program on the user's machine: any of them may listen on a port there. Its requests
are never approved silently from a session (RFC 8252 section 8.6): the user approves on the
consent page, whatever they approved before, unless they have just signed in for this very
request.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool

from issuer.accounts.users import User, UserRepository
from issuer.oauth import pkce
from issuer.oauth.clients import CachedClients, Client
from issuer.oauth.codes import MAX_NONCE_LENGTH, AuthorizationCodes, CodeGrant
from issuer.oauth.errors import InvalidScope, describable
from issuer.oauth.parameters import describe_repeated, read_parameters
from issuer.oauth.redirect_uris import matches, with_parameters
from issuer.oauth.scopes import grant_scope, held_by_user
from issuer.oidc.consents import Consents
from issuer.oidc.id_token_hints import IdTokenHints
from issuer.oidc.sessions import SessionEnded, SignedIn, still_open

PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# Each asks for the sign-in page: it is also where the user picks which account to use.
SIGN_IN_PROMPTS = frozenset({"login", "select_account"})
MAX_PARAMETER_LENGTH = 2048
# A browser request (authorization, logout) as it is sent on, percent-encoded: a redirect
# echoes it (sign-in, a POST turned GET, `state` in an error), and a proxy must read that
# `Location` whole. An OpenID Connect request without request objects needs far less.
MAX_REQUEST_LENGTH = 16_384


class UntrustedRequest(Exception):
    """The client or redirect URI is not established: show an error page, redirect nowhere."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


class AuthorizationError(Exception):
    """An error sent back to the client's redirect URI (RFC 6749 4.1.2.1)."""

    def __init__(self, location: str, error: str, description: str):
        super().__init__(description)
        self.location = location
        self.error = error


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scope: tuple[str, ...]
    scope_asked: bool  # sent by the client, or the client's registered scopes in its place
    state: str | None
    code_challenge: str
    nonce: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str
    # The user an `id_token_hint` names (its `sub`): a session of anyone else does not do.
    hinted_subject: str | None
    query: str  # the request as received, to come back to after signing in

    @property
    def client_unproven(self) -> bool:
        """Whether the client cannot be told apart from another program (module docstring)."""
        # Not https: a loopback address (one registered under an older, wider rule too).
        return self.client.is_public and not self.redirect_uri.startswith("https://")


@dataclass(frozen=True)
class NeedsLogin:
    request: AuthorizationRequest


@dataclass(frozen=True)
class NeedsConsent:
    request: AuthorizationRequest
    user: User
    scope: tuple[str, ...]


@dataclass(frozen=True)
class Redirect:
    location: str


Decision = NeedsLogin | NeedsConsent | Redirect


class AuthorizationEndpoint:
    def __init__(
        self,
        issuer: str,
        clients: CachedClients,
        users: UserRepository,
        consents: Consents,
        codes: AuthorizationCodes,
        hints: IdTokenHints,
        clock: Callable[[], float] = time.time,
    ):
        self._issuer = issuer
        self._clients = clients
        self._users = users
        self._consents = consents
        self._codes = codes
        self._hints = hints
        self._clock = clock

    async def parse(self, pairs: Iterable[tuple[str, str]], query: str) -> AuthorizationRequest:
        """The validated request; `UntrustedRequest` or `AuthorizationError` if it is not."""
        if len(query) > MAX_REQUEST_LENGTH:
            # Nothing of it is echoed, not even to a registered redirect URI.
            raise UntrustedRequest(f"the request is over {MAX_REQUEST_LENGTH} characters")
        parameters = read_parameters(pairs)
        params, repeated = parameters.values, parameters.repeated
        client = await self._client(params.get("client_id"), repeated)
        redirect_uri = params.get("redirect_uri")
        if "redirect_uri" in repeated or not redirect_uri:
            raise UntrustedRequest("the request must name its redirect_uri, once")
        if not matches(redirect_uri, client.redirect_uri_list):
            raise UntrustedRequest("the redirect_uri is not registered for this client")
        state = params.get("state")
        if state is not None and len(state) > MAX_PARAMETER_LENGTH:
            state = None  # refused below as too long: not echoed back, 2 KB and more of it

        def fail(error: str, description: str) -> AuthorizationError:
            return AuthorizationError(
                self._location(redirect_uri, state, error, description), error, description
            )

        if repeated:
            raise fail("invalid_request", describe_repeated(repeated))
        # OpenID Connect Core 3.1.2.6 names an error for each way of sending a request object,
        # and 6.1, 6.2 say it "MUST" be returned: before the length rule, which a signed
        # request object easily breaks.
        if "request" in params:
            raise fail("request_not_supported", "request objects are not supported")
        if "request_uri" in params:
            raise fail("request_uri_not_supported", "request objects are not supported")
        # An ID token may be longer (a long client id or nonce, a 4096-bit key): the hint
        # reader has its own bound, and the request's length bounds it too.
        if any(
            len(value) > MAX_PARAMETER_LENGTH
            for name, value in params.items()
            if name != "id_token_hint"
        ):
            raise fail("invalid_request", "a parameter is too long")
        if parameters.holds_nul:
            raise fail("invalid_request", "a parameter holds a NUL character")
        if len(params.get("nonce", "")) > MAX_NONCE_LENGTH:
            raise fail("invalid_request", f"nonce must be at most {MAX_NONCE_LENGTH} characters")
        response_type = params.get("response_type")
        if response_type is None:
            raise fail("invalid_request", "response_type is required (code)")
        if response_type != "code":
            raise fail("unsupported_response_type", "response_type must be code")
        # The code comes back in the query; an app waiting for it elsewhere would never see it.
        if params.get("response_mode", "query") != "query":
            raise fail("invalid_request", "response_mode must be query")
        if not client.allows("authorization_code"):
            raise fail("unauthorized_client", "this client may not use the authorization code flow")
        challenge = params.get("code_challenge")
        if not challenge:
            raise fail("invalid_request", "code_challenge is required (PKCE, S256)")
        if params.get("code_challenge_method") != pkce.METHOD:
            raise fail("invalid_request", "code_challenge_method must be S256")
        if not pkce.valid_challenge(challenge):
            raise fail("invalid_request", "code_challenge must be 43 base64url characters")
        # Space-delimited (OpenID Connect Core 3.1.2.1): str.split() would also split on tabs,
        # NBSP, U+3000..., and read "login\u00a0consent" as two values, "\u2003" as none.
        prompt = frozenset(params.get("prompt", "").split(" ")) - {""}
        if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
            raise fail(
                "invalid_request", "prompt must be none, or any of login, consent, select_account"
            )
        max_age = params.get("max_age")
        if max_age is not None and not (max_age.isascii() and max_age.isdigit()):
            raise fail("invalid_request", "max_age must be a number of seconds")
        try:
            scope = grant_scope(params.get("scope"), client.scope_set)
        except InvalidScope as exc:
            raise fail("invalid_scope", exc.description or "invalid scope") from None
        hinted_subject = None
        if "id_token_hint" in params:
            raw_hint = params["id_token_hint"]
            hint = self._hints.read(raw_hint)
            if hint is not None and hint.subject is not None:
                hinted_subject = hint.subject
            elif raw_hint.count(".") == 2:
                # A JWT we cannot read as ours: most often our own ID token whose key has
                # since retired. It names nobody the session could be, so the user signs in.
                hinted_subject = ""
            else:
                raise fail("invalid_request", "id_token_hint is not an ID token")
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            scope=scope,
            scope_asked="scope" in params,
            state=state,
            code_challenge=challenge,
            nonce=params.get("nonce"),
            prompt=prompt,
            max_age=int(max_age) if max_age is not None else None,
            login_hint=params.get("login_hint", ""),
            hinted_subject=hinted_subject,
            query=query,
        )

    async def decide(
        self,
        request: AuthorizationRequest,
        signed_in: SignedIn | None,
        just_signed_in: bool = False,
    ) -> Decision:
        """What happens next for this browser: sign in, consent, or a code. `just_signed_in`:
        the user typed their password for this request a moment ago (the sign-in form's
        answer), which is the interaction a client that cannot be told apart needs."""
        user = await self._signed_in_user(request, signed_in)
        if user is None or signed_in is None:
            if "none" in request.prompt:
                raise self.error(request, "login_required", "the user must sign in")
            return NeedsLogin(request)
        scope = held_by_user(request.scope, user.scope_set)
        if await self._must_ask(request, user, scope, just_signed_in):
            # Before the scope is found empty: under prompt=none the app learns nothing of
            # what the user holds (OpenID Connect Core 3.1.2.6).
            if "none" in request.prompt:
                raise self.error(request, "consent_required", "the user must approve this app")
            return NeedsConsent(request, user, self._scope_for(request, user))
        return await self._approved(request, user, signed_in, self._scope_for(request, user))

    async def _must_ask(
        self, request: AuthorizationRequest, user: User, scope: tuple[str, ...], interacted: bool
    ) -> bool:
        # `prompt=consent` asks whatever the client's registration (OpenID Connect 3.1.2.1).
        if "consent" in request.prompt or (request.client_unproven and not interacted):
            return True
        return request.client.require_consent and not await run_in_threadpool(
            self._consents.covers, user.id, request.client.client_id, scope
        )

    async def consent(
        self, request: AuthorizationRequest, signed_in: SignedIn | None, shown_to: str, allow: bool
    ) -> Decision:
        """The answer on the consent page shown to the user `shown_to` (their `sub`). A session
        that no longer satisfies the request (ended, or too old for its `prompt` or `max_age`)
        means signing in again; one that is now another user's (signed in from another tab)
        means asking that user: an answer counts only for whom the page was shown to."""
        user = await self._signed_in_user(request, signed_in)
        if user is None or signed_in is None:
            return NeedsLogin(request)
        if str(user.id) != shown_to:
            return NeedsConsent(request, user, self._scope_for(request, user))
        if not allow:
            raise self.error(request, "access_denied", "the user denied the request")
        scope = self._scope_for(request, user)
        now = int(self._clock())
        await run_in_threadpool(
            self._consents.remember, user.id, request.client.client_id, scope, now
        )
        return await self._approved(request, user, signed_in, scope)

    async def _approved(
        self,
        request: AuthorizationRequest,
        user: User,
        signed_in: SignedIn,
        scope: tuple[str, ...],
    ) -> Decision:
        """The redirect carrying a new code bound to this request, user and sign-in; or
        signing in again if the session ended before the code was stored."""
        grant = CodeGrant(
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            scope=" ".join(scope),
            user_id=user.id,
            auth_time=signed_in.auth_time,
            session_hash=signed_in.id_hash,
        )
        try:
            code = await run_in_threadpool(
                self._codes.issue, grant, int(self._clock()), still_open(signed_in)
            )
        except SessionEnded:
            if "none" in request.prompt:
                raise self.error(request, "login_required", "the user must sign in") from None
            return NeedsLogin(request)
        return Redirect(
            with_parameters(
                request.redirect_uri, {"code": code, "state": request.state, "iss": self._issuer}
            )
        )

    def error(
        self, request: AuthorizationRequest, error: str, description: str
    ) -> AuthorizationError:
        location = self._location(request.redirect_uri, request.state, error, description)
        return AuthorizationError(location, error, description)

    async def _signed_in_user(
        self, request: AuthorizationRequest, signed_in: SignedIn | None
    ) -> User | None:
        """The session's user if the session satisfies the request (OpenID Connect 3.1.2.1:
        `prompt=login` or `select_account` and a sign-in older than `max_age` ask for the
        password, and an `id_token_hint` naming someone else asks for a sign-in, or is
        `login_required` under `prompt=none`)."""
        if signed_in is None or request.prompt & SIGN_IN_PROMPTS:
            return None
        age = int(self._clock()) - signed_in.auth_time
        # max_age=0 is prompt=login: a sign-in within the same second has a whole-second age
        # of 0, which is not over 0.
        if request.max_age is not None and (request.max_age == 0 or age > request.max_age):
            return None
        if request.hinted_subject is not None and request.hinted_subject != str(signed_in.user_id):
            return None
        user = await run_in_threadpool(self._users.get_by_id, signed_in.user_id)
        # Not a sign-in after the last sign-out everywhere (whole seconds: one of its very
        # second may have come before it), as for a token's `iat`: /token refuses the codes
        # of such a sign-in, so it signs in again rather than get codes that never work.
        return user if user is not None and user.honours(signed_in.auth_time) else None

    async def _client(self, client_id: str | None, repeated: frozenset[str]) -> Client:
        if not client_id or "client_id" in repeated:
            raise UntrustedRequest("the request must name its client_id, once")
        client = await self._clients.get(client_id)
        if client is None or client.disabled:
            raise UntrustedRequest("the client is not registered")
        return client

    def _scope_for(self, request: AuthorizationRequest, user: User) -> tuple[str, ...]:
        # API scopes only as far as the user holds them (narrowed, RFC 6749 3.3).
        scope = held_by_user(request.scope, user.scope_set)
        if request.scope_asked and not scope:
            # The token answer would have to say its scope differs (RFC 6749 5.1), and an
            # empty scope cannot be said: nothing asked for can be granted.
            raise self.error(
                request, "access_denied", "the user holds none of the requested scopes"
            )
        return scope

    def _location(self, redirect_uri: str, state: str | None, error: str, description: str) -> str:
        params = {"error": error, "error_description": describable(description), "state": state}
        return with_parameters(redirect_uri, {**params, "iss": self._issuer})


def after_sign_in(query: str) -> str:
    """The request to return to once the user has signed in: its `prompt=login` (or
    `select_account`), `max_age` and `id_token_hint` are satisfied by the sign-in that just
    happened (`max_age=0` would otherwise fail again a second later; the sign-in itself
    answers a hint naming another user with `login_required`, and one naming nobody it could
    read, which would ask again for ever, with whoever signed in)."""
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in ("max_age", "id_token_hint"):
            continue
        if name == "prompt":
            value = " ".join(p for p in value.split(" ") if p and p not in SIGN_IN_PROMPTS)
            if not value:
                continue
        pairs.append((name, value))
    return urlencode(pairs)
