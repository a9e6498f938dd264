-- bench/session.lua: a session window aggregation against the same
-- aggregation with tide.window over the same rows (issue 13's target: the
-- session window at >= 0.8x the speed of the window).
--
--    make bench-session [BENCH_SESSION_ARGS="--events 1000000 --rounds 5"]
--
-- The rows are the standard events (../shared/bench's gen_events: ts
-- advancing 1 ms per event with up to 2 s of disorder, 1000 devices),
-- decoded once into batches in memory, not timed. Each round runs, per
-- workload, the static query
--
--    rows:group_by("device", KEY("ts", DURATION)):agg(AGGS)
--
-- with KEY = tide.window and with KEY = tide.session_window (the order of
-- the two alternates between rounds), consuming the output batches
-- without turning them into Lua rows, and times it with the monotonic
-- clock. Every round checks that both count every event once. The
-- figures are medians over the rounds; ratio = window time / session
-- time (>= 1: the session window is the faster). Exit status 1 when a
-- check fails, 2 on a setup error.

package.path = "./?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./lua/?.so;" .. package.cpath

local C = require "bench.common"
local B = C.new("bench-session")
local format = string.format

local usage = [[
usage: lua5.4 bench/session.lua [--events N] [--rounds R]
  --events N   events of the standard workload (default 1000000)
  --rounds R   rounds; figures are medians (default 5)
(from the repository's root)]]
local opts = B.args(arg, { events = 1000000, rounds = 5 }, usage)
B.check_root("bench-session")
local N, ROUNDS = opts.events, opts.rounds
local EVENTS = B.events(N)

local tide = require "tide"
local frame = require "tide.frame"
local core = require "tide.core"
local clock = core.clock_ms

local SCHEMA = "ts timestamp, device string, signal int, kind string"
local WORKLOADS = {
  { name = "10 s, count/avg/max", duration = "10 seconds", aggs = { "count(*) AS n", "avg(signal) AS a",
    "max(signal) AS m" } },
  { name = "1 s, count/avg/max", duration = "1 seconds", aggs = { "count(*) AS n", "avg(signal) AS a",
    "max(signal) AS m" } },
  { name = "10 s, count/first/last", duration = "10 seconds", aggs = { "count(*) AS n", "first(kind) AS f",
    "last(kind) AS l" } },
}

-- The rows, decoded once.
io.write(format("decoding %d events into batches (not timed) ...\n", N))
io.flush()
local batches = {}
for b in tide.read("file", { path = EVENTS, schema = SCHEMA }):batches() do batches[#batches + 1] = b end
local rows = frame.from_batches(format("Events (%d)", N), assert(core.schema(SCHEMA)), function()
  local i = 0
  return function()
    i = i + 1
    return batches[i]
  end
end)

-- One run: ms, output groups, events counted.
local function run(key, w)
  local g = rows:group_by("device", key("ts", w.duration)):agg(w.aggs)
  local t0 = clock()
  local groups, counted = 0, 0
  for b in g:batches() do
    groups = groups + b:nrows()
    local n = b:column("n")
    for i = 1, n.n do counted = counted + n[i] end
    b:close()
  end
  return clock() - t0, groups, counted
end

local failures = {}
local results = {}
for wi in ipairs(WORKLOADS) do results[wi] = { window = {}, session = {} } end
local base = {} -- the shared baseline's parse-only rate, once per round (the run's reference)
for round = 1, ROUNDS do
  base[#base + 1] = { eps = B.baseline(EVENTS, N, true).eps }
  for wi, w in ipairs(WORKLOADS) do
    local order = round % 2 == 1 and { "window", "session" } or { "session", "window" }
    for _, which in ipairs(order) do
      local ms, groups, counted = run(which == "window" and tide.window or tide.session_window, w)
      if counted ~= N then
        failures[#failures + 1] = format("round %d, %s, %s: counted %d events, expected %d", round, w.name, which,
          counted, N)
      end
      local list = results[wi][which]
      list[#list + 1] = { ms = ms, groups = groups }
    end
  end
  io.write(format("round %d/%d done\n", round, ROUNDS))
  io.flush()
end

local base_eps = C.median(base, "eps")
print(format("\nsession window vs tide.window, %d events, %d rounds (medians, min..max); the baseline's " ..
  "parse-only rate in the same rounds: %.2f M events/s\n", N, ROUNDS, base_eps / 1e6))
print(format("| %-24s | %-22s | %-22s | %8s | %8s | %6s | %13s |", "workload", "tide.window ms", "session_window ms",
  "windows", "sessions", "ratio", "session / base"))
print("|" .. string.rep("-", 26) .. "|" .. string.rep("-", 24) .. "|" .. string.rep("-", 24) .. "|" ..
  string.rep("-", 10) .. "|" .. string.rep("-", 10) .. "|" .. string.rep("-", 8) .. "|" .. string.rep("-", 15) .. "|")
for wi, w in ipairs(WORKLOADS) do
  local r = results[wi]
  local wm, wlo, whi = C.median(r.window, "ms")
  local sm, slo, shi = C.median(r.session, "ms")
  -- the aggregation's rate over the decoded rows, against the baseline's parse-only rate
  print(format("| %-24s | %6.0f (%5.0f..%5.0f)  | %6.0f (%5.0f..%5.0f)  | %8d | %8d | %5.2fx | %12.2fx |", w.name, wm,
    wlo, whi, sm, slo, shi, r.window[1].groups, r.session[1].groups, wm / sm, N / (sm / 1000) / base_eps))
end
for _, f in ipairs(failures) do io.stderr:write("bench-session: ", f, "\n") end
for _, b in ipairs(batches) do b:close() end
os.exit(#failures == 0 and 0 or 1)
