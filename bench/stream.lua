-- bench/stream.lua: the streaming benchmarks of issue 5 (throughput, batch
-- overhead, latency). `make bench-stream` runs it from the repository's
-- root; see bench/RESULTS.md, section "Streaming queries (issue 5)".
--
--    lua5.4 bench/stream.lua [--rounds R] [--events N] [--only throughput|overhead|latency]
--                            [--seconds S] [--rate L]
--
-- 1. Throughput: file source (the N-event JSON file, schema SCHEMA) ->
--    where("signal >= 15") -> select("ts", "device", "signal") -> file sink
--    (json), trigger 0, driven by q:process_all_available(). Events/s over
--    the whole query (start, every batch, stop), and the ratio to the
--    shared baseline's --parse-only rate measured in the same round. Run
--    twice per round: with the file source's defaults (no per-trigger
--    limit: the file is one batch) and with max_bytes_per_trigger = 16 MB
--    (about 21 batches). The output must hold exactly the events with
--    signal >= 15 (the baseline's count_total, counted independently of
--    tide with `wc -l` over the part files) or the benchmark fails.
-- 2. Batch overhead: a memory stream with one row per batch, the same
--    where/select, a foreach_batch sink; the loop a program would run:
--    add one row, q:process_all_available(), again, for at least
--    OVERHEAD_MIN_MS. Batches/s with sync = true (fsync on every offset-log
--    write and commit) and sync = false. Every batch must reach the sink
--    once, with its one row, in batch-id order.
-- 3. Latency: bench/sock_sender (C) sends RATE lines/s ("seq send_us",
--    CLOCK_MONOTONIC µs) for S seconds to a socket source; trigger 0; a
--    foreach sink stamps each row with core.clock_ms() (the same clock) and
--    keeps send-to-sink latencies; p50, p99 and max. With the defaults
--    (sync = true) and with sync = false. Every line must arrive once, in
--    order.
--
-- Rounds interleave the phases so that machine noise hits them alike; each
-- figure is the median over the rounds, with min..max. Exit status: 1 when
-- a benchmark produced wrong output, 2 on a setup error; a missed target is
-- reported as MISSED (status 0), as bench/run.lua does.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local SCHEMA = "ts timestamp, device string, signal int, kind string"
local OVERHEAD_MIN_MS = 2000 -- each batch-overhead measurement lasts at least this
local OVERHEAD_WARMUP = 50   -- batches run before the clock starts
local SPLIT_BYTES = "16MB"   -- the per-trigger limit of the throughput variant

local format = string.format

local common = require "bench.common"
local B = common.new("bench-stream")
local die, exists, sh, quote, capture, read_file = B.die, B.exists, B.sh, B.quote, B.capture, B.read_file

local opts = B.args({ ... }, { events = 5000000, rounds = 5, seconds = 3, rate = 50000, only = "all" },
  "usage: lua5.4 bench/stream.lua [--rounds R] [--events N] [--only throughput|overhead|latency] "
    .. "[--seconds S] [--rate L]  (from the repository's root)",
  { only = { all = true, throughput = true, overhead = true, latency = true } })
local N, ROUNDS, SECONDS, RATE = opts.events, opts.rounds, opts.seconds, opts.rate
local function wanted(which) return opts.only == "all" or opts.only == which end

B.check_root("bench-stream")
local SENDER = "build/bench/sock_sender"
if wanted("latency") and not exists(SENDER) then
  die("no " .. SENDER .. ": build it with `make bench-stream` (or `make " .. SENDER .. "`)")
end
local EVENTS, JSON_BYTES
if wanted("throughput") then EVENTS, JSON_BYTES = B.events(N) end

local tide = require "tide"
local core = require "tide.core"
local clock = core.clock_ms -- CLOCK_MONOTONIC in ms, µs resolution

local TMP = "build/bench-stream-tmp"
sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

