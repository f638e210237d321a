"""What both services are built from: settings loading (`configuration`), request ids, logs
and request metrics (`observability`), the front for hot routes (`front`), CORS (`cors`), docs
pages (`docs`), the error body for what routing refuses (`http_errors`), worker threads
(`threads`), heap freezing (`runtime`), plus the process harness that `make demo`,
`make bench` and the end-to-end tests share (`processes`).

Neither service's domain code lives here; `resource_server` and `issuer` import this package,
and it imports neither.
"""
