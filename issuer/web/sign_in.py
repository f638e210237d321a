"""The browser side of signing in: `GET /authorize`, the sign-in and consent forms, and
`GET /logout`. Decisions live in `issuer.oidc.authorize`; this module renders and redirects."""

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from issuer.accounts.passwords import HashingBusy
from issuer.limits.throttle import Throttled
from issuer.oauth.errors import InvalidGrant
from issuer.oauth.scopes import describe_scope
from issuer.oidc.authorize import (
    AuthorizationError,
    AuthorizationRequest,
    NeedsConsent,
    NeedsLogin,
    UntrustedRequest,
    after_sign_in,
)
from issuer.web.deps import ClientAddress, Cookies, ServicesDep
from issuer.web.forms import read_form
from issuer.web.pages import BrowserCookies, page, redirect

log = logging.getLogger("issuer.audit")
router = APIRouter()
AUTHORIZE = "/authorize?"
BAD_CREDENTIALS = "Incorrect username or password."


@router.get("/authorize", summary="Authorization endpoint (RFC 6749 4.1, OpenID Connect 3.1)")
async def authorize(request: Request, services: ServicesDep, cookies: Cookies) -> Response:
    endpoint = services.authorization
    try:
        auth = await endpoint.parse(request.query_params.multi_items(), request.url.query)
        signed_in = await run_in_threadpool(
            services.browser_sessions.find, request.cookies.get(cookies.session)
        )
        decision = await endpoint.decide(auth, signed_in)
    except UntrustedRequest as exc:
        return _untrusted(services.settings.service_name, exc)
    except AuthorizationError as exc:
        return redirect(exc.location)
    if isinstance(decision, NeedsLogin):
        return _login_page(request, services.settings.service_name, cookies, auth)
    if isinstance(decision, NeedsConsent):
        return _consent_page(request, services.settings.service_name, cookies, decision)
    return redirect(decision.location)


@router.post("/login", include_in_schema=False)
async def login(
    request: Request, services: ServicesDep, cookies: Cookies, address: ClientAddress
) -> Response:
    form = await read_form(request)
    name = services.settings.service_name
    if not cookies.csrf_ok(request, form):
        return _stale_form(name)
    return_to = form.get("return_to", "")
    if not return_to.startswith(AUTHORIZE):
        return _untrusted(name, UntrustedRequest("the sign-in form was not sent by this site"))
    query = return_to.removeprefix(AUTHORIZE)
    try:
        auth = await services.authorization.parse(parse_qsl(query, keep_blank_values=True), query)
    except UntrustedRequest as exc:
        return _untrusted(name, exc)
    except AuthorizationError as exc:
        return redirect(exc.location, 303)
    username = form.get("username", "")
    try:
        user = await services.logins.verify(username, form.get("password", ""), address)
    except InvalidGrant:
        return _login_page(request, name, cookies, auth, username, BAD_CREDENTIALS, 400)
    except Throttled as exc:
        wait = max(1, int(exc.retry_after + 0.999))
        error = f"Too many attempts. Try again in {wait} seconds."
        headers = {"Retry-After": str(wait)}
        return _login_page(request, name, cookies, auth, username, error, 429, headers)
    except HashingBusy:
        error = "The service is busy. Try again in a moment."
        headers = {"Retry-After": "1"}
        return _login_page(request, name, cookies, auth, username, error, 503, headers)
    session_id = await run_in_threadpool(services.browser_sessions.start, user.id)
    log.info(
        "browser sign-in succeeded username=%r ip=%s client_id=%s",
        user.username,
        address,
        auth.client.client_id,
    )
    response = redirect(AUTHORIZE + after_sign_in(query), 303)
    cookies.set_session(response, session_id)
    return response


@router.post("/consent", include_in_schema=False)
async def consent(request: Request, services: ServicesDep, cookies: Cookies) -> Response:
    form = await read_form(request)
    name = services.settings.service_name
    if not cookies.csrf_ok(request, form):
        return _stale_form(name)
    query = form.get("request", "")
    try:
        auth = await services.authorization.parse(parse_qsl(query, keep_blank_values=True), query)
        signed_in = await run_in_threadpool(
            services.browser_sessions.find, request.cookies.get(cookies.session)
        )
        if signed_in is None:  # the session ended meanwhile: sign in again
            return redirect(AUTHORIZE + query, 303)
        answer = await services.authorization.consent(
            auth, signed_in, allow=form.get("decision") == "allow"
        )
    except UntrustedRequest as exc:
        return _untrusted(name, exc)
    except AuthorizationError as exc:
        return redirect(exc.location, 303)
    return redirect(answer.location, 303)


@router.get("/logout", summary="End the browser's session (RP-Initiated Logout 1.0)")
async def logout(request: Request, services: ServicesDep, cookies: Cookies) -> Response:
    params = request.query_params
    await run_in_threadpool(services.browser_sessions.end, request.cookies.get(cookies.session))
    location = await services.logout.redirect_after(
        params.get("id_token_hint"),
        params.get("post_logout_redirect_uri"),
        params.get("state"),
        params.get("client_id"),
    )
    if location is not None:
        response: Response = redirect(location)
    else:
        response = page(
            "signed_out.html",
            service_name=services.settings.service_name,
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
    token, new = cookies.csrf_token(request)
    response = page(
        "login.html",
        status,
        headers,
        service_name=service_name,
        title="Sign in",
        client_name=auth.client.display_name,
        form_action="/login",
        csrf_token=token,
        return_to=AUTHORIZE + auth.query,
        username=username,
        login_hint=auth.login_hint,
        error=error,
    )
    if new:
        cookies.set_csrf(response, token)
    return response


def _consent_page(
    request: Request, service_name: str, cookies: BrowserCookies, decision: NeedsConsent
) -> Response:
    token, new = cookies.csrf_token(request)
    response = page(
        "consent.html",
        service_name=service_name,
        title="Allow access",
        client_name=decision.request.client.display_name,
        username=decision.user.username,
        scopes=[{"name": s, "description": describe_scope(s)} for s in decision.scope],
        form_action="/consent",
        csrf_token=token,
        authorization_request=decision.request.query,
    )
    if new:
        cookies.set_csrf(response, token)
    return response


def _untrusted(service_name: str, exc: UntrustedRequest) -> Response:
    return page(
        "error.html",
        400,
        service_name=service_name,
        title="Sign-in request refused",
        heading="This sign-in request cannot be completed",
        message=f"The app that sent you here made an invalid request: {exc.description}.",
    )


def _stale_form(service_name: str) -> Response:
    return page(
        "error.html",
        403,
        service_name=service_name,
        title="Form expired",
        heading="This form has expired",
        message="It was not sent from this site, or it is too old. Go back to the app and "
        "start signing in again.",
    )
