"""What both services are built from: request ids, logs, request metrics, docs pages and the
error body for what routing refuses, plus the process harness that `make demo`, `make bench`
and the end-to-end tests share.

Neither service's domain code lives here; `resource_server` and `issuer` import this package,
and it imports neither.
"""
