-- bench/scaleout.lua: the scale-out benchmark of issue 15. `make
-- bench-scaleout` runs it from the repository's root; see bench/RESULTS.md,
-- section "Scale-out on Kafka (issue 15)".
--
--    lua5.4 bench/scaleout.lua [--rounds R] [--events N] [--partitions P] [--workers W] [--timeout S]
--                              [--plan repartition|keyed]
--
-- Before each run the N events of ../shared/bench's generator are
-- produced, untimed, with kcat into topic `events` of P partitions (4 by
-- default) of a fresh test broker (spec/kafka_broker.lua, one broker on
-- loopback; why fresh: at produce_input):
-- with --plan repartition (the default) event i into partition i mod P,
-- without a key, and the query groups by the column device, so that under
-- an application id the aggregation repartitions by device through a Kafka
-- topic (two sub-topologies); with --plan keyed each event keyed by its
-- device (kcat's partitioner: a device's events in one partition), and the
-- query groups by the message key (kafka_key), so no repartition. Then one
-- more event per partition, an hour of event time
-- later (device "flush"): it moves every task's watermark past the last
-- window, so that every window of the N events is emitted in append mode
-- (its own window stays open and is never emitted).
--
-- Each round then runs the standard workload (bench/scaleout_job.lua:
-- where signal >= 15, 5 s watermark, count/sum/avg of signal per device and
-- 10 s window, appended to a Kafka topic, exactly-once) as `tide run`
-- processes of their own, in three configurations, in an order that rotates
-- between rounds:
--
-- - app x1: one process under `tide run --application-id` (the scale-out
--   runtime: a consumer group, a task per partition and sub-topology, one
--   transaction per commit cycle);
-- - app x2: two such processes of one application, started together;
-- - single: one ordinary query (`tide run` with a checkpoint, no
--   application id, batches of 500k offsets), the reference without the
--   scale-out machinery;
--
-- and the shared baseline (the workload hand-written in C, over the events'
-- file, one thread). Every run has a fresh application id (or checkpoint)
-- and a fresh output topic; TIDE_WORKERS=W (default 1) in every tide
-- process, so that a process decodes on one thread and the scaling comes
-- from the processes alone.
--
-- Timing: a plain librdkafka consumer (build/bench/kafka_consume,
-- read_committed) follows the output topic; a run ends when the last
-- expected row is seen. "total" runs from the processes' start to then;
-- "processing" from the start of the first batch (commit cycle) that any
-- of the run's processes ran, the timestamp of its first progress report
-- (--log-progress), to then: it leaves out the start-up (processes, group
-- joins, opening the tasks), which does not depend on N, and keeps all the
-- rest (a process that got its tasks late, a rebalance, the pipeline's
-- last cycles). events/s = N / processing. The scaling ratio (target >=
-- 1.6x) is app x2 / app x1 events/s in the same round; the ratio of the
-- totals is reported too.
--
-- Checked for every run, untimed, after its processes have stopped
-- (SIGTERM: a clean stop, which must exit 0): the output topic read back
-- (read_committed) has exactly one row per (device, window) of the
-- baseline over the same events, their count and signal sums equal the
-- baseline's, avg = sum / count; under an application id the group's
-- committed input offsets are every partition's end. Otherwise the
-- benchmark fails (exit 1). A missed target is reported as MISSED (exit 0),
-- as the other benches do.

package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local RATIO_TARGET = 1.6
local START_TS = 1700000000000 -- gen_events' default --start
local JOB = "bench/scaleout_job.lua"
local CONSUME = "build/bench/kafka_consume"
local POLL_S = 0.25 -- how often the run's processes and follower are looked at

local format = string.format

local common = require "bench.common"
local B = common.new("bench-scaleout")
local sh, quote, median = B.sh, B.quote, common.median

local opts = B.args({ ... }, { events = 5000000, rounds = 3, partitions = 4, workers = 1, timeout = 900,
    plan = "repartition" },
  "usage: lua5.4 bench/scaleout.lua [--rounds R] [--events N] [--partitions P] [--workers W] [--timeout S] " ..
  "[--plan repartition|keyed]  (from the repository's root)", { plan = { repartition = true, keyed = true } })
local N, ROUNDS, PARTS, WORKERS, TIMEOUT_S = opts.events, opts.rounds, opts.partitions, opts.workers, opts.timeout
local PLAN = opts.plan

