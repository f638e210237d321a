"""The browser side of signing in: `/authorize` (GET and POST), the sign-in and consent forms,
and `/logout` (GET and POST, with its confirmation page). Decisions live in `issuer.oidc`;
this module renders and redirects."""

import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from issuer.accounts.passwords import HashingBusy
from issuer.limits.throttle import Throttle, Throttled
from issuer.oauth.errors import InvalidGrant, InvalidRequest, OAuthError, TemporarilyUnavailable
from issuer.oauth.password_login import still_stands
from issuer.oauth.scopes import describe_scope
from issuer.oidc.authorize import (
    MAX_REQUEST_LENGTH,
    AuthorizationError,
    AuthorizationRequest,
    NeedsConsent,
    NeedsLogin,
    Redirect,
    UntrustedRequest,
    after_sign_in,
)
from issuer.oidc.id_token_hints import IdTokenHint
from issuer.web.deps import (
    Authorization,
    ClientAddress,
    Cookies,
    Limits,
    Logins,
    LogoutDep,
    ServiceName,
    Sessions,
)
from issuer.web.errors import is_outage
from issuer.web.forms import parse_query, read_form, read_form_pairs, read_query, read_query_pairs
from issuer.web.openapi import (
    AUTHORIZE_DOCS,
    AUTHORIZE_FORM_DOCS,
    AUTHORIZE_FORM_RESPONSES,
    AUTHORIZE_RESPONSES,
    LOGOUT_DOCS,
    LOGOUT_FORM_DOCS,
    LOGOUT_FORM_RESPONSES,
    LOGOUT_RESPONSES,
)
from issuer.web.pages import BrowserCookies, form_page, page, redirect

log = logging.getLogger("issuer.audit")
router = APIRouter()
# The pages' links, forms and redirects are relative references (RFC 3986 4.2), resolved
# against the page's own address: the issuer may sit under a path (ISSUER_URL
# https://host/auth, behind a proxy that maps /auth to it), where "/login" is another site's.
AUTHORIZE = "authorize?"
BAD_CREDENTIALS = "Incorrect username or password."
# The parameters of an RP-initiated logout request (RP-Initiated Logout 1.0 section 2).
LOGOUT_PARAMETERS = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")


# One route per method (each operation has its own id in the OpenAPI document).
@router.get(
    "/authorize",
    summary="Authorization endpoint (RFC 6749 4.1)",
    operation_id="authorize",
    response_class=HTMLResponse,
    responses=AUTHORIZE_RESPONSES,
    openapi_extra=AUTHORIZE_DOCS,
)
async def authorize(
    request: Request,
    endpoint: Authorization,
    sessions: Sessions,
    cookies: Cookies,
    service_name: ServiceName,
) -> Response:
    try:
        pairs = read_query_pairs(request)
    except OAuthError as exc:
        return _unreadable(service_name, exc)
    return await _authorize(request, endpoint, sessions, cookies, service_name, pairs)


@router.post(
    "/authorize",
    summary="Authorization endpoint, form-encoded (OpenID Connect 3.1.2.1)",
    operation_id="authorize_form",
    # It never answers 200 (FastAPI's default in the document): a redirect, or an error page.
    status_code=303,
    response_class=Response,
    responses=AUTHORIZE_FORM_RESPONSES,
    openapi_extra=AUTHORIZE_FORM_DOCS,
)
async def authorize_form(
    request: Request, endpoint: Authorization, service_name: ServiceName
) -> Response:
    """A valid request goes on as the same request by GET. An app's page posts it from its
    own site, and a cross-site POST carries none of the issuer's SameSite=Lax cookies: the
    session would go unseen (the user asked to sign in again, `prompt=none` refused) and the
    page's new CSRF cookie would replace the one of any sign-in form open in another tab.
    The top-level GET that follows a 303 carries them."""
    try:
        pairs = await read_form_pairs(request)
        auth = await endpoint.parse(pairs, urlencode(pairs))
    except OAuthError as exc:
        return _unreadable(service_name, exc)
    except UntrustedRequest as exc:
        return _refused(service_name, exc.description)
    except AuthorizationError as exc:
        return redirect(exc.location, 303)
    return redirect(AUTHORIZE + auth.query, 303)


