-- wrk script: GET with a different bearer token on every request, round-robin over the file
-- WRK_TOKENS (one token a line) from index WRK_TOKEN_OFFSET, so a series of runs can continue
-- where the last stopped. Prints one JSON line like wrk_json.lua, plus "sent": requests built.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    tokens[#tokens + 1] = line
  end
  position = tonumber(os.getenv("WRK_TOKEN_OFFSET") or "0")
  sent = 0
end

function request()
  local token = tokens[position % #tokens + 1]
  position = position + 1
  sent = sent + 1
  return wrk.format("GET", nil, { Authorization = "Bearer " .. token })
end

done = function(summary, latency, requests)
  local e = summary.errors
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("sent")
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, "p50_us": %d, "p99_us": %d, "sent": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), total))
end
