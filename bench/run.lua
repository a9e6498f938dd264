-- bench/run.lua: tide's benchmark against the hand-written baseline of
-- ../shared/bench, measured in the same run. `make bench` runs it from the
-- repository's root; see bench/RESULTS.md.
--
--    lua5.4 bench/run.lua [--events N] [--rounds R]
--
-- Per round, interleaved so that machine noise hits every phase alike:
--   baseline --parse-only; baseline (full workload); ingest into a typed
--   topic; ingest into a schemaless topic; full read of each into batches.
-- Every round uses a fresh store (sync = true), deleted at the round's end.
--
-- Clock: wall time from the monotonic clock of libuv (uv_now, milliseconds),
-- read through tide.core's loop after a `run("nowait")` has refreshed it.
-- CPU time of the process (os.clock) is shown next to it. A full read takes
-- only tens of milliseconds, so the read phase repeats full reads until it
-- has lasted at least READ_MIN_MS and reports the rate over all of them;
-- every read is counted and checked.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local READ_MIN_MS = 500
local SCHEMA = "ts timestamp, device string, signal int, kind string"

local format = string.format

local common = require "bench.common"
local B = common.new("bench")
local sh, quote, capture = B.sh, B.quote, B.capture

local opts = B.args({ ... }, { events = 5000000, rounds = 5 },
  "usage: lua5.4 bench/run.lua [--events N] [--rounds R]  (from the repository's root)")
local N, ROUNDS = opts.events, opts.rounds

B.check_root("bench")
local EVENTS, JSON_BYTES = B.events(N)

local tide = require "tide"
local core = require "tide.core"

---------------------------------------------------------------------------
-- Clock
---------------------------------------------------------------------------

local loop = core.loop()
local function now_ms()
  loop:run("nowait") -- refreshes the loop's cached time
  return loop:now()
end

-- Run fn(); return its wall seconds, CPU seconds and results.
local function timed(fn)
  collectgarbage()
  collectgarbage()
  local c0, w0 = os.clock(), now_ms()
  local r1, r2 = fn()
  local w1, c1 = now_ms(), os.clock()
  return (w1 - w0) / 1000, c1 - c0, r1, r2
end

---------------------------------------------------------------------------
-- Phases
---------------------------------------------------------------------------

local failures = {}

local function baseline(parse_only) return B.baseline(EVENTS, N, parse_only, JSON_BYTES) end

local function ingest(t)
  local wall, cpu, r = timed(function() return t:produce(EVENTS) end)
  if r.appended ~= N then
    failures[#failures + 1] = format("ingest into '%s' appended %s events, expected %d", t:name(),
      tostring(r.appended), N)
  end
  return { eps = N / wall, bps = JSON_BYTES / wall, secs = wall, cpu = cpu }
end

local function read_all(t)
  local seg_bytes = t:stats().bytes
  local passes = 0
  local wall, cpu = timed(function()
    local t0 = now_ms()
    repeat
      local n = 0
      for b in t:batches() do n = n + b:nrows() end
      if n ~= N then
        failures[#failures + 1] = format("read of '%s' (pass %d) gave %d events, expected %d", t:name(),
          passes + 1, n, N)
      end
      passes = passes + 1
    until now_ms() - t0 >= READ_MIN_MS
  end)
  return { eps = N * passes / wall, bps = seg_bytes * passes / wall, secs = wall / passes, cpu = cpu / passes,
    passes = passes }
end

-- The standard workload as a frame: where signal >= 15 (an expression, or a
-- Lua function when lua_filter), then count, sum and avg of signal per
-- (10-second window of ts, device). Returns groups, count total, signal sum.
local function standard_query(frame, lua_filter)
  local f = lua_filter and frame:filter(function(r) return r.signal >= 15 end) or frame:where("signal >= 15")
  local q = f:group_by(tide.window("ts", "10 seconds"), "device")
    :agg { "count(*) AS n", "sum(signal) AS s", "avg(signal) AS a" }
  local groups, count, sum = 0, 0, 0
  for b in q:batches() do
    groups = groups + b:nrows()
    local n, s = b:column("n"), b:column("s")
    for i = 1, b:nrows() do
      count = count + n[i]
      sum = sum + s[i]
    end
  end
  return groups, count, sum