async def _authorize(
    request: Request,
    endpoint: Authorization,
    sessions: Sessions,
    cookies: Cookies,
    service_name: str,
    pairs: Sequence[tuple[str, str]],
) -> Response:
    try:
        # The request as a query string: where the sign-in and consent pages come back to.
        auth = await endpoint.parse(pairs, urlencode(pairs))
        # From here the client and its redirect URI are known: an outage is redirected to
        # it too (`error_pages`), as RFC 6749 4.1.2.1's temporarily_unavailable.
        request.state.outage_answer = lambda description: (
            endpoint.error(auth, "temporarily_unavailable", description).location
        )
        signed_in = await run_in_threadpool(sessions.find, request.cookies.get(cookies.session))
        decision = await endpoint.decide(auth, signed_in)
    except UntrustedRequest as exc:
        return _refused(service_name, exc.description)
    except AuthorizationError as exc:
        return _answer_redirect(request, exc.location)
    if isinstance(decision, NeedsLogin):
        return _login_page(request, service_name, cookies, auth)
    if isinstance(decision, NeedsConsent):
        return _consent_page(request, service_name, cookies, decision)
    return _answer_redirect(request, decision.location)


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    endpoint: Authorization,
    logins: Logins,
    limits: Limits,
    sessions: Sessions,
    cookies: Cookies,
    address: ClientAddress,
    name: ServiceName,
) -> Response:
    form = await read_form(request)
    # The token endpoint's limits: per address first (every form read counts, a refused one
    # too), then per account in `verify`.
    throttled = await _address_throttled(limits, address)
    # A form a replica of the version before rendered says "/authorize?".
    return_to = form.get("return_to", "").removeprefix("/")
    if not cookies.csrf_ok(request, form):
        return _stale_form(name, return_to)
    if not return_to.startswith(AUTHORIZE):
        return _refused(name, "the sign-in form was not sent by this site")
    query = return_to.removeprefix(AUTHORIZE)
    try:
        auth = await endpoint.parse(_returned_request(query), query)
    except UntrustedRequest as exc:
        return _refused(name, exc.description)
    except AuthorizationError as exc:
        return redirect(exc.location, 303)
    username = form.get("username", "")
    try:
        if throttled is not None:
            raise throttled
        user = await logins.verify(username, form.get("password", ""), address)
    except InvalidGrant:
        return _login_page(request, name, cookies, auth, username, BAD_CREDENTIALS, 400)
    except Throttled as exc:
        error = f"Too many attempts. Try again in {_seconds(exc.retry_seconds)}."
        headers = {"Retry-After": str(exc.retry_seconds)}
        return _login_page(request, name, cookies, auth, username, error, 429, headers)
    except HashingBusy:
        error = "The service is busy. Try again in a moment."
        headers = {"Retry-After": "1"}
        return _login_page(request, name, cookies, auth, username, error, 503, headers)
    held = request.cookies.get(cookies.session)
    try:
        # Not if the user was signed out everywhere since the password was checked.
        session_id = await run_in_threadpool(sessions.start, user.id, held, still_stands(user))
    except InvalidGrant:
        return _login_page(request, name, cookies, auth, username, BAD_CREDENTIALS, 400)
    log.info(
        "browser sign-in succeeded username=%r ip=%s client_id=%s",
        user.username,
        address,
        auth.client.client_id,
    )
    if auth.hinted_subject and auth.hinted_subject != str(user.id):
        # OpenID Connect Core 3.1.2.1: the answer is positive only if the user the hint names
        # signed in. The app may be confirming who is at the keyboard; someone else is not
        # handed to it (signed in at the issuer all the same: the password was right).
        refused = endpoint.error(
            auth, "login_required", "the user who signed in is not the one id_token_hint names"
        )
        log.info(
            "browser sign-in not the user id_token_hint names; login_required username=%r "
            "client_id=%s",
            user.username,
            auth.client.client_id,
        )
        response: Response = redirect(refused.location, 303)
    else:
        response = await _signed_in_for(request, endpoint, sessions, name, query, session_id)
    cookies.set_session(response, session_id)
    return response


