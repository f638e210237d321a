"""OAuth 2.0 token issuer: RS256 access tokens, a published JWKS, users in SQLAlchemy."""
