--- Worker threads (issue 21): two queries over the shared events file,
-- each with workers = 1 and workers = 2 (or --workers LIST), side by side
-- with the hand-written C baseline's full workload, in the same rounds.
--
--    lua5.4 bench/parallel.lua [--rounds R] [--events N] [--batch B] [--workers 1,2] [--queries both]
--
-- 1. stream: file source -> where("signal >= 15") -> with_watermark("ts",
--    "5 seconds") -> group_by(window 10 s, device) -> count, sum, avg ->
--    update mode -> a topic sink (exactly-once, a fresh store), checkpointed
--    every batch (sync on), batches of about B events (max_bytes_per_trigger),
--    timed from defining the stream to q:stop(); the output topic is read
--    back after the timing and checked.
-- 2. static: tide.read("file") -> the same where / group_by / agg, each
--    result batch's counts and sums added up (with workers > 1 it runs in
--    one stage: each worker reads, decodes and aggregates whole ranges of
--    the file, core/scan.h).
-- --queries stream or static runs just that one (default both).
--
-- Each (query, workers) runs in a child process of its own (this script
-- with --child), so that its peak resident memory (VmHWM of
-- /proc/self/status at its end) is its own. Each round runs the baseline,
-- then every query with every workers value, interleaved. Every run must
-- reproduce the baseline's groups, count_total and signal_sum (the
-- stream's check keeps the last row per group), else the script exits 1.
-- Ratios are of medians, and the per-round ratio of workers = 2 to
-- workers = 1 is also given (median, min..max): both ran in the same round.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local SCHEMA = "ts timestamp, device string, signal int, kind string"
local format = string.format

local argv = { ... }

-- ---------------------------------------------------------------- child ---
if argv[1] == "--child" then
  local which, workers, events, bytes = argv[2], tonumber(argv[3]), argv[4], tonumber(argv[5])
  local tide = require "tide"
  local core = require "tide.core"
  tide.config { workers = workers }
  local groups, count, sum = 0, 0, 0
  local t1
  local t0, batches = core.clock_ms(), 0
  if which == "stream" then
    local dir = argv[6]
    local db = tide.open(dir .. "/store")
    local f = tide.read_stream("file", { path = events, format = "json", schema = SCHEMA, final_line_wait = 0,
      max_bytes_per_trigger = bytes })
      :where("signal >= 15")
      :with_watermark("ts", "5 seconds")
      :group_by(tide.window("ts", "10 seconds"), "device")
      :agg { n = "count(*)", s = "sum(signal)", a = "avg(signal)" }
    db:create_topic("out", { schema = f:schema() })
    local q = f:write_stream("topic", { store = db, topic = "out", mode = "update", trigger = 0,
      checkpoint = dir .. "/ck" })
    q:process_all_available()
    batches = q:last_progress().batch_id + 1
    q:stop()
    t1 = core.clock_ms()
    local last = {}
    for rec in db:topic("out"):read { from = 0 } do last[rec.device .. "@" .. rec.window_start] = rec end
    for _, r in pairs(last) do
      groups, count, sum = groups + 1, count + r.n, sum + r.s
    end
    db:close()
  else
    local q = tide.read("file", { path = events, format = "json", schema = SCHEMA })
      :where("signal >= 15")
      :group_by(tide.window("ts", "10 seconds"), "device")
      :agg { "count(*) AS n", "sum(signal) AS s", "avg(signal) AS a" }
    for b in q:batches() do
      groups = groups + b:nrows()
      local n, s = b:column("n"), b:column("s")
      for i = 1, b:nrows() do count, sum = count + n[i], sum + s[i] end
    end
    t1 = core.clock_ms()
  end
  local status = io.open("/proc/self/status"):read("a")
  io.write(format("ms=%.3f groups=%d count_total=%d signal_sum=%d batches=%d rss_kb=%s cpu=%.3f\n", t1 - t0,
    groups, count, sum, batches, status:match("VmHWM:%s*(%d+)"), os.clock()))
  os.exit(0)
end

-- --------------------------------------------------------------- parent ---
local common = require "bench.common"
local B = common.new("bench-parallel")
local sh, quote, capture = B.sh, B.quote, B.capture
local opts = B.args(argv, { events = 5000000, rounds = 3, batch = 100000, workers = "1,2", queries = "both" },
  "usage: lua5.4 bench/parallel.lua [--rounds R] [--events N] [--batch B] [--workers 1,2] " ..
  "[--queries both|stream|static] (from the repository's root)",
  { queries = { both = true, stream = true, static = true } })
