"""HTTP: the routes, the pages, and what they share.

- `oauth`: `POST /token`, `/revoke`, `/introspect`; `discovery`: the JWKS and the server
  metadata; `userinfo`: `/userinfo`; `health`: liveness, readiness and metrics;
- `sign_in`: the browser's `GET /authorize`, sign-in and consent forms, and logout;
  `pages`: rendering the HTML pages (`templates/`, `static/`), their headers and cookies;
- `hot`: the hot routes (JWKS, token, health) as plain ASGI handlers for the front;
- `deps`: what routes may ask for, as `Annotated` dependencies; `forms`: the defensive form
  reader; `client_address`: the client's address behind trusted proxies; `responses`: response
  headers and bodies several routes send;
- `errors`: the one error handler; `openapi`: the form endpoints' OpenAPI descriptions.

The services behind the routes are built by `issuer.services` when the app starts.
"""
