"""Server metadata: one document served as RFC 8414 authorization server metadata and as
OpenID Connect Discovery 1.0 provider metadata."""

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from issuer.accounts.users import User
from issuer.oauth import pkce
from issuer.oauth.clients import GRANT_TYPES, Client
from issuer.oauth.scopes import IDENTITY_SCOPES
from issuer.oauth.tokens import ALGORITHM

log = logging.getLogger(__name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
SECRET_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
# What ID tokens and /userinfo can say (OpenID Connect Core 2, 5.1).
CLAIMS = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "preferred_username",
    "email",
]


def metadata_document(issuer: str, scopes: list[str]) -> dict[str, Any]:
    """The RFC 8414 document; a field with nothing to list is omitted (section 2)."""
    base = issuer.rstrip("/")  # the identifier may end in "/"; the endpoints' URLs do not
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "end_session_endpoint": f"{base}/logout",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "code_challenge_methods_supported": [pkce.METHOD],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": SECRET_AUTH_METHODS,
        "scopes_supported": sorted({*IDENTITY_SCOPES, *scopes}),
        "claims_supported": CLAIMS,
        # `issuer.oidc.authorize.PROMPTS`, which a test holds this list to (it lives above).
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    return {name: value for name, value in document.items() if value != []}


class MetadataCache:
    """The serialized document, rebuilt at most once a minute (scopes come from the database).

    Built once at start-up; while the database cannot be read, the document built before is
    served (its scopes change rarely, and a resource server starting meanwhile still finds the
    keys through it) and the next try is `RETRY_AFTER_FAILURE` seconds away.
    """

    RETRY_AFTER_FAILURE = 5.0

    def __init__(
        self,
        issuer: str,
        sessions: sessionmaker[Session],
        max_age: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._issuer = issuer
        self._sessions = sessions
        self._max_age = max_age
        self._clock = clock
        self._body = b""
        self._built_at = -float("inf")

    @property
    def stale(self) -> bool:
        return self._clock() - self._built_at >= self._max_age

    def claim_rebuild(self) -> bool:
        """Whether this caller should `rebuild` (in a thread): the document is stale, and
        no other caller is rebuilding it. Called on the event loop, so while one rebuilds
        (or its database wait runs out) the others serve the document held."""
        if not self.stale:
            return False
        if self._body:
            self._built_at = self._clock() - self._max_age + self.RETRY_AFTER_FAILURE
        return True

    def body(self) -> bytes:
        """The current document; see `claim_rebuild`."""
        return self._body

    def rebuild(self) -> bytes:
        try:
            with self._sessions() as session:
                values = [
                    *session.scalars(select(User.scopes)),
                    *session.scalars(select(Client.scopes)),
                ]
        except SQLAlchemyError as exc:
            if not self._body:
                raise
            # Tried again RETRY_AFTER_FAILURE after the claim.
            log.warning(
                "serving the server metadata built before: the database cannot be read (%s)",
                exc.__class__.__name__,
            )
            return self._body
        scopes = sorted({scope for value in values for scope in value.split()})
        self._body = json.dumps(metadata_document(self._issuer, scopes)).encode()
        self._built_at = self._clock()
        return self._body