local N, ROUNDS, BATCH = opts.events, opts.rounds, opts.batch
local WORKERS = {}
for w in tostring(opts.workers):gmatch("%d+") do WORKERS[#WORKERS + 1] = tonumber(w) end
if #WORKERS == 0 then B.die("--workers: a list of thread counts, e.g. 1,2") end

B.check_root("bench-parallel")
local EVENTS, JSON_BYTES = B.events(N)
local BATCH_BYTES = math.max(1, math.floor(JSON_BYTES / N * BATCH + 0.5))
local TMP = "build/bench-parallel-tmp"
sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

local failures = {}
local function run(which, workers, round, want)
  local dir = format("%s/%s-%d-%d", TMP, which, workers, round)
  sh("rm -rf " .. quote(dir) .. " && mkdir -p " .. quote(dir))
  local out = capture(format("lua5.4 bench/parallel.lua --child %s %d %s %d %s", which, workers, quote(EVENTS),
    BATCH_BYTES, quote(dir)))
  sh("rm -rf " .. quote(dir))
  local r = {}
  for k, v in out:gmatch("([%w_]+)=([%d.]+)") do r[k] = tonumber(v) end
  if not r.ms then B.die(format("%s, workers = %d: no result: %s", which, workers, out)) end
  if r.groups ~= want.groups or r.count_total ~= want.count_total or r.signal_sum ~= want.signal_sum then
    failures[#failures + 1] = format("%s, workers = %d, round %d: groups=%d count_total=%d signal_sum=%d, " ..
      "the baseline has %d %d %d", which, workers, round, r.groups, r.count_total, r.signal_sum, want.groups,
      want.count_total, want.signal_sum)
  end
  r.eps = N / (r.ms / 1000)
  return r
end

local load0 = capture("cat /proc/loadavg"):match("^(%S+ %S+ %S+)")
print(format("tide parallel bench: %d rounds of %d events (%.1f MB of JSON), batches of %d events, workers %s; " ..
  "load average at start %s, %d CPUs", ROUNDS, N, JSON_BYTES / 1e6, BATCH, table.concat(WORKERS, ","), load0,
  tonumber(capture("nproc"))))
local QUERIES = opts.queries == "both" and { "stream", "static" } or { opts.queries }
local res = { base = {} }
for _, q in ipairs(QUERIES) do
  for _, w in ipairs(WORKERS) do res[q .. w] = {} end
end
for round = 1, ROUNDS do
  local base = B.baseline(EVENTS, N, false, JSON_BYTES)
  base.groups = tonumber(base.out:match("groups=(%d+)"))
  base.count_total = tonumber(base.out:match("count_total=(%d+)"))
  base.signal_sum = tonumber(base.out:match("signal_sum=(%d+)"))
  res.base[round] = base
  local line = { format("baseline %.2f M/s", base.eps / 1e6) }
  for _, q in ipairs(QUERIES) do
    for _, w in ipairs(WORKERS) do
      local r = run(q, w, round, base)
      res[q .. w][round] = r
      line[#line + 1] = format("%s/w%d %.2f M/s %d MB", q, w, r.eps / 1e6, r.rss_kb // 1024)
    end
  end
  print(format("round %d/%d: %s", round, ROUNDS, table.concat(line, ", ")))
  io.flush()
end
sh("rm -rf " .. TMP)

local median = common.median
local ref = median(res.base, "eps")
print()
print(format("medians of %d rounds; groups=%d count_total=%d signal_sum=%d; load average at end %s", ROUNDS,
  res.base[1].groups, res.base[1].count_total, res.base[1].signal_sum,
  capture("cat /proc/loadavg"):match("^(%S+ %S+ %S+)")))
print(format("%-34s %11s %15s %9s %8s %10s %12s %16s", "", "M events/s", "(min..max)", "wall ms", "CPU s",
  "vs base", "peak RSS MB", "vs workers=1"))
local function row(label, list, one)
  local eps = median(list, "eps")
  local lo, hi = math.huge, 0
  for _, r in ipairs(list) do lo, hi = math.min(lo, r.eps), math.max(hi, r.eps) end
  local vs = ""
  if one then
    local ratios = {}
    for i, r in ipairs(list) do ratios[i] = { x = r.eps / one[i].eps } end
    local rlo, rhi = math.huge, 0
    for _, x in ipairs(ratios) do rlo, rhi = math.min(rlo, x.x), math.max(rhi, x.x) end
    vs = format("%.2fx (%.2f..%.2f)", median(ratios, "x"), rlo, rhi)
  end
  print(format("%-34s %11.2f %15s %9.0f %8s %9.2fx %12s %16s", label, eps / 1e6,
    format("(%.2f..%.2f)", lo / 1e6, hi / 1e6), N / eps * 1000, list[1].cpu and format("%.2f", median(list, "cpu"))
    or "", eps / ref, list[1].rss_kb and format("%.0f", median(list, "rss_kb") / 1024) or "", vs))
end
row("baseline (full workload, C)", res.base)
for _, q in ipairs(QUERIES) do
  for _, w in ipairs(WORKERS) do
    row(format("%s, workers = %d", q == "stream" and "stream -> topic sink" or "static file query", w), res[q .. w],
      w ~= WORKERS[1] and res[q .. WORKERS[1]] or nil)
  end
end
if #failures > 0 then
  for _, f in ipairs(failures) do print("FAILED: " .. f) end
  os.exit(1)
end
print("outputs checked (groups, count_total, signal_sum against the baseline): all correct")
