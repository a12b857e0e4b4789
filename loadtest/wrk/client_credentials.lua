-- wrk script for the client-credentials grant (RFC 6749 §4.4) against a
-- Valet issuer: every request is one token, authenticated with
-- client_secret_basic.
--
--   AUTHORIZATION='Basic ...' SCOPE=read \
--   wrk -t2 -c32 -d20s --latency -s loadtest/wrk/client_credentials.lua http://127.0.0.1:18080/token
--
-- AUTHORIZATION is the whole header value (loadtest/cmd/cluster writes it);
-- SCOPE and RESOURCE are optional. No response() callback: it would make wrk
-- hand every body to Lua and cost the generator CPU that the server needs
-- on a shared box; non-2xx answers are counted by wrk itself.

local authz = os.getenv("AUTHORIZATION")
if authz == nil or authz == "" then
  error("AUTHORIZATION (a Basic header value) is required")
end

local body = "grant_type=client_credentials"
local scope = os.getenv("SCOPE")
if scope ~= nil and scope ~= "" then
  body = body .. "&scope=" .. scope
end
local resource = os.getenv("RESOURCE")
if resource ~= nil and resource ~= "" then
  body = body .. "&resource=" .. resource:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end)
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = authz

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("client_credentials via wrk: %d requests in %.1fs\n", summary.requests, secs))
  io.write(string.format("  tokens/s      %.0f\n", (summary.requests - bad) / secs))
  io.write(string.format("  latency p50   %.3fms\n", latency:percentile(50) / 1000))
  io.write(string.format("  latency p95   %.3fms\n", latency:percentile(95) / 1000))
  io.write(string.format("  latency p99   %.3fms\n", latency:percentile(99) / 1000))
  io.write(string.format("  latency max   %.3fms\n", latency.max / 1000))
  io.write(string.format("  errors        status %d, connect %d, read %d, write %d, timeout %d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