async def _signed_in_for(
    request: Request,
    endpoint: Authorization,
    sessions: Sessions,
    name: str,
    query: str,
    session_id: str,
) -> Response:
    """The answer to the request the user has just signed in for, decided here: typing the
    password for it is the interaction a client that cannot be told apart from another
    program needs (`issuer.oidc.authorize`), which a later visit to /authorize could not
    prove. A code goes straight to the app; consent (or a session that ended meanwhile) goes
    on at /authorize."""
    returned = after_sign_in(query)
    try:
        auth = await endpoint.parse(_returned_request(returned), returned)
        signed_in = await run_in_threadpool(sessions.find, session_id)
        decision = await endpoint.decide(auth, signed_in, just_signed_in=True)
    except UntrustedRequest as exc:
        return _refused(name, exc.description)
    except AuthorizationError as exc:
        return redirect(exc.location, 303)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # The new session stands (and replaced the browser's old one): its cookie must reach
        # the browser. /authorize answers the outage, to the app once it knows the client.
        return redirect(AUTHORIZE + returned, 303)
    if isinstance(decision, Redirect):
        return redirect(decision.location, 303)
    return redirect(AUTHORIZE + returned, 303)


@router.post("/consent", include_in_schema=False)
async def consent(
    request: Request,
    endpoint: Authorization,
    limits: Limits,
    sessions: Sessions,
    cookies: Cookies,
    address: ClientAddress,
    name: ServiceName,
) -> Response:
    form = await read_form(request)
    throttled = await _address_throttled(limits, address)  # every form counts, refused or not
    if not cookies.csrf_ok(request, form):
        return _stale_form(name, AUTHORIZE + form.get("request", ""))
    if throttled is not None:
        return _too_many(name, throttled)
    query = form.get("request", "")
    try:
        auth = await endpoint.parse(_returned_request(query), query)
        signed_in = await run_in_threadpool(sessions.find, request.cookies.get(cookies.session))
        answer = await endpoint.consent(
            auth, signed_in, form.get("user", ""), allow=form.get("decision") == "allow"
        )
    except UntrustedRequest as exc:
        return _refused(name, exc.description)
    except AuthorizationError as exc:
        return redirect(exc.location, 303)
    if not isinstance(answer, Redirect):
        # The session ended, is too old, or is now someone else's: ask again, from the start.
        return redirect(AUTHORIZE + query, 303)
    return redirect(answer.location, 303)


@router.get("/login", include_in_schema=False)
@router.get("/consent", include_in_schema=False)
async def form_address(name: ServiceName) -> Response:
    """The address of a form's answer, opened by itself (typed, reloaded, a bookmark): the
    routing's 405 JSON, as a page a browser can show. Registered after the forms' POST
    routes: the routing answers any other method with the `Allow` of the path's first
    route, which must be POST."""
    return page(
        "error.html",
        405,
        {"Allow": "POST"},
        service_name=name,
        title="Nothing to show here",
        heading="There is nothing to show at this address",
        message="It answers a sign-in form. Go back to the app and sign in from there.",
    )


def _returned_request(query: str) -> list[tuple[str, str]]:
    """The authorization request a sign-in or consent form returns to, read as strictly as
    `/authorize` read it: one that is not well-formed is no request of ours."""
    try:
        return parse_query(query, "the authorization request")
    except InvalidRequest as exc:
        raise UntrustedRequest(exc.description or exc.error) from None


@router.get(
    "/logout",
    summary="End the browser's session (RP-Initiated Logout 1.0)",
    response_class=HTMLResponse,
    responses=LOGOUT_RESPONSES,
    openapi_extra=LOGOUT_DOCS,
)
async def logout(
    request: Request, logout: LogoutDep, sessions: Sessions, cookies: Cookies, name: ServiceName
) -> Response:
    try:
        query = read_query(request)
    except OAuthError as exc:
        return _unreadable(name, exc, "sign-out")
    params = {key: query.get(key) for key in LOGOUT_PARAMETERS}
    if len(_encoded(params)) > MAX_REQUEST_LENGTH:
        return _refused(name, f"the request is over {MAX_REQUEST_LENGTH} characters", "sign-out")
    return await _logout(request, logout, sessions, cookies, name, params)


