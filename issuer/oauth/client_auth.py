"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3)."""

import base64
from dataclasses import dataclass
from urllib.parse import unquote

from issuer.oauth.clients import CachedClients, Client, secret_matches
from issuer.oauth.errors import InvalidClient, InvalidRequest

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="token", charset="UTF-8"'}


@dataclass(frozen=True)
class ClientCredentials:
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
                raise InvalidClient("malformed Basic credentials", headers=BASIC_CHALLENGE)
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


async def require_client(
    form: dict[str, str],
    authorization: str | None,
    clients: CachedClients,
    require_secret: bool = False,
) -> Client:
    """The authenticated client of a request that must name one (401 if it names none)."""
    credentials = read_credentials(form, authorization)
    if credentials is None:
        raise InvalidClient("client authentication is required")
    return await authenticate(clients, credentials, require_secret=require_secret)


async def authenticate(
    clients: CachedClients, credentials: ClientCredentials, require_secret: bool = False
) -> Client:
    """The registered client the credentials prove; `InvalidClient` (401) otherwise."""
    headers = BASIC_CHALLENGE if credentials.method == "client_secret_basic" else {}
    client = await clients.get(credentials.client_id)
    if credentials.secret is None:
        ok = client is not None and client.is_public and not require_secret
    else:
        # Always hash, so an unknown client_id costs the same as a wrong secret.
        ok = secret_matches(credentials.secret, client.secret_hash if client else None)
        ok = ok and client is not None
    if client is None or not ok or client.disabled:
        raise InvalidClient("client authentication failed", headers=headers)
    return client


def _parse_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError and non-ASCII input alike
        raise InvalidClient("malformed Basic credentials", headers=BASIC_CHALLENGE) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials", headers=BASIC_CHALLENGE)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
