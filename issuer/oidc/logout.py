"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): whether the browser's session
may end at once, and where to send the browser after it ended.

The `id_token_hint` names the client (its `aud`) and the user (its `sub`); it must be an ID
token this issuer signed, though it may have expired. A `post_logout_redirect_uri` is followed
only when it is registered for that client, exactly; otherwise the issuer shows its own
signed-out page. Section 2 requires asking the user when the hint is missing or names someone
else: another site could otherwise sign the user out by sending the browser here.
"""

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError

from issuer.keys.ring import KeyRing
from issuer.oauth.clients import CachedClients
from issuer.oidc.sessions import SignedIn
from resource_server.base64url import b64url_decode

MAX_HINT_BYTES = 8 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=["RS256"])


@dataclass(frozen=True)
class LogoutHint:
    """What a valid `id_token_hint` says: the client it was issued to and its user."""

    client_id: str
    subject: str | None


class Logout:
    def __init__(self, issuer: str, keyring: KeyRing, clients: CachedClients):
        self._issuer = issuer
        self._keyring = keyring
        self._clients = clients

    def read_hint(self, id_token_hint: str | None) -> LogoutHint | None:
        """The hint if it is an ID token of ours; None for anything else."""
        if not id_token_hint:
            return None
        payload = self._verified_payload(id_token_hint)
        if payload is None or payload.get("iss") != self._issuer:
            return None
        audience, subject = payload.get("aud"), payload.get("sub")
        if not isinstance(audience, str):
            return None
        return LogoutHint(audience, subject if isinstance(subject, str) else None)

    @staticmethod
    def may_end_at_once(hint: LogoutHint | None, signed_in: SignedIn | None) -> bool:
        """Whether the hint proves the request is about this session's user (section 2)."""
        return hint is not None and signed_in is not None and hint.subject == str(signed_in.user_id)

    async def redirect_after(
        self,
        hint: LogoutHint | None,
        post_logout_redirect_uri: str | None,
        state: str | None,
        client_id: str | None = None,
    ) -> str | None:
        """The registered URI to redirect to (with `state`), or None for the issuer's page."""
        if not post_logout_redirect_uri or hint is None:
            return None
        if client_id is not None and client_id != hint.client_id:
            return None
        client = await self._clients.get(hint.client_id)
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uri_list:
            return None
        parts = urlsplit(post_logout_redirect_uri)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if state is not None:
            pairs.append(("state", state))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))

    def _verified_payload(self, token: str) -> dict[str, object] | None:
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
        return payload if isinstance(payload, dict) else None