end

-- The baseline's figures the query must reproduce.
local function expected(base)
  return tonumber(base.out:match("groups=(%d+)")), tonumber(base.out:match("count_total=(%d+)")),
    tonumber(base.out:match("signal_sum=(%d+)"))
end

local function query(label, frame, lua_filter, base)
  local wall, cpu, got = timed(function() return table.pack(standard_query(frame, lua_filter)) end)
  local g, c, sm = expected(base)
  if got[1] ~= g or got[2] ~= c or got[3] ~= sm then
    failures[#failures + 1] = format("%s: groups=%s count_total=%s signal_sum=%s, the baseline has %s %s %s", label,
      tostring(got[1]), tostring(got[2]), tostring(got[3]), tostring(g), tostring(c), tostring(sm))
  end
  return { eps = N / wall, bps = JSON_BYTES / wall, secs = wall, cpu = cpu }
end

local function disk_bytes(dir)
  local out = capture("du -sk " .. quote(dir))
  return tonumber(out:match("^(%d+)")) * 1024
end

---------------------------------------------------------------------------
-- Rounds
---------------------------------------------------------------------------

local PHASES = {
  { key = "parse", label = "baseline --parse-only" },
  { key = "base", label = "baseline (full workload)" },
  { key = "ing_typed", label = "tide ingest, typed topic" },
  { key = "ing_free", label = "tide ingest, schemaless" },
  { key = "read_typed", label = "tide read, typed topic" },
  { key = "read_free", label = "tide read, schemaless" },
  { key = "q_mem", label = "query, in-memory batches" },
  { key = "q_lua", label = "query, Lua filter" },
  { key = "q_file", label = "query over the JSON file" },
}
local res = {}
for _, p in ipairs(PHASES) do res[p.key] = {} end
local sizes

print(format("tide %s bench: %d events, %.1f MB of JSON (%s), %d rounds", tide.version, N, JSON_BYTES / 1e6,
  EVENTS, ROUNDS))
local TMP = "build/bench-tmp"
sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

