"""What routes may ask for, as `Annotated` dependencies resolved from the lifespan's state.

All `async def`: FastAPI runs a plain `def` dependency on a worker thread, a hop per request.
"""

from typing import Annotated

from fastapi import Depends, Request

from issuer.keys.ring import KeyRing
from issuer.oauth.grants import TokenEndpoint
from issuer.oauth.introspection import IntrospectionEndpoint
from issuer.oauth.metadata import MetadataCache
from issuer.oauth.revocation import RevocationEndpoint
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
