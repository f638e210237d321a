"""Every table of the issuer: importing this module puts them all on `Base.metadata`.

Only the schema test that compares the models with the migrated schema (and Alembic's
autogenerate, which takes `Base.metadata` as the `target_metadata` attribute) needs all tables
at once; everything else imports the model it uses. Storage never imports this module.
"""

from issuer.accounts.users import User
from issuer.keys.database import KeySetMeta, SigningKeyRow
from issuer.oauth.clients import Client
from issuer.oauth.codes import AuthorizationCode
from issuer.oauth.refresh_tokens import RefreshFamily, RefreshToken
from issuer.oauth.revoked_tokens import RevokedAccessToken
from issuer.oidc.consents import Consent
from issuer.oidc.sessions import BrowserSession
from issuer.storage.engine import Base

__all__ = [
    "AuthorizationCode",
    "Base",
    "BrowserSession",
    "Client",
    "Consent",
    "KeySetMeta",
    "RefreshFamily",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKeyRow",
    "User",
]
