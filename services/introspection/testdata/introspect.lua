-- wrk script for RFC 7662 introspection against a Valet introspection
-- service: every request introspects one access token, authenticated with
-- client_secret_basic, cycling over the tokens of a file (one a line).
--
--   AUTHORIZATION='Basic ...' TOKENS=/tmp/introload/tokens.txt [DISTINCT=1] \
--   wrk -t2 -c32 -d20s --latency -s services/introspection/testdata/introspect.lua \
--       http://127.0.0.1:18180/introspect
--
-- DISTINCT limits the run to the first N tokens (DISTINCT=1: one token, the
-- "one token" figure of issue #5); by default every token of the file is
-- used. Each thread starts at its own offset. Requests are formatted once,
-- at start, so the generator spends its CPU on sending, not on Lua. No
-- response() callback: it would make wrk hand every body to Lua; non-2xx
-- answers are counted by wrk itself. services/introspection/internal/cmd/
-- introload writes the file and the header; testdata/loadtest.sh drives
-- everything.

local authz = os.getenv("AUTHORIZATION")
if authz == nil or authz == "" then
  error("AUTHORIZATION (a Basic header value) is required")
end
local path = os.getenv("TOKENS")
if path == nil or path == "" then
  error("TOKENS (a file of access tokens, one a line) is required")
end
local limit = tonumber(os.getenv("DISTINCT") or "0") or 0

local tokens = {}
for line in io.lines(path) do
  if line ~= "" then
    tokens[#tokens + 1] = line
    if limit > 0 and #tokens >= limit then break end
  end
end
if #tokens == 0 then
  error("no tokens in " .. path)
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local n = 0
local i = 0

function init(args)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = authz,
  }
  -- Tokens are base64url and dots: no form escaping needed.
  for k, t in ipairs(tokens) do
    requests[k] = wrk.format("POST", nil, headers, "token=" .. t)
  end
  n = #requests
  i = ((offset or 0) * 7919) % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return requests[i]
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("introspection via wrk (%d distinct tokens): %d requests in %.1fs\n", #tokens, summary.requests, secs))
  io.write(string.format("  introspections/s %.0f\n", (summary.requests - bad) / secs))
  io.write(string.format("  latency p50   %.3fms\n", latency:percentile(50) / 1000))
  io.write(string.format("  latency p90   %.3fms\n", latency:percentile(90) / 1000))
  io.write(string.format("  latency p99   %.3fms\n", latency:percentile(99) / 1000))
  io.write(string.format("  latency max   %.3fms\n", latency.max / 1000))
  io.write(string.format("  errors        status %d, connect %d, read %d, write %d, timeout %d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
