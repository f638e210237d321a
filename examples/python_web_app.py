"""A server-side web app that signs its users in at the issuer (Authlib, OpenID Connect).

    # From the repository's root; `make install` (or `make run`) puts Authlib, itsdangerous
    # and uvicorn in .venv. With the services on other ports than 8000/8001, set ISSUER_URL and
    # API_URL too.
    .venv/bin/python scripts/create_client.py gallery \\
        --redirect-uri http://127.0.0.1:5000/callback \\
        --scope "openid profile email"          # prints the secret on its last line
    GALLERY_SECRET=... .venv/bin/uvicorn examples.python_web_app:app --port 5000

Authlib discovers the endpoints, sends PKCE (S256), state and nonce, and checks the ID token
(signature through the JWKS, `iss`, `aud`, `nonce`) when it exchanges the code.
"""

import os
import warnings

import authlib.deprecate
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

# Authlib's Starlette client asks for the httpx2 fork and warns at import under httpx, with
# which it works as well (this project's own tests run it so). After Authlib's own filter,
# which shows its warnings always.
warnings.filterwarnings(
    "ignore", "The httpx module is deprecated", authlib.deprecate.AuthlibDeprecationWarning
)
from authlib.integrations.starlette_client import OAuth  # noqa: E402

ISSUER = os.environ.get("ISSUER_URL", "http://127.0.0.1:8000")
API = os.environ.get("API_URL", "http://127.0.0.1:8001")

oauth = OAuth()
oauth.register(
    "issuer",
    client_id=os.environ.get("GALLERY_CLIENT_ID", "gallery"),
    client_secret=os.environ["GALLERY_SECRET"],
    # OpenID Connect Discovery 4: the identifier without a trailing "/", then the well-known path.
    server_metadata_url=f"{ISSUER.rstrip('/')}/.well-known/openid-configuration",
    client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
)


async def home(request: Request) -> Response:
    user = request.session.get("user")
    if user is None:
        return HTMLResponse('<a href="/login">Sign in</a>')
    return JSONResponse({"signed_in_as": user["preferred_username"], "sub": user["sub"]})


async def login(request: Request) -> Response:
    redirect_uri = request.url_for("callback")
    response: Response = await oauth.issuer.authorize_redirect(request, redirect_uri)
    return response


async def callback(request: Request) -> Response:
    token = await oauth.issuer.authorize_access_token(request)  # checks state, code, ID token
    userinfo = await oauth.issuer.userinfo(token=token)
    request.session["user"] = dict(userinfo)
    request.session["access_token"] = token["access_token"]
    return RedirectResponse("/")


async def me_at_the_api(request: Request) -> Response:
    """The access token works at the resource server too."""
    access_token = request.session.get("access_token")
    if access_token is None:  # not signed in (yet, or any more)
        return RedirectResponse("/login", status_code=303)
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{API}/users/me", headers={"Authorization": f"Bearer {access_token}"}
        )
    return JSONResponse(answer.json(), status_code=answer.status_code)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login),
        Route("/callback", callback),
        Route("/api/me", me_at_the_api),
    ],
    middleware=[
        Middleware(
            SessionMiddleware, secret_key=os.environ.get("SESSION_SECRET") or os.urandom(32).hex()
        )
    ],
)
