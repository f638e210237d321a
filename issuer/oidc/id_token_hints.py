"""`id_token_hint` (OpenID Connect Core 3.1.2.1, RP-Initiated Logout 1.0 section 2): an ID
token this issuer signed, expired or not, sent back by its client to say which user it means.

Read the same way at `/authorize` (is the signed-in user the one the app expects?) and at
`/logout` (may the session end without asking, and where to go after?).
"""

import json
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from issuer.keys.model import KeyState
from issuer.keys.ring import KeyRing
from issuer.oauth.tokens import ALGORITHM, ID_TOKEN_TYPE
from resource_server.base64url import b64url_decode

MAX_HINT_BYTES = 8 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=[ALGORITHM])


@dataclass(frozen=True)
class IdTokenHint:
    """What a hint says: the client it was issued to (`aud`), its user (`sub`) and when that
    user signed in (`auth_time`, which names the session it was issued in); the last two
    None when the hint cannot be checked."""

    client_id: str
    subject: str | None
    auth_time: int | None = None


class IdTokenHints:
    def __init__(self, issuer: str, keyring: KeyRing):
        self._issuer = issuer
        self._keyring = keyring

    def read(self, id_token_hint: str | None) -> IdTokenHint | None:
        """The hint if it is an ID token of ours (signed by a key of the current set, `typ`
        JWT, our `iss`); None for anything else."""
        if not id_token_hint or (parts := self._parts(id_token_hint)) is None:
            return None
        key = self._keyring.current.public_keys.get(parts[0])
        if key is None:
            return None
        try:
            payload = json.loads(
                jws.deserialize_compact(id_token_hint, key, registry=_REGISTRY).payload or b""
            )
        except (JoseError, ValueError, TypeError, AttributeError, RecursionError):
            return None
        return self._hint(payload, checked=True)

    def read_for_logout(self, id_token_hint: str | None) -> IdTokenHint | None:
        """As `read`, and also an ID token of ours whose signing key has since retired (an
        app's session easily outlives the key: retiring keys stay published about half an
        hour). Its signature can no longer be checked, so it names no user (`subject` None:
        the user is asked before the session ends); only its client, which chooses among
        that client's registered `post_logout_redirect_uri`s, where anyone may send a
        browser anyway. A key revoked as compromised names nothing."""
        hint = self.read(id_token_hint)
        if hint is not None or not id_token_hint:
            return hint
        parts = self._parts(id_token_hint)
        if parts is None:
            return None
        kid, payload = parts
        record = self._keyring.current.manifest.get(kid)
        if record is None or record.state is not KeyState.RETIRED or record.revoked:
            return None
        return self._hint(payload, checked=False)

    def _hint(self, payload: Any, checked: bool) -> IdTokenHint | None:
        if not isinstance(payload, dict) or payload.get("iss") != self._issuer:
            return None
        audience, subject, auth_time = (
            payload.get("aud"),
            payload.get("sub"),
            payload.get("auth_time"),
        )
        if not isinstance(audience, str):
            return None
        if not checked:
            return IdTokenHint(audience, None)
        return IdTokenHint(
            audience,
            subject if isinstance(subject, str) else None,
            auth_time if type(auth_time) is int else None,
        )

    @staticmethod
    def _parts(token: str) -> tuple[str, Any] | None:
        """The `kid` and payload of a JWS that may be one of our ID tokens (`typ` JWT), as
        they read, signature unchecked; None for anything else."""
        if len(token) > MAX_HINT_BYTES or token.count(".") != 2:
            return None
        header_part, payload_part, _ = token.split(".")
        try:
            header = json.loads(b64url_decode(header_part))
            if not isinstance(header, dict) or header.get("typ") != ID_TOKEN_TYPE:
                return None
            kid = header.get("kid")
            if not isinstance(kid, str):
                return None
            return kid, json.loads(b64url_decode(payload_part))
        except (ValueError, TypeError, RecursionError):
            return None
