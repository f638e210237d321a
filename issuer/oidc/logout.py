"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): where to send the browser
after its session at the issuer ended.

The `id_token_hint` names the client (its `aud`); it must be an ID token this issuer signed,
though it may have expired. A `post_logout_redirect_uri` is followed only when it is
registered for that client, exactly; otherwise the issuer shows its own signed-out page.
"""

import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError

from issuer.keys.ring import KeyRing
from issuer.oauth.clients import CachedClients
from resource_server.base64url import b64url_decode

MAX_HINT_BYTES = 8 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=["RS256"])


class Logout:
    def __init__(self, issuer: str, keyring: KeyRing, clients: CachedClients):
        self._issuer = issuer
        self._keyring = keyring
        self._clients = clients

    async def redirect_after(
        self,
        id_token_hint: str | None,
        post_logout_redirect_uri: str | None,
        state: str | None,
        client_id: str | None = None,
    ) -> str | None:
        """The registered URI to redirect to (with `state`), or None for the issuer's page."""
        if not post_logout_redirect_uri:
            return None
        audience = self._hinted_client(id_token_hint) if id_token_hint else None
        if audience is None or (client_id is not None and client_id != audience):
            return None
        client = await self._clients.get(audience)
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uri_list:
            return None
        parts = urlsplit(post_logout_redirect_uri)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if state is not None:
            pairs.append(("state", state))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))

    def _hinted_client(self, token: str) -> str | None:
        """The client an ID token of ours was issued to; None for anything else."""
        if len(token) > MAX_HINT_BYTES or token.count(".") != 2:
            return None
        try:
            header = json.loads(b64url_decode(token.split(".", 1)[0]))
            key = self._keyring.current.public_keys.get(header.get("kid", ""))
            if key is None or header.get("typ") != "JWT":
                return None
            payload = json.loads(
                jws.deserialize_compact(token, key, registry=_REGISTRY).payload or b""
            )
        except (JoseError, ValueError, TypeError, AttributeError, RecursionError):
            return None
        if not isinstance(payload, dict) or payload.get("iss") != self._issuer:
            return None
        audience = payload.get("aud")
        return audience if isinstance(audience, str) else None
