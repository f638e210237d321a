"""What routes may ask for, as `Annotated` dependencies resolved from the lifespan's state.

All `async def`: FastAPI runs a plain `def` dependency on a worker thread, a hop per request.
"""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from issuer.keys.ring import KeyRing
from issuer.limits.throttle import Throttle
from issuer.metrics import IssuerMetrics
from issuer.oauth.grants import TokenEndpoint
from issuer.oauth.introspection import IntrospectionEndpoint
from issuer.oauth.metadata import MetadataCache
from issuer.oauth.password_login import PasswordLogin
from issuer.oauth.revocation import RevocationEndpoint
from issuer.oidc.authorize import AuthorizationEndpoint
from issuer.oidc.logout import Logout
from issuer.oidc.sessions import BrowserSessions
from issuer.oidc.userinfo import UserinfoEndpoint
from issuer.services import Services
from issuer.web.client_address import ClientAddresses
from issuer.web.pages import BrowserCookies


async def _services(request: Request) -> Services:
    built: Services = request.state.services
    return built


ServicesDep = Annotated[Services, Depends(_services)]


async def _tokens(services: ServicesDep) -> TokenEndpoint:
    return services.tokens


async def _revocation(services: ServicesDep) -> RevocationEndpoint:
    return services.revocation


async def _introspection(services: ServicesDep) -> IntrospectionEndpoint:
    return services.introspection


async def _keyring(services: ServicesDep) -> KeyRing:
    return services.keyring


async def _metadata(services: ServicesDep) -> MetadataCache:
    return services.metadata


async def _authorization(services: ServicesDep) -> AuthorizationEndpoint:
    return services.authorization


async def _browser_sessions(services: ServicesDep) -> BrowserSessions:
    return services.browser_sessions


async def _logins(services: ServicesDep) -> PasswordLogin:
    return services.logins


async def _throttle(services: ServicesDep) -> Throttle:
    return services.throttle


async def _logout(services: ServicesDep) -> Logout:
    return services.logout


async def _userinfo(services: ServicesDep) -> UserinfoEndpoint:
    return services.userinfo


async def _metrics(services: ServicesDep) -> IssuerMetrics:
    return services.metrics


async def _engine(services: ServicesDep) -> Engine:
    return services.engine


async def _service_name(services: ServicesDep) -> str:
    return services.settings.service_name


async def _client_address(request: Request) -> str:
    addresses: ClientAddresses = request.state.client_addresses
    return addresses.of(request.scope)


async def _cookies(request: Request) -> BrowserCookies:
    cookies: BrowserCookies = request.state.cookies
    return cookies


Tokens = Annotated[TokenEndpoint, Depends(_tokens)]
Cookies = Annotated[BrowserCookies, Depends(_cookies)]
# The client's address for limits and audit lines (never a forgeable header; see the module).
ClientAddress = Annotated[str, Depends(_client_address)]
Revocation = Annotated[RevocationEndpoint, Depends(_revocation)]
Introspection = Annotated[IntrospectionEndpoint, Depends(_introspection)]
Keys = Annotated[KeyRing, Depends(_keyring)]
Metadata = Annotated[MetadataCache, Depends(_metadata)]
Authorization = Annotated[AuthorizationEndpoint, Depends(_authorization)]
Sessions = Annotated[BrowserSessions, Depends(_browser_sessions)]
Logins = Annotated[PasswordLogin, Depends(_logins)]
Limits = Annotated[Throttle, Depends(_throttle)]
LogoutDep = Annotated[Logout, Depends(_logout)]
Userinfo = Annotated[UserinfoEndpoint, Depends(_userinfo)]
Metrics = Annotated[IssuerMetrics, Depends(_metrics)]
Database = Annotated[Engine, Depends(_engine)]
# The name the HTML pages carry (ISSUER_SERVICE_NAME).
ServiceName = Annotated[str, Depends(_service_name)]
