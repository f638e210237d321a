"""Every table of the issuer: importing this module puts them all on `Base.metadata`.

Only Alembic's environment and the schema tests need all tables at once; everything else
imports the model it uses.
"""

from issuer.accounts.users import User
from issuer.keys.database import KeySetMeta, SigningKeyRow
from issuer.oauth.clients import Client
from issuer.oauth.refresh_tokens import RefreshToken
from issuer.oauth.revoked_tokens import RevokedAccessToken
from issuer.storage.engine import Base

__all__ = [
    "Base",
    "Client",
    "KeySetMeta",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKeyRow",
    "User",
]
