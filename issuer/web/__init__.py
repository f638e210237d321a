"""HTTP: the routes, the form reader, the error handler and the OpenAPI descriptions.

Routes declare what they need as `Annotated` dependencies (`issuer.web.deps`); the services
behind them are built by `issuer.services` when the app starts.
"""
