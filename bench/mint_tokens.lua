-- wrk script: POST a token request (WRK_BODY, Authorization from -H) and append every
-- access token received to the file WRK_TOKENS_OUT, one a line. Prints one JSON line like
-- wrk_json.lua at the end.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

function init(args)
  out = assert(io.open(os.getenv("WRK_TOKENS_OUT"), "a"))
  out:setvbuf("line") -- whole lines only, whenever wrk stops
end

function response(status, headers, body)
  if status == 200 then
    local token = body:match('"access_token"%s*:%s*"([^"]+)"')
    if token then
      out:write(token, "\n")
    end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
