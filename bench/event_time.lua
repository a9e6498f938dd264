-- bench/event_time.lua: the event-time benchmark of issue 6. `make
-- bench-event-time` runs it from the repository's root; see
-- bench/RESULTS.md, section "Event time (issue 6)".
--
--    lua5.4 bench/event_time.lua [--rounds R] [--events N] [--batch B] [--only file|topic]
--
-- The standard workload of ../shared/bench/README.md as a streaming query:
--
--    source -> where("signal >= 15") -> with_watermark("ts", "5 seconds")
--      -> group_by(tide.window("ts", "10 seconds"), "device")
--      -> agg{ n = count(*), s = sum(signal), a = avg(signal) }
--      -> sink, mode = "update", trigger 0, a real checkpoint
--
-- driven by q:process_all_available(), in batches of about B events
-- (default 100,000), state committed to the checkpoint each batch (with
-- the query's default sync = true). Sources:
--
-- 1. file: the N-event JSON file; the file source has no per-trigger row
--    limit, so max_bytes_per_trigger = B times the file's mean line length
--    (about 67 bytes), cut at line ends;
-- 2. topic: the same events produced into a typed topic once, before the
--    rounds (not timed); max_records_per_trigger = B.
-- and sinks:
-- a. Lua: a foreach_batch function that checks each output row as it
--    comes (the file query, and the topic query);
-- b. topic: a topic sink into a new topic of the same store, exactly-once
--    (the topic query too); its rows are checked after the query stopped,
--    untimed, by reading the topic back.
--
-- Each query is timed from defining the stream to q:stop() (wall time,
-- core.clock_ms, CLOCK_MONOTONIC), so it includes every batch, the no-data
-- batch that follows the last one, and the commits. Each round also runs
-- the shared `baseline` (the same workload hand-written in C) over the same
-- file: the file query's figure is reported as a ratio to it (target >=
-- 0.8x); the topic query has an absolute target (>= 5 M events/s).
--
-- Output check: update mode emits, per batch, the groups the batch
-- changed with their values so far; the check keeps the last value per
-- (device, window_start). At the end the number of groups and the totals
-- of count and sum must equal the baseline's `groups`, `count_total` and
-- `signal_sum`, every avg must equal sum / count, and the progress reports
-- must add up to N input rows; otherwise the benchmark fails (exit 1).
-- A missed target is reported as MISSED (exit 0), as the other benches do.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local SCHEMA = "ts timestamp, device string, signal int, kind string"
local RATIO_TARGET = 0.8 -- file query vs the baseline's full workload
local TOPIC_TARGET = 5e6 -- events/s from a topic

local format = string.format

local common = require "bench.common"
local B = common.new("bench-event-time")
local sh, quote = B.sh, B.quote

local opts = B.args({ ... }, { events = 5000000, rounds = 5, batch = 100000, only = "all" },
  "usage: lua5.4 bench/event_time.lua [--rounds R] [--events N] [--batch B] [--only file|topic]  "
    .. "(from the repository's root)",
  { only = { all = true, file = true, topic = true } })
local N, ROUNDS, BATCH = opts.events, opts.rounds, opts.batch
local function wanted(which) return opts.only == "all" or opts.only == which end

B.check_root("bench-event-time")
local EVENTS, JSON_BYTES = B.events(N)
-- the byte budget that makes batches of about BATCH events
local BATCH_BYTES = math.max(1, math.floor(JSON_BYTES / N * BATCH + 0.5))

local tide = require "tide"
local core = require "tide.core"
local clock = core.clock_ms

local TMP = "build/bench-event-time-tmp"
sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

