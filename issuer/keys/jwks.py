"""The published JWKS document, serialized once per key-set change."""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from joserfc.jwk import RSAKey

# RFC 7517 section 4: only these public members are published; built from an allow-list, so a
# private member can never leak through a key object that happens to carry one.
_PUBLIC_RSA_MEMBERS = ("n", "e")


@dataclass(frozen=True)
class JWKSDocument:
    """The JWKS response body and its strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def from_keys(cls, keys: Iterable[tuple[str, RSAKey]]) -> "JWKSDocument":
        """Serialize the public half of each `(kid, key)` pair."""
        entries = []
        for kid, key in keys:
            public = key.as_dict(private=False)
            entry = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256"}
            entry.update({name: str(public[name]) for name in _PUBLIC_RSA_MEMBERS})
            entries.append(entry)
        body = json.dumps({"keys": entries}, separators=(",", ":")).encode()
        return cls(body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def matches(self, if_none_match: str | None) -> bool:
        """Whether an `If-None-Match` header names this version (RFC 9110 section 13.1.2)."""
        if not if_none_match:
            return False
        candidates = [tag.strip() for tag in if_none_match.split(",")]
        # Weak comparison: a `W/` prefix added by a proxy still names the same body.
        return any(tag == "*" or tag.removeprefix("W/") == self.etag for tag in candidates)