-- The events as columnar batches in memory, loaded once (not timed).
local file_frame = tide.read("file", { path = EVENTS, format = "json", schema = SCHEMA })
local mem = {}
for b in file_frame:batches() do mem[#mem + 1] = b end
local mem_frame = require("tide.frame").from_batches("memory", SCHEMA, function()
  local i = 0
  return function()
    i = i + 1
    return mem[i]
  end
end)

for round = 1, ROUNDS do
  local r = {}
  r.parse = baseline(true)
  r.base = baseline(false)
  local dir = format("%s/store-%d", TMP, round)
  local db = tide.open(dir, { sync = true })
  local typed = db:create_topic("typed", { schema = SCHEMA })
  local free = db:create_topic("schemaless")
  r.ing_typed = ingest(typed)
  r.ing_free = ingest(free)
  r.read_typed = read_all(typed)
  r.read_free = read_all(free)
  r.q_mem = query("query over in-memory batches", mem_frame, false, r.base)
  r.q_lua = query("query with a Lua filter", mem_frame, true, r.base)
  r.q_file = query("query over the JSON file", file_frame, false, r.base)
  if round == 1 then
    sizes = {}
    for _, t in ipairs { typed, free } do
      local st = t:stats()
      sizes[#sizes + 1] = { name = t:name(), stored = st.stored_bytes, segments = st.segments,
        disk = disk_bytes(format("%s/topics/%d", dir, t:info().id)) }
    end
  end
  db:close()
  sh("rm -rf " .. quote(dir))
  for k, v in pairs(r) do table.insert(res[k], v) end
  print(format("round %d/%d: parse-only %.2f M/s, baseline %.2f M/s, ingest typed %.2f M/s, schemaless %.2f M/s, "
    .. "read typed %.1f M/s, schemaless %.1f M/s, query mem %.1f M/s, lua %.1f M/s, file %.2f M/s", round, ROUNDS,
    r.parse.eps / 1e6, r.base.eps / 1e6, r.ing_typed.eps / 1e6, r.ing_free.eps / 1e6, r.read_typed.eps / 1e6,
    r.read_free.eps / 1e6, r.q_mem.eps / 1e6, r.q_lua.eps / 1e6, r.q_file.eps / 1e6))
  io.flush()
end
sh("rm -rf " .. TMP)

---------------------------------------------------------------------------
-- Report
---------------------------------------------------------------------------

local median, verdict = common.median, common.verdict

local ref = median(res.parse, "eps")
print()
print(format("medians of %d rounds; ratio = events/s over the baseline's --parse-only median of this run", ROUNDS))
print(format("%-26s %11s %17s %9s %9s %7s", "phase", "M events/s", "(min..max)", "MB/s", "wall ms", "ratio"))
for _, p in ipairs(PHASES) do
  local list = res[p.key]
  local eps, lo, hi = median(list, "eps")
  local bps = median(list, "bps")
  local secs = median(list, "secs")
  print(format("%-26s %11.2f %17s %9.1f %9.1f %6.2fx", p.label, eps / 1e6,
    format("(%.2f..%.2f)", lo / 1e6, hi / 1e6), bps / 1e6, secs * 1000, eps / ref))
end
local cpu_t, cpu_f = median(res.ing_typed, "cpu"), median(res.ing_free, "cpu")
print(format("ingest CPU seconds (os.clock), median: typed %.3f, schemaless %.3f", cpu_t, cpu_f))
-- %g: with an even number of rounds the median is a mean of two counts
print(format("read passes per round: typed %g, schemaless %g (each a full read of %d events)",
  median(res.read_typed, "passes"), median(res.read_free, "passes"), N))
print("MB/s: JSON input bytes per second for the baseline and ingest; segment bytes read per second for reads")
print("wall ms: per run (baseline: its own seconds=; reads: per full read)")
print()
for _, s in ipairs(sizes) do
  print(format("on disk, %-10s: %8.1f MB in %d segments (%.1f MB by du) = %.2fx the JSON's %.1f MB", s.name,
    s.stored / 1e6, s.segments, s.disk / 1e6, s.disk / JSON_BYTES, JSON_BYTES / 1e6))
end

local ing_t, ing_f = median(res.ing_typed, "eps"), median(res.ing_free, "eps")
local read_t, read_f = median(res.read_typed, "eps"), median(res.read_free, "eps")
local overhead = ing_f / ing_t - 1 -- extra time of the typed ingest over the schemaless one
print()
print("targets:")
print(format("  ingest >= 0.7x parse-only:        typed %.2fx, schemaless %.2fx  %s", ing_t / ref, ing_f / ref,
  verdict(ing_t / ref >= 0.7 and ing_f / ref >= 0.7)))
print(format("  read >= 20 M events/s:            typed %.1f M, schemaless %.1f M  %s", read_t / 1e6, read_f / 1e6,
  verdict(read_t >= 20e6 and read_f >= 20e6)))
print(format("  schema validation cost <= 15%%:    typed ingest time vs schemaless %+.1f%%  %s",
  overhead * 100, verdict(overhead <= 0.15)))
local qm, ql, qf = median(res.q_mem, "eps"), median(res.q_lua, "eps"), median(res.q_file, "eps")
local base_full = median(res.base, "eps")
print(format("  query, in-memory batches >= 15 M events/s: %.1f M  %s", qm / 1e6, verdict(qm >= 15e6)))
print(format("  query, Lua filter >= 3 M events/s:         %.2f M  %s", ql / 1e6, verdict(ql >= 3e6)))
print(format("  query over the JSON file: %.2f M events/s = %.2fx the baseline's full workload (%.2f M)",
  qf / 1e6, qf / base_full, base_full / 1e6))
print("  groups, count_total and signal_sum of every query equal the baseline's: " ..
  (#failures == 0 and "yes" or "NO (below)"))

if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write("bench: FAILED: ", f, "\n") end
  os.exit(1)
end