local failures = {}
local function fail(msg) failures[#failures + 1] = msg end

---------------------------------------------------------------------------
-- Throughput
---------------------------------------------------------------------------

local function baseline(parse_only) return B.baseline(EVENTS, N, parse_only) end

-- The events the where clause keeps, counted by the baseline (not by tide).
local EXPECTED_ROWS
if wanted("throughput") then
  EXPECTED_ROWS = tonumber(baseline(false).out:match("count_total=(%d+)"))
  if not EXPECTED_ROWS then die("the baseline printed no count_total") end
end

-- Rows in the sink's part files: lines counted by wc, outside tide.
local function output_rows(dir)
  local parts = core.glob(dir .. "/part-*") or {}
  if #parts == 0 then return 0, 0 end
  local total = 0
  for _, p in ipairs(parts) do total = total + tonumber(capture("wc -l < " .. quote(p)):match("%d+")) end
  return total, #parts
end

-- One throughput run; split = the max_bytes_per_trigger or nil.
local function throughput(label, round, split)
  local dir = format("%s/tp-%d-%s", TMP, round, split and "split" or "whole")
  sh("rm -rf " .. quote(dir))
  collectgarbage()
  collectgarbage()
  local c0, t0 = os.clock(), clock()
  local src = tide.read_stream("file", { path = EVENTS, format = "json", schema = SCHEMA,
    final_line_wait = 0, max_bytes_per_trigger = split })
  local q = src:where("signal >= 15"):select("ts", "device", "signal")
    :write_stream("file", { path = dir .. "/out", format = "json", checkpoint = dir .. "/ckpt", trigger = 0 })
  q:process_all_available()
  q:stop()
  local t1, c1 = clock(), os.clock()
  local secs = (t1 - t0) / 1000
  local input, batches, phases = 0, 0, { get_offset = 0, get_batch = 0, execution = 0, add_batch = 0, commit = 0 }
  for _, p in ipairs(q:recent_progress()) do
    input, batches = input + p.num_input_rows, batches + 1
    for k in pairs(phases) do phases[k] = phases[k] + p.duration_ms[k] end
  end
  local rows, files = output_rows(dir .. "/out")
  if input ~= N then fail(format("%s, round %d: the query read %d events, expected %d", label, round, input, N)) end
  if rows ~= EXPECTED_ROWS then
    fail(format("%s, round %d: the output holds %d rows in %d files, expected %d (events with signal >= 15)",
      label, round, rows, files, EXPECTED_ROWS))
  end
  sh("rm -rf " .. quote(dir))
  return { eps = N / secs, secs = secs, cpu = c1 - c0, batches = batches, phases = phases }
end

---------------------------------------------------------------------------
-- Batch overhead
---------------------------------------------------------------------------

local function overhead(label, round, sync)
  local dir = format("%s/bo-%d-%s", TMP, round, tostring(sync))
  sh("rm -rf " .. quote(dir))
  local ms = tide.memory_stream(SCHEMA)
  local seen, bad = 0, nil
  local function sink(id, rows)
    if not bad and (id ~= seen or #rows ~= 1 or rows[1].signal ~= 20) then
      bad = format("batch %d (expected %d) with %d rows", id, seen, #rows)
    end
    seen = seen + 1
  end
  local q = ms:frame():where("signal >= 15"):select("ts", "device", "signal")
    :write_stream(sink, { checkpoint = dir, sync = sync, trigger = 0 })
  local row = { ts = 1700000000000, device = "dev-1", signal = 20, kind = "view" }
  local n = 0
  local function one()
    n = n + 1
    row.ts = 1700000000000 + n
    ms:add { row }
    q:process_all_available()
  end
  for _ = 1, OVERHEAD_WARMUP do one() end
  local start_n = n
  collectgarbage()
  local t0 = clock()
  local t1
  repeat
    one()
    t1 = clock()
  until t1 - t0 >= OVERHEAD_MIN_MS
  local timed_batches = n - start_n
  q:stop()
  if bad then fail(format("%s, round %d: the sink got %s", label, round, bad)) end
  if seen ~= n then fail(format("%s, round %d: %d batches reached the sink, expected %d", label, round, seen, n)) end
  sh("rm -rf " .. quote(dir))
  return { bps = timed_batches / (t1 - t0) * 1000, batches = timed_batches, us = (t1 - t0) * 1000 / timed_batches }
end

---------------------------------------------------------------------------
-- Latency
---------------------------------------------------------------------------

-- Start the latency query on a free port (tried from a random start).
local function start_socket_query(stamp, opts_)
  local base = 20000 + math.random(0, 20000)
  local last
  for k = 0, 49 do
    local port = base + k
    local ok, q = pcall(function()
      return tide.read_stream("socket", { port = port })
        :write_stream("foreach", { fn = stamp, trigger = 0, checkpoint = opts_.checkpoint, sync = opts_.sync })
    end)
    if ok then return q, port end
    last = q
    if not tostring(q):find("address already in use", 1, true) then break end
  end
  die("cannot start the socket query: " .. tostring(last))
end

local function percentile(sorted, p)
  local i = math.max(1, math.ceil(#sorted * p))
  return sorted[i]
end

local function latency(label, round, sync)
  local dir = format("%s/lat-%d-%s", TMP, round, tostring(sync))
  sh("rm -rf " .. quote(dir))
  local total = RATE * SECONDS
  local lat, n, order = {}, 0, nil
  local match = string.match
  local function stamp(row)
    local now = clock()
    local seq, us = match(row.value, "^(%d+) (%d+)$")
    n = n + 1
    lat[n] = now - tonumber(us) / 1000
    if not order and tonumber(seq) ~= n - 1 then order = format("line %d arrived as row %d", seq, n - 1) end
  end
  collectgarbage()
  local q, port = start_socket_query(stamp, { checkpoint = dir .. "/ckpt", sync = sync })
  local out, err = dir .. "/sender.out", dir .. "/sender.err"
  sh(format("%s %d %d %d > %s 2> %s &", SENDER, port, RATE, SECONDS, quote(out), quote(err)))
  local deadline = clock() + SECONDS * 1000 + 20000
  local sent
  while true do
    q:await(20)
    local text = read_file(out) or ""
    sent = tonumber(text:match("sent=(%d+)"))
    local e = read_file(err) or ""
    if e ~= "" then
      q:stop()
      die(format("%s: the sender failed: %s", label, e))
    end
    if sent and n >= sent then break end
    if clock() > deadline then break end
  end
  q:stop()
  local progress = q:recent_progress()
  local sender = read_file(out) or ""
  if sent ~= total then
    fail(format("%s, round %d: the sender sent %s lines, expected %d (%s)", label, round, tostring(sent), total,
      sender))
  end
  if n ~= total then fail(format("%s, round %d: %d rows reached the sink, %d were sent", label, round, n, total)) end
  if order then fail(format("%s, round %d: out of order: %s", label, round, order)) end
  sh("rm -rf " .. quote(dir))
  table.sort(lat)
  local batches = #progress -- the last KEEP_PROGRESS only: the mean rows per batch comes from them
  local rows = 0
  for _, p in ipairs(progress) do rows = rows + p.num_input_rows end
  return { p50 = percentile(lat, 0.5), p99 = percentile(lat, 0.99), max = lat[#lat],
    rows_per_batch = batches > 0 and rows / batches or 0, late = tonumber(sender:match("late_max_us=(%d+)")) or 0 }
end

---------------------------------------------------------------------------
-- Rounds
---------------------------------------------------------------------------

math.randomseed(os.time())
local what = {}
if wanted("throughput") then
  what[#what + 1] = format("throughput over %d events (%.1f MB of JSON, %d kept)", N, JSON_BYTES / 1e6, EXPECTED_ROWS)
end
if wanted("overhead") then what[#what + 1] = format("batch overhead >= %d ms per measurement", OVERHEAD_MIN_MS) end
if wanted("latency") then what[#what + 1] = format("latency at %d lines/s for %d s", RATE, SECONDS) end
print(format("tide %s stream bench: %d rounds; %s", tide.version, ROUNDS, table.concat(what, "; ")))

local res = { parse = {}, tp = {}, tp_split = {}, bo_sync = {}, bo_nosync = {}, lat_sync = {}, lat_nosync = {} }
for round = 1, ROUNDS do
  local r, parts = {}, {}
  if wanted("throughput") then
    r.parse = baseline(true)
    r.tp = throughput("throughput", round, nil)
    r.tp_split = throughput("throughput, " .. SPLIT_BYTES .. " per trigger", round, SPLIT_BYTES)
    parts[#parts + 1] = format("parse-only %.2f M/s, throughput %.2f M/s (%.2fx), %s/trigger %.2f M/s (%d batches)",
      r.parse.eps / 1e6, r.tp.eps / 1e6, r.tp.eps / r.parse.eps, SPLIT_BYTES, r.tp_split.eps / 1e6,
      r.tp_split.batches)
  end
  if wanted("overhead") then
    r.bo_sync = overhead("batch overhead, sync = true", round, true)
    r.bo_nosync = overhead("batch overhead, sync = false", round, false)
    parts[#parts + 1] = format("batches/s sync %.0f, no sync %.0f", r.bo_sync.bps, r.bo_nosync.bps)
  end
  if wanted("latency") then
    r.lat_sync = latency("latency, sync = true", round, true)
    r.lat_nosync = latency("latency, sync = false", round, false)
    parts[#parts + 1] = format("latency p50/p99 ms: sync %.2f/%.2f, no sync %.2f/%.2f", r.lat_sync.p50,
      r.lat_sync.p99, r.lat_nosync.p50, r.lat_nosync.p99)
  end
  for k, v in pairs(r) do table.insert(res[k], v) end
  print(format("round %d/%d: %s", round, ROUNDS, table.concat(parts, "; ")))
  io.flush()
end
sh("rm -rf " .. TMP)

---------------------------------------------------------------------------
-- Report
---------------------------------------------------------------------------

local median, verdict = common.median, common.verdict
local targets = {}

print()
print(format("medians of %d rounds (min..max)", ROUNDS))
if wanted("throughput") then
  local ref = median(res.parse, "eps")
  print(format("%-36s %11s %17s %9s %9s %7s", "throughput", "M events/s", "(min..max)", "wall ms", "batches",
    "ratio"))
  print(format("%-36s %11.2f %17s %9s %9s %6.2fx", "baseline --parse-only", ref / 1e6,
    format("(%.2f..%.2f)", select(2, median(res.parse, "eps")) / 1e6, select(3, median(res.parse, "eps")) / 1e6),
    "", "", 1))
  for _, v in ipairs { { "tp", "file -> where/select -> file" }, { "tp_split", "the same, " .. SPLIT_BYTES ..
    " per trigger" } } do
    local list = res[v[1]]
    local eps, lo, hi = median(list, "eps")
    print(format("%-36s %11.2f %17s %9.0f %9d %6.2fx", v[2], eps / 1e6, format("(%.2f..%.2f)", lo / 1e6, hi / 1e6),
      median(list, "secs") * 1000, median(list, "batches"), eps / ref))
  end
  -- where the time goes: each phase's share of the batches' total, medians
  for _, v in ipairs { { "tp", "whole file" }, { "tp_split", SPLIT_BYTES .. " per trigger" } } do
    local shares = {}
    for _, ph in ipairs { "get_offset", "get_batch", "execution", "add_batch", "commit" } do
      local list = {}
      for i, x in ipairs(res[v[1]]) do list[i] = { ms = x.phases[ph] } end
      shares[#shares + 1] = format("%s %.0f", ph, median(list, "ms"))
    end
    print(format("  phases, %s (ms, medians of the sums over the batches): %s", v[2], table.concat(shares, ", ")))
  end
  print(format("  CPU seconds (os.clock), median: %.2f of %.2f wall (whole file)", median(res.tp, "cpu"),
    median(res.tp, "secs")))
  -- the ratio within each round (tide and the baseline side by side) is
  -- less exposed to the machine's drift than the ratio of the medians
  local per = {}
  for i, x in ipairs(res.tp) do per[i] = { r = x.eps / res.parse[i].eps } end
  local rm, rlo, rhi = median(per, "r")
  print(format("  ratio to parse-only within each round (whole file): median %.2fx (%.2f..%.2f)", rm, rlo, rhi))
  local ratio = median(res.tp, "eps") / ref
  targets[#targets + 1] = format("throughput >= 0.6x parse-only:   %.2f M events/s = %.2fx  %s",
    median(res.tp, "eps") / 1e6, ratio, verdict(ratio >= 0.6))
  print()
end
if wanted("overhead") then
  print(format("%-36s %11s %17s %11s %9s", "batch overhead (1 row per batch)", "batches/s", "(min..max)", "µs/batch",
    "batches"))
  for _, v in ipairs { { "bo_sync", "sync = true (fsync)" }, { "bo_nosync", "sync = false" } } do
    local list = res[v[1]]
    local bps, lo, hi = median(list, "bps")
    print(format("%-36s %11.0f %17s %11.0f %9d", v[2], bps, format("(%.0f..%.0f)", lo, hi), median(list, "us"),
      median(list, "batches")))
  end
  local b = median(res.bo_nosync, "bps")
  targets[#targets + 1] = format("batch overhead >= 5,000 batches/s without fsync: %.0f  %s", b, verdict(b >= 5000))
  print()
end
if wanted("latency") then
  print(format("%-36s %15s %15s %15s %9s %9s", "latency (ms, send to sink)", "p50 (min..max)", "p99 (min..max)",
    "max (min..max)", "rows/batch", "sender late ms"))
  for _, v in ipairs { { "lat_sync", "sync = true (fsync)" }, { "lat_nosync", "sync = false" } } do
    local list = res[v[1]]
    local function cell(f)
      local m, lo, hi = median(list, f)
      return format("%.2f (%.1f..%.1f)", m, lo, hi)
    end
    print(format("%-36s %15s %15s %15s %9.0f %9.2f", v[2], cell("p50"), cell("p99"), cell("max"),
      median(list, "rows_per_batch"), median(list, "late") / 1000))
  end
  local p99 = median(res.lat_sync, "p99")
  local p99n = median(res.lat_nosync, "p99")
  targets[#targets + 1] = format("latency p99 < 10 ms at %d rows/s: %.2f ms (sync = false: %.2f ms)  %s", RATE,
    p99, p99n, verdict(p99 < 10))
  print()
end
print("targets:")
for _, t in ipairs(targets) do print("  " .. t) end
print("  outputs checked (row counts, batch ids, line order): " .. (#failures == 0 and "all correct" or "NO (below)"))

if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write("bench-stream: FAILED: ", f, "\n") end
  os.exit(1)
end
