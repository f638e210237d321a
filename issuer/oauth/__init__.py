"""The OAuth 2.0 protocol: the token, revocation and introspection endpoints' logic, and the
pieces the sign-in flow (`issuer.oidc`) builds on.

- `grants`: `POST /token` (authorization_code, password, client_credentials, refresh_token);
- `client_auth` and `clients`: registered clients and how requests prove them;
- `redirect_uris`: what may be registered and how a request's URI matches;
- `codes`: authorization codes (single-use, bound to their request); `pkce`: RFC 7636 S256;
- `password_login`: the password check under the login throttle, shared by the password
  grant and the sign-in page;
- `tokens`: RFC 9068 access tokens and ID tokens (claims and signing); `scopes`: RFC 6749 3.3
  strings;
- `refresh_tokens`: rotation with reuse detection; `revoked_tokens`: the revoked-`jti` list;
- `revocation` (RFC 7009), `introspection` (RFC 7662), `metadata` (RFC 8414 and OpenID
  Connect Discovery);
- `parameters`: a request's parameters as RFC 6749 reads them (form or query string);
- `errors`: every refusal as a value with its RFC 6749 code and status.
"""
