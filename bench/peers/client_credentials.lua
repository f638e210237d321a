-- wrk script: client_credentials issuance against a /token endpoint.
--   wrk -t1 -c32 -d5s -s client_credentials.lua http://127.0.0.1:9400/token
-- WRK_BODY overrides the form body, WRK_AUTH the whole Authorization header value;
-- both default to the `bench` client of issuer.mjs. Prints one JSON line of results at the end.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
-- base64("bench:bench-secret-bench-secret-bench-secret")
wrk.headers["Authorization"] = os.getenv("WRK_AUTH")
  or "Basic YmVuY2g6YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC1iZW5jaC1zZWNyZXQ="

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