@router.post(
    "/logout",
    summary="End the browser's session, form-encoded (RP-Initiated Logout 1.0)",
    response_class=HTMLResponse,
    responses=LOGOUT_FORM_RESPONSES,
    openapi_extra=LOGOUT_FORM_DOCS,
)
async def logout_form(
    request: Request, logout: LogoutDep, sessions: Sessions, cookies: Cookies, name: ServiceName
) -> Response:
    try:
        form = await read_form(request)
    except OAuthError as exc:
        return _unreadable(name, exc, "sign-out")
    params = {key: form.get(key) for key in LOGOUT_PARAMETERS}
    sent = _encoded(params)
    if len(sent) > MAX_REQUEST_LENGTH:
        return _refused(name, f"the request is over {MAX_REQUEST_LENGTH} characters", "sign-out")
    if "csrf_token" not in form:
        # An app's logout request, sent as a form: on as a GET, which carries the issuer's
        # SameSite=Lax cookies where a cross-site POST carries none (see `authorize_form`).
        return redirect(f"logout?{sent}" if sent else "logout", 303)
    # The user's answer on the confirmation page.
    if not cookies.csrf_ok(request, form):
        return _stale_form(name)
    hint = logout.read_hint(params["id_token_hint"], params["client_id"])
    return await _end_session(request, logout, sessions, cookies, name, params, hint)


async def _logout(
    request: Request,
    logout: LogoutDep,
    sessions: Sessions,
    cookies: Cookies,
    name: str,
    params: dict[str, str | None],
) -> Response:
    """End the session at once when nothing but the user or the session's app can have sent
    the browser here (section 2): a link on the issuer's own pages, a hint issued in this
    session, or no session to end. Otherwise ask first, also when the browser does not say
    where the request came from (older browsers, and plain-http issuers, send no
    Sec-Fetch-Site), and for "none": typed or a bookmark, but also a link in an email or
    a chat, which anyone can send."""
    hint = logout.read_hint(params["id_token_hint"], params["client_id"])
    if request.headers.get("sec-fetch-site") == "same-origin":
        return await _end_session(request, logout, sessions, cookies, name, params, hint)
    session_id = request.cookies.get(cookies.session)
    signed_in = await run_in_threadpool(sessions.find, session_id)
    if signed_in is None or logout.may_end_at_once(hint, signed_in):
        return await _end_session(request, logout, sessions, cookies, name, params, hint)
    return form_page(
        request,
        cookies,
        "logout.html",
        service_name=name,
        title="Sign out",
        form_action="logout",
        fields={key: value for key, value in params.items() if value is not None},
    )


async def _end_session(
    request: Request,
    logout: LogoutDep,
    sessions: Sessions,
    cookies: Cookies,
    name: str,
    params: dict[str, str | None],
    hint: IdTokenHint | None,
) -> Response:
    await run_in_threadpool(sessions.end, request.cookies.get(cookies.session))
    location = await logout.redirect_after(
        hint, params["post_logout_redirect_uri"], params["state"]
    )
    if location is not None:
        response: Response = _answer_redirect(request, location)
    else:
        response = page(
            "signed_out.html",
            service_name=name,
            title="Signed out",
            message="You have been signed out.",
        )
    cookies.clear_session(response)
    return response


