"""The OAuth 2.0 protocol: the token, revocation and introspection endpoints' logic.

- `grants`: `POST /token` (password, client_credentials, refresh_token);
- `client_auth` and `clients`: registered clients and how requests prove them;
- `tokens`: RFC 9068 access tokens (claims and signing); `scopes`: RFC 6749 3.3 strings;
- `refresh_tokens`: rotation with reuse detection; `revoked_tokens`: the revoked-`jti` list;
- `revocation` (RFC 7009), `introspection` (RFC 7662), `metadata` (RFC 8414);
- `errors`: every refusal as a value with its RFC 6749 code and status.
"""
