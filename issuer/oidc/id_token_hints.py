"""`id_token_hint` (OpenID Connect Core 3.1.2.1, RP-Initiated Logout 1.0 section 2): an ID
token this issuer signed, expired or not, sent back by its client to say which user it means.

Read the same way at `/authorize` (is the signed-in user the one the app expects?) and at
`/logout` (may the session end without asking, and where to go after?).
"""

import json
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError

from issuer.keys.ring import KeyRing
from issuer.oauth.tokens import ALGORITHM, ID_TOKEN_TYPE
from resource_server.base64url import b64url_decode

MAX_HINT_BYTES = 8 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=[ALGORITHM])


@dataclass(frozen=True)
class IdTokenHint:
    """What a valid hint says: the client it was issued to (`aud`) and its user (`sub`)."""

    client_id: str
    subject: str | None


class IdTokenHints:
    def __init__(self, issuer: str, keyring: KeyRing):
        self._issuer = issuer
        self._keyring = keyring

    def read(self, id_token_hint: str | None) -> IdTokenHint | None:
        """The hint if it is an ID token of ours (signed by a key of the current set, `typ`
        JWT, our `iss`); None for anything else."""
        if not id_token_hint:
            return None
        payload = self._verified_payload(id_token_hint)
        if payload is None or payload.get("iss") != self._issuer:
            return None
        audience, subject = payload.get("aud"), payload.get("sub")
        if not isinstance(audience, str):
            return None
        return IdTokenHint(audience, subject if isinstance(subject, str) else None)

    def _verified_payload(self, token: str) -> dict[str, object] | None:
        if len(token) > MAX_HINT_BYTES or token.count(".") != 2:
            return None
        try:
            header = json.loads(b64url_decode(token.split(".", 1)[0]))
            key = self._keyring.current.public_keys.get(header.get("kid", ""))
            if key is None or header.get("typ") != ID_TOKEN_TYPE:
                return None
            payload = json.loads(
                jws.deserialize_compact(token, key, registry=_REGISTRY).payload or b""
            )
        except (JoseError, ValueError, TypeError, AttributeError, RecursionError):
            return None
        return payload if isinstance(payload, dict) else None