def _login_page(
    request: Request,
    service_name: str,
    cookies: BrowserCookies,
    auth: AuthorizationRequest,
    username: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return form_page(
        request,
        cookies,
        "login.html",
        status,
        headers,
        service_name=service_name,
        title="Sign in",
        client_name=auth.client.display_name,
        form_action="login",
        return_to=AUTHORIZE + auth.query,
        username=username,
        login_hint=auth.login_hint,
        error=error,
    )


def _consent_page(
    request: Request, service_name: str, cookies: BrowserCookies, decision: NeedsConsent
) -> Response:
    return form_page(
        request,
        cookies,
        "consent.html",
        service_name=service_name,
        title="Allow access",
        client_name=decision.request.client.display_name,
        username=decision.user.username,
        user_id=decision.user.id,
        scopes=[{"name": s, "description": describe_scope(s)} for s in decision.scope],
        form_action="consent",
        authorization_request=decision.request.query,
    )


def _refused(service_name: str, description: str, action: str = "sign-in") -> Response:
    """The error page for a request that cannot be answered at the app's redirect URI."""
    return _refused_page(service_name, description, action, 400, {})


def _unreadable(service_name: str, error: OAuthError, action: str = "sign-in") -> Response:
    """The error page for a request the endpoint could not read, with the error's own status
    and headers (413, 415 or 408 for a body it would not read)."""
    description = error.description or error.error
    return _refused_page(service_name, description, action, error.status_code, error.headers)


def _refused_page(
    service_name: str, description: str, action: str, status: int, headers: dict[str, str]
) -> Response:
    return page(
        "error.html",
        status,
        headers,
        service_name=service_name,
        title=f"{action.capitalize()} request refused",
        heading=f"This {action} request cannot be completed",
        message=f"The app that sent you here made an invalid request: {description}.",
    )


def error_pages(service_name: str) -> Callable[[Request, OAuthError], Response | None]:
    """What these routes answer for an error raised past their own answers (the database
    out of reach, a form the server will not read): a page, not the token endpoint's JSON.
    None for any other route (the route as matched, so a root path or a raw query cannot
    mislead it; the fronted /token has none)."""

    def error_page(request: Request, error: OAuthError) -> Response | None:
        if getattr(request.scope.get("route"), "path", None) not in _PAGE_PATHS:
            return None
        outage_answer = getattr(request.state, "outage_answer", None)
        if outage_answer is not None and isinstance(error, TemporarilyUnavailable):
            return _answer_redirect(request, outage_answer(error.description or error.error))
        if error.status_code == 503:
            heading, message = "This service is unavailable", "Try again in a moment."
        elif error.status_code >= 500:
            heading, message = "Something went wrong", "Try again, or go back to the app."
        else:
            heading = "This request cannot be completed"
            message = f"The request was refused: {error.description or error.error}."
        return page(
            "error.html",
            error.status_code,
            error.headers,
            service_name=service_name,
            title=heading,
            heading=heading,
            message=message,
        )

    return error_page


def _encoded(params: dict[str, str | None]) -> str:
    """A logout request's parameters as they are sent on (a 303 to GET) or echoed (`state`)."""
    return urlencode({key: value for key, value in params.items() if value is not None})


def _answer_redirect(request: Request, location: str) -> Response:
    """A redirect answering `request`: 303 after a POST, so the browser follows with a GET."""
    return redirect(location, 303 if request.method == "POST" else 302)


async def _address_throttled(limits: Throttle, address: str) -> Throttled | None:
    """The address's limit, counted now and answered when the form has been judged."""
    try:
        await limits.check_address(address)
    except Throttled as exc:
        return exc
    return None


def _too_many(service_name: str, exc: Throttled) -> Response:
    return page(
        "error.html",
        429,
        {"Retry-After": str(exc.retry_seconds)},
        service_name=service_name,
        title="Too many requests",
        heading="Too many requests",
        message=f"Try again in {_seconds(exc.retry_seconds)}.",
    )


def _seconds(count: int) -> str:
    return "1 second" if count == 1 else f"{count} seconds"


def _stale_form(service_name: str, again: str = "") -> Response:
    """The page for a form whose CSRF check failed; with `again`, the authorization request
    the form carried, a link starts it anew (only a path on this site's /authorize)."""
    link = again if again.startswith(AUTHORIZE) and len(again) > len(AUTHORIZE) else None
    message = "It was not sent from this site, or it is too old."
    return page(
        "error.html",
        403,
        service_name=service_name,
        title="Form expired",
        heading="This form has expired",
        message=message if link else f"{message} Go back to the app and start signing in again.",
        again=link,
    )


# Every path above answers browsers (its errors are pages).
_PAGE_PATHS = frozenset(route.path for route in router.routes if isinstance(route, APIRoute))
