"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3)."""

import base64
import logging
from typing import NamedTuple
from urllib.parse import unquote

from issuer.limits.throttle import Throttle
from issuer.oauth.clients import CachedClients, Client, secret_matches
from issuer.oauth.errors import InvalidClient, InvalidRequest

audit = logging.getLogger("issuer.audit")


class ClientCredentials(NamedTuple):  # made per request: a frozen dataclass costs 3x
    client_id: str
    secret: str | None
    method: str  # client_secret_basic, client_secret_post or none


def read_credentials(form: dict[str, str], authorization: str | None) -> ClientCredentials | None:
    """The credentials the request presents, if any; only one method may be used."""
    if authorization and authorization[:6].lower() == "basic ":
        basic_id, basic_secret = _parse_basic(authorization[6:].strip())
        # "Basic Og==" (empty id and secret, as Swagger UI sends without a client) is no client.
        if basic_id or basic_secret:
            if not basic_id:
                raise InvalidClient("malformed Basic credentials")
            if "client_secret" in form:
                raise InvalidRequest("use one client authentication method, not Basic and the form")
            if form.get("client_id", basic_id) != basic_id:
                raise InvalidRequest("client_id in the form differs from the Basic credentials")
            if not basic_secret:  # an id with an empty secret: a public client naming itself
                return ClientCredentials(basic_id, None, "none")
            return ClientCredentials(basic_id, basic_secret, "client_secret_basic")
    client_id = form.get("client_id")
    if client_id is None:
        if "client_secret" in form:
            raise InvalidRequest("client_secret given without client_id")
        return None
    secret = form.get("client_secret")
    return ClientCredentials(client_id, secret, "client_secret_post" if secret else "none")


class ClientAuthenticator:
    """Authenticates clients under the throttle: failures count against the address, and
    only a client that proved its secret spends its own per-client budget."""

    def __init__(self, clients: CachedClients, throttle: Throttle):
        self._clients = clients
        self._throttle = throttle

    async def authenticate(
        self, credentials: ClientCredentials, address: str, require_secret: bool = False
    ) -> Client:
        """The registered client the credentials prove; `InvalidClient` (401) otherwise."""
        # No secret where one is needed is refused whoever the id names: no lookup (an unknown
        # id is not cached, and a known one would answer faster).
        unchecked = credentials.secret is None and require_secret
        known = None if unchecked else await self._clients.get(credentials.client_id)
        try:
            client = prove(known, credentials, require_secret)
        except InvalidClient:
            await self._throttle.record_client_auth_failure(address)
            # The client as registered, never the text sent (it could forge an `ip=`).
            named = (
                known.client_id
                if known
                else f"<{'not looked up' if unchecked else 'no such client'}, "
                f"{len(credentials.client_id)} characters>"
            )
            audit.info(
                "client authentication failed client_id=%s method=%s ip=%s",
                named,
                credentials.method,
                address,
            )
            raise
        if credentials.secret is not None:
            await self._throttle.check_client(client.client_id)
        return client

    async def require(
        self,
        form: dict[str, str],
        authorization: str | None,
        address: str,
        require_secret: bool = False,
    ) -> Client:
        """The authenticated client of a request that must name one (401 if it names none)."""
        credentials = read_credentials(form, authorization)
        if credentials is None:
            raise InvalidClient("client authentication is required")
        return await self.authenticate(credentials, address, require_secret)


def prove(
    client: Client | None, credentials: ClientCredentials, require_secret: bool = False
) -> Client:
    """`client`, the one `credentials.client_id` names (None: no such client), if the
    credentials prove it; `InvalidClient` (401) otherwise."""
    if credentials.secret is None and require_secret:
        # Said whoever the id names (so it tells nothing about which clients exist).
        raise InvalidClient(
            "only a confidential client may do this: send its secret "
            "(client_secret_basic or client_secret_post)"
        )
    if credentials.secret is None:
        ok = client is not None and client.is_public
    else:
        # Always hash, so an unknown client_id costs the same as a wrong secret.
        stored = client.secret_hash if client else None
        ok = secret_matches(credentials.secret, stored, credentials.client_id)
    if client is None or not ok or client.disabled:
        raise InvalidClient("client authentication failed")
    return client


def _parse_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError and non-ASCII input alike
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