local failures = {}
local function fail(msg) failures[#failures + 1] = msg end

-- The baseline's figures every query must reproduce (checked each round).
local function baseline() return B.baseline(EVENTS, N, false, JSON_BYTES) end

---------------------------------------------------------------------------
-- The topic (produced once, not timed)
---------------------------------------------------------------------------

local db
if wanted("topic") then
  io.write(format("producing %d events into a typed topic (not timed) ...\n", N))
  io.flush()
  db = tide.open(TMP .. "/store")
  local t = db:create_topic("events", { schema = SCHEMA })
  local n = t:produce(EVENTS)
  if type(n) == "number" and n ~= N then B.die(format("producing the topic appended %d events, expected %d", n, N)) end
  local stats = t:stats()
  if stats.records ~= N then B.die(format("the topic holds %d records, expected %d", stats.records, N)) end
end

---------------------------------------------------------------------------
-- One query
---------------------------------------------------------------------------

local PHASES = { "get_offset", "get_batch", "execution", "add_batch", "commit" }

local checker = common.update_checker

-- Run the workload over `make_source()` (a streaming frame) into `sink`:
-- "lua" (a foreach_batch function that checks every row as it comes) or
-- "topic" (a topic sink into a new topic of the store, checked after the
-- query stopped, untimed); returns the figures and checks the output
-- against the baseline's `want`.
local out_topics = 0
local function run_query(label, round, make_source, want, sink_kind)
  local dir = format("%s/ckpt-%s-%d", TMP, label, round)
  sh("rm -rf " .. quote(dir))
  local check = checker()
  local q
  local seen, reports = {}, {}
  local function take(p)
    if p and not seen[p.batch_id] then
      seen[p.batch_id] = true
      reports[#reports + 1] = p
    end
  end
  local sink, sink_opts = "topic", { mode = "update", checkpoint = dir, trigger = 0 }
  local out_name
  if sink_kind == "topic" then
    out_topics = out_topics + 1
    out_name = format("out-%d", out_topics)
    sink_opts.store, sink_opts.topic = db, out_name
  else
    local add = check.add
    sink = function(_, rows)
      for i = 1, #rows do add(rows[i]) end
    end
  end
  -- every batch's report (a query keeps only its last 100)
  local stop_listening = require("tide.query").on_progress(function(_, p) take(p) end)
  collectgarbage()
  collectgarbage()
  local c0, t0 = os.clock(), clock()
  local f = make_source()
    :where("signal >= 15")
    :with_watermark("ts", "5 seconds")
    :group_by(tide.window("ts", "10 seconds"), "device")
    :agg { n = "count(*)", s = "sum(signal)", a = "avg(signal)" }
  if out_name then db:create_topic(out_name, { schema = f:schema() }) end
  q = f:write_stream(sink, sink_opts)
  q:process_all_available()
  q:stop()
  local t1, c1 = clock(), os.clock()
  stop_listening()
  for _, p in ipairs(q:recent_progress()) do take(p) end
  local secs = (t1 - t0) / 1000
  if out_name then -- the output topic, in offset order (= batch order)
    for rec in db:topic(out_name):read { from = 0 } do check.add(rec) end
    db:delete_topic(out_name)
  end

  local input, data_batches, phases, max_state = 0, 0, {}, 0
  for _, ph in ipairs(PHASES) do phases[ph] = 0 end
  for _, p in ipairs(reports) do
    input = input + p.num_input_rows
    if p.num_input_rows > 0 then data_batches = data_batches + 1 end
    for _, ph in ipairs(PHASES) do phases[ph] = phases[ph] + p.duration_ms[ph] end
    max_state = math.max(max_state, p.state_operators[1].num_rows_total)
  end
  local what = format("%s, round %d", label, round)
  if #reports ~= q:last_progress().batch_id + 1 then
    fail(format("%s: %d progress reports collected, %d batches ran", what, #reports, q:last_progress().batch_id + 1))
  end
  if input ~= N then fail(format("%s: the query read %d events, expected %d", what, input, N)) end
  local groups, count_total, signal_sum, bad_avg = check.result()
  if groups ~= want.groups or count_total ~= want.count_total or signal_sum ~= want.signal_sum then
    fail(format("%s: groups=%d count_total=%d signal_sum=%d, the baseline has groups=%d count_total=%d signal_sum=%d",
      what, groups, count_total, signal_sum, want.groups, want.count_total, want.signal_sum))
  end
  if bad_avg then fail(format("%s: %s", what, bad_avg)) end
  sh("rm -rf " .. quote(dir))
  return { eps = N / secs, secs = secs, cpu = c1 - c0, batches = #reports, data_batches = data_batches,
    phases = phases, max_state = max_state }
end

local function file_source()
  return tide.read_stream("file", { path = EVENTS, format = "json", schema = SCHEMA, final_line_wait = 0,
    max_bytes_per_trigger = BATCH_BYTES })
end

local function topic_source()
  return db:read_stream("events", { starting_offset = "earliest", max_records_per_trigger = BATCH })
end

---------------------------------------------------------------------------
-- Rounds
---------------------------------------------------------------------------

print(format("tide %s event-time bench: %d rounds of %d events (%.1f MB of JSON), batches of %d events " ..
  "(file: %d bytes per trigger)", tide.version, ROUNDS, N, JSON_BYTES / 1e6, BATCH, BATCH_BYTES))
local res = { base = {}, file = {}, topic = {}, topic_topic = {} }
for round = 1, ROUNDS do
  local base = baseline()
  res.base[round] = base
  local parts = { format("baseline %.2f M/s", base.eps / 1e6) }
  if wanted("file") then
    local r = run_query("file", round, file_source, base, "lua")
    res.file[round] = r
    parts[#parts + 1] = format("file %.2f M/s (%.2fx, %d batches)", r.eps / 1e6, r.eps / base.eps, r.batches)
  end
  if wanted("topic") then
    local r = run_query("topic", round, topic_source, base, "lua")
    res.topic[round] = r
    parts[#parts + 1] = format("topic->Lua %.2f M/s (%d batches)", r.eps / 1e6, r.batches)
    r = run_query("topic-topic", round, topic_source, base, "topic")
    res.topic_topic[round] = r
    parts[#parts + 1] = format("topic->topic %.2f M/s (%d batches)", r.eps / 1e6, r.batches)
  end
  print(format("round %d/%d: %s", round, ROUNDS, table.concat(parts, ", ")))
  io.flush()
end
if db then db:close() end
sh("rm -rf " .. TMP)

---------------------------------------------------------------------------
-- Report
---------------------------------------------------------------------------

local median, verdict = common.median, common.verdict
local targets = {}
local ref = median(res.base, "eps")
print()
print(format("medians of %d rounds (min..max); groups=%d count_total=%d signal_sum=%d", ROUNDS, res.base[1].groups,
  res.base[1].count_total, res.base[1].signal_sum))
print(format("%-40s %11s %15s %9s %8s %7s %10s", "", "M events/s", "(min..max)", "wall ms", "batches", "ratio",
  "max state"))
do
  local _, lo, hi = median(res.base, "eps")
  print(format("%-40s %11.2f %15s %9.0f %8s %6.2fx %10s", "baseline (full workload, C)", ref / 1e6,
    format("(%.2f..%.2f)", lo / 1e6, hi / 1e6), median(res.base, "secs") * 1000, "", 1, ""))
end
local LINES = { { "file", "file -> Lua sink, update mode" }, { "topic", "topic -> Lua sink, update mode" },
  { "topic_topic", "topic -> topic sink, update mode" } }
for _, v in ipairs(LINES) do
  local list = res[v[1]]
  if #list > 0 then
    local eps, lo, hi = median(list, "eps")
    print(format("%-40s %11.2f %15s %9.0f %8d %6.2fx %10d", v[2], eps / 1e6, format("(%.2f..%.2f)", lo / 1e6, hi / 1e6),
      median(list, "secs") * 1000, median(list, "batches"), eps / ref, median(list, "max_state")))
  end
end
for _, v in ipairs { { "file", "file -> Lua" }, { "topic", "topic -> Lua" }, { "topic_topic", "topic -> topic" } } do
  local list = res[v[1]]
  if #list > 0 then
    local shares = {}
    for _, ph in ipairs(PHASES) do
      local l = {}
      for i, x in ipairs(list) do l[i] = { ms = x.phases[ph] } end
      shares[#shares + 1] = format("%s %.0f", ph, median(l, "ms"))
    end
    print(format("  phases, %s (ms, medians of the sums over the batches): %s; CPU %.2f s of %.2f s wall", v[2],
      table.concat(shares, ", "), median(list, "cpu"), median(list, "secs")))
  end
end
if #res.file > 0 then
  -- the ratio within each round (the query and the baseline side by side)
  local per = {}
  for i, x in ipairs(res.file) do per[i] = { r = x.eps / res.base[i].eps } end
  local rm, rlo, rhi = median(per, "r")
  print(format("  file: ratio to the baseline within each round: median %.2fx (%.2f..%.2f)", rm, rlo, rhi))
  local ratio = median(res.file, "eps") / ref
  targets[#targets + 1] = format("file source >= %.1fx the baseline: %.2f M events/s = %.2fx  %s", RATIO_TARGET,
    median(res.file, "eps") / 1e6, ratio, verdict(ratio >= RATIO_TARGET))
end
for _, v in ipairs { { "topic_topic", "topic -> topic sink" }, { "topic", "topic -> Lua sink" } } do
  if #res[v[1]] > 0 then
    local eps = median(res[v[1]], "eps")
    targets[#targets + 1] = format("topic source >= %.0f M events/s, %s: %.2f M events/s  %s", TOPIC_TARGET / 1e6,
      v[2], eps / 1e6, verdict(eps >= TOPIC_TARGET))
  end
end
print()
print("targets:")
for _, t in ipairs(targets) do print("  " .. t) end
print("  outputs checked (groups, count_total, signal_sum, avg = sum/count, input rows): " ..
  (#failures == 0 and "all correct" or "NO (below)"))

if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write("bench-event-time: FAILED: ", f, "\n") end
  os.exit(1)
end
