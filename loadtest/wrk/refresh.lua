-- wrk script for the refresh-token grant with rotation (RFC 6749 §6, RFC
-- 9700 §4.14.2) against a Valet issuer.
--
--   refreshload -mint 32 -seed-out seed.txt       # 32 families through the real grant
--   SEED_FILE=seed.txt THREADS=2 AUTHORIZATION='Basic ...' \
--   wrk -t2 -c32 -d20s --latency -s loadtest/wrk/refresh.lua http://127.0.0.1:18080/token
--
-- A refresh family is a chain: each response's refresh_token is the next
-- request's, and presenting a superseded one revokes the family. wrk's
-- request() does not know which connection it is for, so the chains are a
-- pool per thread: request() takes a token out of the pool, response()
-- puts the successor back. A wrk connection has one request in flight (no
-- pipelining with a request() function) and wrk calls response() before it
-- asks for that connection's next request, so with at least as many
-- families per thread as connections per thread the pool is never empty and
-- no token is ever in flight twice: one chain, one request at a time, as
-- the Go generator (cmd/refreshload) does with one worker per chain.
--
-- The seed file holds one refresh token a line; thread i of THREADS takes
-- every THREADS-th line from the i-th. A file works once: the run
-- supersedes every token in it. AUTHORIZATION is the web client's Basic
-- header value (WEB_AUTHORIZATION in cmd/cluster's creds.env, whose own
-- AUTHORIZATION is the client-credentials client's); PUBLIC=1 with
-- CLIENT_ID sends a public client's id in the body instead. NARROW, if
-- set, is sent as scope with every refresh.
--
-- Every non-200 breaks its chain and is a failed run; done() prints the
-- failures by status and error code, REUSE DETECTED when the issuer revoked
-- a family. A thread whose pool runs dry (a chain lost to a timeout or a
-- refusal) sends a request that cannot succeed and counts it as starved.

local seed = os.getenv("SEED_FILE")
local threads_n = tonumber(os.getenv("THREADS") or "2")
local public = os.getenv("PUBLIC") == "1"
local authz = (not public) and os.getenv("AUTHORIZATION") or nil
local client_id = public and os.getenv("CLIENT_ID") or nil
local narrow = os.getenv("NARROW")

if seed == nil or seed == "" then
  error("SEED_FILE (refresh tokens, one a line: refreshload -mint N -seed-out FILE) is required")
end
if (authz == nil or authz == "") and (client_id == nil or client_id == "") then
  error("AUTHORIZATION (a confidential client's Basic header value), or PUBLIC=1 and CLIENT_ID, is required")
end

-- Main state: hand each thread its share of the seed file.
local tokens = {}
for line in io.lines(seed) do
  line = line:gsub("^%s+", ""):gsub("%s+$", "")
  if line ~= "" and line:sub(1, 1) ~= "#" then
    table.insert(tokens, line)
  end
end
local threads = {}

function setup(thread)
  local i = #threads + 1
  local share = {}
  for k = i, #tokens, threads_n do
    table.insert(share, tokens[k])
  end
  if i > threads_n then
    error("more wrk threads than THREADS=" .. threads_n)
  end
  thread:set("id", i)
  thread:set("pool", share)
  table.insert(threads, thread)
end

-- Thread state.
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local suffix = ""
if authz ~= nil and authz ~= "" then
  headers["Authorization"] = authz
else
  suffix = "&client_id=" .. client_id
end
if narrow ~= nil and narrow ~= "" then
  suffix = suffix .. "&scope=" .. narrow:gsub(" ", "+")
end

function init(args)
  -- pool and id were set by setup(); the counters are read back by done().
  rotations = 0
  starved = 0
  failures = {}
  -- wrk calls request() once on its first thread before any connection,
  -- only to count pipelined requests (script_verify_request); that call
  -- must not take a chain out of the pool.
  verifying = (id == 1)
end

function request()
  if verifying then
    verifying = false
    return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=unsent" .. suffix)
  end
  local tok = table.remove(pool)
  if tok == nil then
    starved = starved + 1
    tok = "vrt_starved" -- refused with invalid_grant: no chain is left to rotate
  end
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. tok .. suffix)
end

function response(status, hdrs, body)
  if status == 200 then
    local next = body:match('"refresh_token":"([^"]+)"')
    if next ~= nil then
      rotations = rotations + 1
      table.insert(pool, next)
      return
    end
  end
  local code = body:match('"error":"([^"]+)"') or "(no error code)"
  local label = status .. " " .. code
  if status == 200 then
    label = "200 without a refresh token"
  elseif code == "invalid_grant" and body:find("already used", 1, true) then
    label = label .. " (REUSE DETECTED: the family was revoked)"
  end
  failures[label] = (failures[label] or 0) + 1
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local total, starving, failed, by = 0, 0, 0, {}
  for _, t in ipairs(threads) do
    total = total + (t:get("rotations") or 0)
    starving = starving + (t:get("starved") or 0)
    for k, n in pairs(t:get("failures") or {}) do
      by[k] = (by[k] or 0) + n
      failed = failed + n
    end
  end
  local sock = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("refresh_token via wrk: %d requests in %.1fs, %d chains\n", summary.requests, secs, #tokens))
  io.write(string.format("  rotations/s   %.0f (%d rotations)\n", total / secs, total))
  io.write(string.format("  latency p50   %.3fms\n", latency:percentile(50) / 1000))
  io.write(string.format("  latency p90   %.3fms\n", latency:percentile(90) / 1000))
  io.write(string.format("  latency p99   %.3fms\n", latency:percentile(99) / 1000))
  io.write(string.format("  latency max   %.3fms\n", latency.max / 1000))
  for k, n in pairs(by) do
    io.write(string.format("  errors        %d x %s\n", n, k))
  end
  if sock > 0 then
    io.write(string.format("  errors        socket: connect %d, read %d, write %d, timeout %d\n",
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  end
  if starving > 0 then
    io.write(string.format("  errors        %d requests starved (a thread had no chain left)\n", starving))
  end
  if failed + sock + starving == 0 then
    io.write("PASS: every rotation succeeded\n")
  else
    io.write(string.rep("!", 72) .. "\n")
    io.write(string.format("FAILED: %d refused, %d socket errors, %d starved\n", failed, sock, starving))
    io.write(string.rep("!", 72) .. "\n")
  end
end