B.check_root("bench-scaleout")
local EVENTS, JSON_BYTES = B.events(N)
-- the expected output: the baseline's groups and totals over the events
local EXPECTED = B.baseline(EVENTS, N, false)

local cjson = require "cjson"
local core = require "tide.core"
local kafka_broker = require "kafka_broker"
local clock = core.clock_ms

local TMP = "build/bench-scaleout-tmp"
sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

local failures = {}
local function fail(msg)
  failures[#failures + 1] = msg
  io.write("  FAILED: ", msg, "\n")
  io.flush()
end

local function sleep(s) os.execute(format("sleep %.3f", s)) end

local function loadavg()
  return (B.read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
end

local cpu_of = B.cpu_seconds

local function tail(path, n)
  local s = B.read_file(path) or ""
  local lines = {}
  for l in s:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, " | ", math.max(1, #lines - (n or 5) + 1))
end

-- A process in the background: `argv` (already quoted words) with its
-- output in dir/log; its pid in dir/pid once started, its exit status in
-- dir/status once it has ended.
local function spawn(dir, words, env)
  sh("mkdir -p " .. quote(dir))
  local inner = format("%s %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s", env or "", table.concat(words, " "),
    quote(dir .. "/log"), quote(dir .. "/pid"), quote(dir .. "/status"))
  sh(format("sh -c %s </dev/null >/dev/null 2>&1 &", quote(inner)))
  local pid
  for _ = 1, 200 do
    pid = tonumber(B.read_file(dir .. "/pid") or "")
    if pid then break end
    sleep(0.01)
  end
  if not pid then B.die("could not start: " .. table.concat(words, " ")) end
  return { dir = dir, pid = pid }
end

local function exit_status(p) return tonumber(B.read_file(p.dir .. "/status") or "") end

-- Every run has a broker of its own, started afresh with the input: the
-- test broker (librdkafka's mock) keeps every message of every topic in
-- its memory, and measured (bench/RESULTS.md, 2026-12-07) it and the
-- processes it served took up to twice the CPU per run once the topics of
-- a few earlier runs (1.5-4 GB) were held; a Kafka broker keeps them in
-- files.
local broker, admin

local function fresh_broker()
  if admin then pcall(admin.stop, admin) end
  if broker then broker:stop() end
  broker = kafka_broker.start(1)
  admin = broker:client()
  -- Kafka's default group.initial.rebalance.delay.ms: processes started
  -- together join the application's first generation together
  broker:group_initial_delay(3000)
end

-- A fresh broker with the input topic: the N events (round robin, or keyed
-- by device), then the flush events. Returns { topic, n, ends = { [p] =
-- end offset } }.
local function produce_input(topic, n)
  fresh_broker()
  local file = EVENTS
  broker:create_topic(topic, PARTS)
  io.write(format("producing %d events into topic '%s' (%d partitions) with kcat (not timed) ...\n", n, topic, PARTS))
  io.flush()
  local t0 = clock()
  if PLAN == "keyed" then
    -- key TAB event; kcat's partitioner puts a key's messages in one partition
    sh(format("awk '{ match($0, /\"device\":\"[^\"]*\"/); print substr($0, RSTART + 10, RLENGTH - 11) \"\\t\" $0 }' " ..
      "%s | env -u LD_PRELOAD kcat -P -K '\\t' -b %s -t %s -X linger.ms=20 -X batch.num.messages=10000 " ..
      "-X queue.buffering.max.messages=1000000 -X log_level=3", quote(file), quote(broker.bootstrap), quote(topic)))
  else
    B.kcat_round_robin(broker.bootstrap, topic, file, PARTS)
  end
  local flush_ts = START_TS + n + 3600 * 1000
  for p = 0, PARTS - 1 do
    admin:produce(topic, p, "flush", format('{"ts":%d,"device":"flush","signal":100,"kind":"flush"}', flush_ts))
  end
  local ends, held = {}, 0
  for p = 0, PARTS - 1 do
    local _, stop = broker:offsets(topic, p)
    ends[p] = stop
    held = held + stop
  end
  if held ~= n + PARTS then B.die(format("topic %s holds %d messages, expected %d", topic, held, n + PARTS)) end
  io.write(format("produced in %.1f s\n", (clock() - t0) / 1000))
  return { topic = topic, n = n, ends = ends }
end

-- The output check: one row per (device, window_start), and the baseline's
-- totals. Returns nil or what is wrong.
local function check_output(topic, base)
  local rows = broker:read(topic)
  local seen, groups, count_total, signal_sum = {}, 0, 0, 0
  for _, r in ipairs(rows) do
    local ok, v = pcall(cjson.decode, r.value or "")
    if ok and type(v) == "table" then v.device = v.device or v.kafka_key end
    if not ok or type(v) ~= "table" or not (v.device and v.window_start and v.n and v.s and v.a) then
      return format("partition %d offset %d: not a row of the workload: %s", r.partition, r.offset, tostring(r.value))
    end
    local key = tostring(v.device) .. "\0" .. tostring(v.window_start)
    if seen[key] then
      return format("the window %s of device %s appears twice (partition %d offset %d)", tostring(v.window_start),
        v.device, r.partition, r.offset)
    end
    seen[key] = true
    groups, count_total, signal_sum = groups + 1, count_total + v.n, signal_sum + v.s
    if math.abs(v.a - v.s / v.n) > 1e-9 * math.abs(v.a) then
      return format("device %s window %s: avg %s, sum/count %s", v.device, tostring(v.window_start), v.a, v.s / v.n)
    end
  end
  if groups ~= base.groups or count_total ~= base.count_total or signal_sum ~= base.signal_sum then
    return format("groups=%d count_total=%d signal_sum=%d, the baseline has groups=%d count_total=%d signal_sum=%d",
      groups, count_total, signal_sum, base.groups, base.count_total, base.signal_sum)
  end
  return nil
end

-- One configuration: `procs` processes (0: the single query), fresh
-- application id / checkpoint and output topic. Returns its figures, or
-- nil when it failed (the failure recorded).
local function run(name, procs, round, input)
  local base, ends, failed_before = EXPECTED, input.ends, #failures
  local id = format("bench-%s-%s-%d", name:gsub("%W", ""), input.topic, round)
  local out_topic = id .. "-out"
  local dir = format("%s/%s", TMP, id)
  broker:create_topic(out_topic, PARTS)
  -- the output's follower (bench/kafka_consume, read_committed; the test
  -- broker answers its waiting fetches as soon as a transaction commits):
  -- it exits once the expected rows have come, printing the time of day
  -- the last came (last_unix_ms, the clock of the progress reports'
  -- timestamps). It writes nothing per row and the loop below looks at it
  -- every POLL_S: on a 2-core machine a follower that wrote each row to a
  -- file (kcat -u) and a loop that forked a `sleep` every 50 ms took a
  -- fifth of the CPU from the two processes of "app x2"
  local watcher = spawn(dir .. "/watch", { CONSUME, quote(broker.bootstrap), quote(out_topic),
    tostring(base.groups) })
  local env = format("TIDE_WORKERS=%d", WORKERS)
  local load0, bcpu0 = loadavg(), cpu_of(broker.pid)
  local t0, t0_unix = clock(), core.time_now()
  local ps = {}
  local function tide_run(i)
    return { "bin/tide run --quiet --log-progress", quote(format("%s/p%d/progress", dir, i)) }
  end
  if procs == 0 then
    local w = tide_run(1)
    for _, x in ipairs { JOB, quote(broker.bootstrap), input.topic, quote(out_topic), PLAN,
      quote(dir .. "/checkpoint") } do w[#w + 1] = x end
    ps[1] = spawn(dir .. "/p1", w, env)
  else
    for i = 1, procs do
      local w = tide_run(i)
      for _, x in ipairs { "--application-id", quote(id), "--state-dir", quote(format("%s/state%d", dir, i)), JOB,
        quote(broker.bootstrap), input.topic, quote(out_topic), PLAN } do w[#w + 1] = x end
      ps[i] = spawn(format("%s/p%d", dir, i), w, env)
    end
  end
  local what = format("round %d %s on %s", round, name, input.topic)
  local function stop_all()
    for _, p in ipairs(ps) do os.execute("kill -TERM " .. p.pid .. " 2>/dev/null") end
    for _ = 1, 600 do
      local all = true
      for _, p in ipairs(ps) do all = all and exit_status(p) ~= nil end
      if all then break end
      sleep(0.1)
    end
    for _, p in ipairs(ps) do
      if not exit_status(p) then os.execute("kill -KILL " .. p.pid .. " 2>/dev/null") end
    end
    os.execute("kill -TERM " .. watcher.pid .. " 2>/dev/null")
  end

  -- wait for the follower: its exit says the output is complete
  local t_last, died
  while true do
    local st = exit_status(watcher)
    if st then
      local said = B.read_file(watcher.dir .. "/log") or ""
      t_last = tonumber(said:match("last_unix_ms=(%d+)"))
      if st ~= 0 or not t_last then died = "the output's follower failed: " .. tail(watcher.dir .. "/log") end
      break
    end
    for i, p in ipairs(ps) do
      if exit_status(p) then died = format("process %d exited (status %d) before the output was complete: %s", i,
        exit_status(p), tail(p.dir .. "/log")) end
    end
    if died then break end
    if clock() - t0 > TIMEOUT_S * 1000 then
      died = format("no complete output after %d s", TIMEOUT_S)
      break
    end
    sleep(POLL_S)
  end
  local cpu = 0
  for _, p in ipairs(ps) do cpu = cpu + cpu_of(p.pid) end
  local bcpu, load1 = cpu_of(broker.pid) - bcpu0, loadavg()
  -- a moment for rows that should not come (a repeated window) to arrive
  if not died then sleep(1) end
  stop_all()
  if died then
    fail(what .. ": " .. died)
    return nil
  end
  for i, p in ipairs(ps) do
    if exit_status(p) ~= 0 then
      fail(format("%s: process %d did not stop cleanly on SIGTERM (status %s): %s", what, i,
        tostring(exit_status(p)), tail(p.dir .. "/log")))
    end
  end
  local bad = check_output(out_topic, base)
  if bad then fail(what .. ": " .. bad) end
  if procs > 0 then
    for p = 0, PARTS - 1 do
      local committed = admin:committed(id, input.topic, p)
      if committed ~= ends[p] then
        fail(format("%s: the group's committed offset of %s/%d is %s, its end is %d", what, input.topic, p,
          tostring(committed), ends[p]))
      end
    end
  end
  -- what the processes said (a transaction aborted and redone, ...)
  local warnings, first = 0, nil
  for _, p in ipairs(ps) do
    for l in (B.read_file(p.dir .. "/log") or ""):gmatch("[^\n]+") do
      warnings = warnings + 1
      first = first or l
    end
  end
  -- the first batch: the earliest first progress report of the processes
  -- (and the latest: a process that got its tasks late shows as a spread)
  local first_batch, last_first
  for i, p in ipairs(ps) do
    local l = (B.read_file(p.dir .. "/progress") or ""):match("^[^\n]+")
    local okj, rep = pcall(cjson.decode, l or "")
    local ts = okj and type(rep) == "table" and tonumber(rep.timestamp)
    if ts then
      first_batch = math.min(first_batch or ts, ts)
      last_first = math.max(last_first or ts, ts)
    elseif procs > 0 or i == 1 then
      fail(format("%s: process %d logged no progress report", what, i))
    end
  end
  if #failures == failed_before then sh("rm -rf " .. quote(dir)) end
  if not first_batch then return nil end
  return { total = (t_last - t0_unix) / 1000, processing = (t_last - first_batch) / 1000, cpu = cpu, broker = bcpu,
    spread = (last_first - first_batch) / 1000, load = load0 .. " -> " .. load1, warnings = warnings,
    first_warning = first }
end

local CONFIGS = { { name = "app x1", procs = 1 }, { name = "app x2", procs = 2 }, { name = "single", procs = 0 } }

local ok, err = pcall(function()
  local res = { base = {} }
  for _, c in ipairs(CONFIGS) do res[c.name] = {} end
  for round = 1, ROUNDS do
    local base = B.baseline(EVENTS, N, false, JSON_BYTES)
    res.base[round] = base
    io.write(format("round %d/%d baseline: %.2f M events/s (load %s)\n", round, ROUNDS, base.eps / 1e6, loadavg()))
    io.flush()
    for i = 0, #CONFIGS - 1 do
      local c = CONFIGS[(round - 1 + i) % #CONFIGS + 1]
      local r = run(c.name, c.procs, round, produce_input("events", N))
      if r then
        r.base, r.round = base.eps, round
        r.eps = N / r.processing
        local said = ""
        if r.warnings > 0 then
          said = format("; %d line(s) on the processes' stderr, the first: %s", r.warnings, r.first_warning)
        end
        res[c.name][#res[c.name] + 1] = r
        local spread = c.procs > 1 and format(" (first batches %.1f s apart)", r.spread) or ""
        io.write(format("round %d/%d %-7s: total %.1f s (start-up %.1f s), processing %.1f s%s, %.2f M events/s " ..
          "(%.2fx baseline); cpu %.1f s + broker %.1f s; load %s%s\n", round, ROUNDS, c.name, r.total,
          r.total - r.processing, r.processing, spread, r.eps / 1e6, r.eps / base.eps, r.cpu, r.broker, r.load, said))
        io.flush()
      end
    end
  end

  print(format("\nScale-out bench: %d events (%.1f MB of JSON) in %d partitions, plan %s, TIDE_WORKERS=%d, " ..
    "%d rounds (medians, min..max); processing = from the first batch's start to the last output row\n", N,
    JSON_BYTES / 1e6, PARTS, PLAN, WORKERS, ROUNDS))
  local W = { 36, 24, 12, 9, 16 }
  local function line(cells)
    local t = {}
    for i, c in ipairs(cells) do t[i] = format("%-" .. W[i] .. "s", c) end
    print("| " .. table.concat(t, " | ") .. " |")
  end
  line { "run", "M events/s (processing)", "processing s", "total s", "/ baseline" }
  local dashes = {}
  for i, w in ipairs(W) do dashes[i] = string.rep("-", w) end
  print("|-" .. table.concat(dashes, "-|-") .. "-|")
  local function row(label, list)
    if #list == 0 then return line { label, "no successful run", "", "", "" } end
    local e, elo, ehi = median(list, "eps")
    local per = {}
    for i, x in ipairs(list) do per[i] = { r = x.eps / x.base } end
    line { label, format("%.2f (%.2f..%.2f)", e / 1e6, elo / 1e6, ehi / 1e6),
      format("%.1f", median(list, "processing")), format("%.1f", median(list, "total")),
      format("%.2fx", median(per, "r")) }
  end
  row("tide, 1 process (--application-id)", res["app x1"])
  row("tide, 2 processes (--application-id)", res["app x2"])
  row("tide, 1 query (checkpoint)", res.single)
  local be, blo, bhi = median(res.base, "eps")
  line { "shared baseline (file, C, 1 thread)", format("%.2f (%.2f..%.2f)", be / 1e6, blo / 1e6, bhi / 1e6), "", "",
    "1x" }
  -- the scaling ratio within each round
  local per, per_total = {}, {}
  for round = 1, ROUNDS do
    local one, two
    for _, x in ipairs(res["app x1"]) do if x.round == round then one = x end end
    for _, x in ipairs(res["app x2"]) do if x.round == round then two = x end end
    if one and two then
      per[#per + 1] = { r = two.eps / one.eps }
      per_total[#per_total + 1] = { r = one.total / two.total }
    end
  end
  if #per > 0 then
    local s, slo, shi = median(per, "r")
    local st, stlo, sthi = median(per_total, "r")
    print(format("\n  scaling, 2 processes / 1 (events/s while processing): %.2fx (%.2f..%.2f) (target >= %.1fx: %s)",
      s, slo, shi, RATIO_TARGET, common.verdict(s >= RATIO_TARGET)))
    print(format("  scaling of the totals (start-up included): %.2fx (%.2f..%.2f)", st, stlo, sthi))
  else
    print("\n  scaling: not measured (no round where both app x1 and app x2 ran; the failures are below)")
  end
  for _, c in ipairs(CONFIGS) do
    local list = res[c.name]
    if #list > 0 then
      print(format("  %-7s CPU (medians): tide processes %.1f s, the broker meanwhile %.1f s; load average %s",
        c.name, median(list, "cpu"), median(list, "broker"), list[#list].load))
    end
  end
  print("  outputs checked (one row per window and device, baseline's totals, avg, committed offsets): " ..
    (#failures == 0 and "all correct" or "NO (below)"))
end)
if admin then pcall(admin.stop, admin) end
if broker then broker:stop() end
if #failures == 0 then sh("rm -rf " .. TMP) end
if not ok then B.die(tostring(err)) end
if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write("bench-scaleout: FAILED: ", f, "\n") end
  io.stderr:write("bench-scaleout: the failed runs' process logs are kept in ", TMP, "/<run>/p<i>/log\n")
  os.exit(1)
end
