-- bench/kafka.lua: the Kafka benchmark of issue 14 (source, query, exactly-once sink). `make
-- bench-kafka` runs it from the repository's root; see bench/RESULTS.md,
-- section "Kafka: source -> query -> exactly-once sink (issue 14)".
--
--    lua5.4 bench/kafka.lua [--rounds R] [--events N] [--batch B] [--partitions P]
--
-- The N events of ../shared/bench's generator are produced once, untimed,
-- with kcat (the standard client), event i into partition i mod P, into a
-- topic of P partitions (default 4)
-- of the project's test broker (spec/kafka_broker.lua: librdkafka's mock
-- cluster on loopback, one broker). Each round then runs, over the same
-- messages:
--
-- 1. consumer: bench/kafka_consume, a plain librdkafka consumer loop that
--    reads every message and touches its bytes (nothing else);
-- 2. tide: the standard workload as a streaming query,
--       read_stream("kafka", json, the events' schema, max_offsets_per_trigger = B)
--         -> where("signal >= 15") -> with_watermark("ts", "5 seconds")
--         -> group_by(tide.window("ts", "10 seconds"), "device")
--         -> agg{ n = count(*), s = sum(signal), a = avg(signal) }
--         -> the Kafka sink (update mode, exactly-once: one transaction per
--            batch) into a topic of one partition of the same broker
--    driven by q:process_all_available(), timed from defining the stream to
--    q:stop() (so every batch, its transaction, its commit and the offset
--    log are in);
-- 3. the shared baseline (the same workload hand-written in C, over the
--    events' file).
--
-- Reported: medians of the rounds; tide's events/s as a ratio to the
-- consumer loop's (target >= 0.7x: tide's overhead over the client
-- library) and to the baseline's. The output is checked each round, untimed:
-- the output topic read back by kcat as a read_committed consumer, in
-- commit order (the last update of each group wins): groups, count_total
-- and signal_sum equal to the baseline's, avg = sum / count, N input rows in
-- the progress reports; otherwise the benchmark fails (exit 1). A missed
-- target is reported as MISSED (exit 0), as the other benches do.

package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local SCHEMA = "ts timestamp, device string, signal int, kind string"
local RATIO_TARGET = 0.7

local format = string.format

local common = require "bench.common"
local B = common.new("bench-kafka")
local sh, quote, median = B.sh, B.quote, common.median

local opts = B.args({ ... }, { events = 5000000, rounds = 3, batch = 500000, partitions = 4 },
  "usage: lua5.4 bench/kafka.lua [--rounds R] [--events N] [--batch B] [--partitions P]  (from the repository's root)")
local N, ROUNDS, BATCH, PARTS = opts.events, opts.rounds, opts.batch, opts.partitions

B.check_root("bench-kafka")
local EVENTS, JSON_BYTES = B.events(N)
local CONSUME = "build/bench/kafka_consume"
if not B.exists(CONSUME) then B.die(CONSUME .. " is missing (make bench-kafka builds it)") end

local tide = require "tide"
local core = require "tide.core"
local kafka_broker = require "kafka_broker"
local cjson = require "cjson"
local clock = core.clock_ms

local TMP = "build/bench-kafka-tmp"
sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

local failures = {}
local function fail(msg) failures[#failures + 1] = msg end

local function baseline() return B.baseline(EVENTS, N, false, JSON_BYTES) end

-- CPU seconds the broker process has used so far (user + system).
local broker_cpu = B.cpu_seconds

local broker = kafka_broker.start(1)
local ok, err = pcall(function()
  broker:create_topic("events", PARTS)
  io.write(format("producing %d events into topic 'events' (%d partitions) with kcat (not timed) ...\n", N, PARTS))
  io.flush()
  local t0 = clock()
  -- round robin: event i to partition i % P, so that every partition
  -- holds the same number of events over the same span of event time (the
  -- source splits each batch's offsets evenly over the partitions, and the
  -- watermark then drops no event as late)
  B.kcat_round_robin(broker.bootstrap, "events", EVENTS, PARTS)
  local held = 0
  for p = 0, PARTS - 1 do
    local _, stop = broker:offsets("events", p)
    held = held + stop
  end
  if held ~= N then B.die(format("the topic holds %d messages, expected %d", held, N)) end
  io.write(format("produced in %.1f s\n", (clock() - t0) / 1000))

  local res = { base = {}, consumer = {}, tide = {} }
  for round = 1, ROUNDS do
    local base = baseline()
    res.base[round] = base
    -- the client library alone
    local bc0 = broker_cpu(broker.pid)
    local out = B.capture(format("%s %s events %d", CONSUME, quote(broker.bootstrap), N))
    local ceps = tonumber(out:match("messages_per_s=([%d.]+)"))
    if not ceps or tonumber(out:match("messages=(%d+)")) ~= N then B.die("kafka_consume: " .. out) end
    res.consumer[round] = { eps = ceps, cpu = tonumber(out:match("cpu_seconds=([%d.]+)")),
      broker = broker_cpu(broker.pid) - bc0 }
    -- tide
    local dir = format("%s/ckpt-%d", TMP, round)
    local out_name = format("out-%d", round)
    broker:create_topic(out_name, 1)
    local check = common.update_checker()
    collectgarbage()
    collectgarbage()
    local c0, t0r, bt0 = os.clock(), clock(), broker_cpu(broker.pid)
    local f = tide.read_stream("kafka", { bootstrap = broker.bootstrap, subscribe = "events",
        starting_offsets = "earliest", format = "json", schema = SCHEMA, max_offsets_per_trigger = BATCH })
      :where("signal >= 15")
      :with_watermark("ts", "5 seconds")
      :group_by(tide.window("ts", "10 seconds"), "device")
      :agg { n = "count(*)", s = "sum(signal)", a = "avg(signal)" }
    local q = f:write_stream("kafka", { bootstrap = broker.bootstrap, topic = out_name, mode = "update",
      checkpoint = dir, trigger = 0 })
    q:process_all_available()
    q:stop()
    local secs, cpu, bcpu = (clock() - t0r) / 1000, os.clock() - c0, broker_cpu(broker.pid) - bt0
    local input, phases = 0, {}
    for _, p in ipairs(q:recent_progress()) do
      input = input + p.num_input_rows
      for k, v in pairs(p.duration_ms) do phases[k] = (phases[k] or 0) + v end
    end
    local what = format("round %d", round)
    if #q:recent_progress() == q:last_progress().batch_id + 1 and input ~= N then
      fail(format("%s: the query read %d events, expected %d", what, input, N))
    end
    -- the output as a read_committed consumer sees it (kcat), in commit
    -- order (one partition): the last update of each group wins
    local committed = broker:read(out_name, { isolation = "read_committed" })
    for _, m in ipairs(committed) do check.add(cjson.decode(m.value)) end
    local groups, count_total, signal_sum, bad_avg = check.result()
    if groups ~= base.groups or count_total ~= base.count_total or signal_sum ~= base.signal_sum then
      fail(format("%s: groups=%d count_total=%d signal_sum=%d, the baseline has groups=%d count_total=%d " ..
        "signal_sum=%d", what, groups, count_total, signal_sum, base.groups, base.count_total, base.signal_sum))
    end
    if bad_avg then fail(what .. ": " .. bad_avg) end
    sh("rm -rf " .. quote(dir))
    res.tide[round] = { eps = N / secs, secs = secs, cpu = cpu, broker = bcpu,
      batches = q:last_progress().batch_id + 1, phases = phases }
    io.write(format("round %d/%d: baseline %.2f M/s, consumer loop %.2f M/s, tide %.2f M/s (%.1f s, %d batches)\n",
      round, ROUNDS, base.eps / 1e6, ceps / 1e6, N / secs / 1e6, secs, res.tide[round].batches))
    io.flush()
  end

  local tide_eps, tlo, thi = median(res.tide, "eps")
  local cons_eps, clo, chi = median(res.consumer, "eps")
  local base_eps, blo, bhi = median(res.base, "eps")
  print(format("\nKafka bench (source -> query -> exactly-once sink): %d events (%.1f MB of JSON) in %d " ..
    "partitions, batches of %d offsets, " ..
    "%d rounds (medians, min..max)\n", N, JSON_BYTES / 1e6, PARTS, BATCH, ROUNDS))
  print(format("| %-46s | %-24s |", "run", "M events/s"))
  print("|" .. string.rep("-", 48) .. "|" .. string.rep("-", 26) .. "|")
  print(format("| %-46s | %6.2f (%5.2f..%5.2f)     |", "librdkafka consumer loop (bench/kafka_consume)",
    cons_eps / 1e6, clo / 1e6, chi / 1e6))
  print(format("| %-46s | %6.2f (%5.2f..%5.2f)     |", "tide: kafka -> windowed agg -> kafka sink", tide_eps / 1e6,
    tlo / 1e6, thi / 1e6))
  print(format("| %-46s | %6.2f (%5.2f..%5.2f)     |", "shared baseline (file, hand-written C)", base_eps / 1e6,
    blo / 1e6, bhi / 1e6))
  print(format("\n  CPU (medians): tide query %.1f s of %.1f s wall, the broker meanwhile %.1f s; consumer loop " ..
    "%.1f s, the broker meanwhile %.1f s", median(res.tide, "cpu"), median(res.tide, "secs"),
    median(res.tide, "broker"), median(res.consumer, "cpu"), median(res.consumer, "broker")))
  -- where the time goes: each phase's sum over the batches, medians of the rounds
  local shares = {}
  for _, ph in ipairs { "get_offset", "get_batch", "execution", "add_batch", "commit" } do
    local l = {}
    for i, x in ipairs(res.tide) do l[i] = { ms = x.phases[ph] or 0 } end
    shares[#shares + 1] = format("%s %.0f", ph, median(l, "ms"))
  end
  print("  phases of the tide query (ms): " .. table.concat(shares, ", "))
  -- the ratios within each round
  local per_c, per_b = {}, {}
  for i, x in ipairs(res.tide) do
    per_c[i] = { r = x.eps / res.consumer[i].eps }
    per_b[i] = { r = x.eps / res.base[i].eps }
  end
  local rc, rclo, rchi = median(per_c, "r")
  local rb, rblo, rbhi = median(per_b, "r")
  print(format("  tide / consumer loop: %.2fx (%.2f..%.2f) (target >= %.1fx: %s)", rc, rclo, rchi, RATIO_TARGET,
    common.verdict(rc >= RATIO_TARGET)))
  print(format("  tide / baseline: %.2fx (%.2f..%.2f)", rb, rblo, rbhi))
  print("  outputs checked (groups, count_total, signal_sum, avg = sum/count, input rows): " ..
    (#failures == 0 and "all correct" or "NO (below)"))
end)
broker:stop()
sh("rm -rf " .. TMP)
if not ok then B.die(tostring(err)) end
if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write("bench-kafka: FAILED: ", f, "\n") end
  os.exit(1)
end
