-- Exactly-once from Kafka to Kafka, shown: a query reading a Kafka topic
-- (read_stream("kafka")) and writing a Kafka topic (write_stream("kafka"),
-- one transaction per batch) runs in a child process and is killed with
-- SIGKILL at random moments, at least 30 times per pipeline, and restarted
-- on the same checkpoint each time. At the end a read_committed consumer
-- (kcat) must read exactly the messages of an uninterrupted run of the same
-- query, and the rows an independent computation gives: not one lost, not
-- one repeated. Pipelines: Kafka -> where + select + a Lua filter -> Kafka;
-- Kafka -> watermark -> 5 s windows counted in append mode -> Kafka.
--
-- The input is produced by kcat (interoperation with a standard producer),
-- spread evenly over 3 partitions. A kill lands before a batch's
-- transaction, inside it (its messages are in the log, uncommitted: the
-- next run's producer aborts them), or after the Kafka commit and before
-- the checkpoint's (the next run finds the batch in the sink's progress
-- offset and skips it). After each kill the spec reads the checkpoint and
-- that offset to count where kills landed; it requires kills between the
-- offset log and the commit log. The seed is printed; TIDE_CRASH_SEED
-- replays a run.
--
-- Only meaningful on a broker with Kafka's transaction semantics (the
-- project's test broker, tools/kafka-broker): librdkafka's stock mock shows
-- aborted and open transactions to read_committed readers and drops the
-- transactional offset commits, and this spec then fails.

local core = require "tide.core"
local support = require "support"
local kafka_broker = require "kafka_broker"

local tmpname, write_file, sh_quote = support.tmpname, support.write_file, support.sh_quote

local KILLS = 30
-- N: enough work that 30 runs of 60 ms or more each (run_killed's least
-- time before a kill) end before the input does, also with the Kafka
-- source's read ahead (an uninterrupted run of 9000 rows took 2.6 s, and
-- once a sanitizer build finished after 24 kills)
local N, PARTS, PER_TRIGGER = 13500, 3, 150

local CHILD = support.CHILD_PRELUDE .. [[
local pipeline, bs, out, ck, done, crash, crash_batch = arg[1], arg[2], arg[3], arg[4], arg[5], arg[6],
  tonumber(arg[7])
-- A kill at a chosen instant of batch crash_batch: "before" its transaction
-- begins, "inside" it (messages produced, the commit not sent), "after" the
-- Kafka commit (before the checkpoint's). The producer's methods are
-- wrapped (tide.KafkaSink's metatable), and the process kills itself.
if crash then
  local function die()
    local pid = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
    os.execute("kill -9 " .. pid)
    while true do end
  end
  local m = debug.getregistry()["tide.KafkaSink"].__index
  local begin, commit = m.begin, m.commit
  local begins = 0 -- on a new checkpoint every batch here begins one transaction: call k is batch k - 1
  function m.begin(self)
    begins = begins + 1
    if crash == "before" and begins == crash_batch + 1 then die() end
    return begin(self)
  end
  function m.commit(self, topic, partition, id)
    if crash == "inside" and id == crash_batch then die() end
    local ok, err = commit(self, topic, partition, id)
    if crash == "after" and id == crash_batch then die() end
    return ok, err
  end
end
-- ~4 ms on one row in 20, so that a batch takes a while and kills land
-- inside its transaction and between its commits
local function spin(r)
  if r.id % 20 == 0 then
    local t = os.clock() + 0.004
    while os.clock() < t do end
  end
  return true
end
local s = tide.read_stream("kafka", { bootstrap = bs, subscribe = "in", starting_offsets = "earliest",
  format = "json", schema = "id int, v int", max_offsets_per_trigger = ]] .. PER_TRIGGER .. [[ })
local q
if pipeline == "select" then
  q = s:where("v % 3 != 0"):select("id", "v * 2 AS v2"):filter(spin)
    :write_stream("kafka", { bootstrap = bs, topic = out, key = "id", checkpoint = ck, trigger = "available_now" })
else
  -- event time with up to 1 s of disorder, a 2 s watermark, 5 s windows
  q = s:with_column("ts", "CAST(id * 100 - v AS timestamp)"):with_watermark("ts", "2 seconds"):filter(spin)
    :group_by(tide.window("ts", "5 seconds")):agg{ "count(*) AS n", "sum(v) AS s" }
    :write_stream("kafka", { bootstrap = bs, topic = out, key = "CAST(window_start AS string)", checkpoint = ck,
      trigger = "available_now", mode = "append" })
end
q:await()
local fh = assert(io.open(done, "w"))
fh:write("done\n")
fh:close()
]]

local function rm(...)
  for _, p in ipairs { ... } do os.execute("rm -rf " .. sh_quote(p)) end
end

local value = support.id_value

-- The input: rows 1..N as JSON, keyed by id, row i in partition i % PARTS
-- (so that every partition's offsets follow the ids, evenly), by kcat.
local function produce_input(b)
  for p = 0, PARTS - 1 do
    local lines = {}
    for id = 1, N do
      if id % PARTS == p then lines[#lines + 1] = string.format('%d\t{"id":%d,"v":%d}', id, id, value(id)) end
    end
    local f = tmpname()
    write_file(f, table.concat(lines, "\n") .. "\n")
    local code, _, err = support.run_cmd(string.format("kcat -P -b %s -t in -p %d -K '\t' -l %s",
      sh_quote(b.bootstrap), p, sh_quote(f)))
    os.remove(f)
    assert(code == 0, "kcat -P failed: " .. err)
  end
end

-- The messages of a topic as a read_committed consumer sees them (values).
local function consume(b, topic)
  local code, out, err = support.run_cmd(string.format(
    "kcat -b %s -C -t %s -e -q -X isolation.level=read_committed -f '%%s\\n'", sh_quote(b.bootstrap),
    sh_quote(topic)))
  assert(code == 0, "kcat -C failed: " .. err)
  return support.lines_of(out)
end

-- "id v2" lines of the select pipeline's messages, sorted (a repeat stays).
local function select_rows(b, topic)
  local out = {}
  for _, l in ipairs(consume(b, topic)) do
    local id, v2 = l:match('^{"id":(%-?%d+),"v2":(%-?%d+)}$')
    assert(id, "an unexpected message: " .. l)
    out[#out + 1] = id .. " " .. v2
  end
  table.sort(out)
  return out
end

-- "window_start n s" lines of the window pipeline's messages, sorted.
local function window_rows(b, topic)
  local out = {}
  for _, l in ipairs(consume(b, topic)) do
    local w, n, s = l:match('^{"window_start":(%-?%d+),"window_end":%-?%d+,"n":(%d+),"s":(%d+)}$')
    assert(w, "an unexpected message: " .. l)
    out[#out + 1] = string.format("%s %s %s", w, n, s)
  end
  table.sort(out)
  return out
end

-- What an uninterrupted query must produce (every partition advances
-- through the ids alike, so no row is late in the window pipeline either).
local function expected_select() return support.id_selected(N) end
local function expected_windows() return support.id_windows(N) end

local spawn = support.spawn_lua

-- The checkpoint's pending batch: the id of an offset entry without a
-- commit entry, or nil; and the query id.
local function pending(ck)
  local c = core.checkpoint(ck, { read_only = true })
  if not c then return nil end
  local off, com = c:latest()
  local qid = c:get_meta("query_id")
  c:close()
  if off ~= nil and off ~= com then return off, qid end
  return nil, qid
end

-- The last batch id the sink's progress offset records for query qid on
-- topic `out` (-1: none), read without fencing anything.
local function progress(b, qid, out)
  local p = assert(core.kafka_sink(b.bootstrap, { group = "tide-" .. qid, timeout = 5000,
    kafka = { ["isolation.level"] = "read_uncommitted" } }))
  local last = assert(p:committed(out, 0))
  p:close()
  return last
end

local run_once = support.run_child

-- Run the child until it finishes, killing it KILLS times first (each run
-- 60 ms .. 1.5x its share of an uninterrupted run's whole_ms, within 100
-- .. 300). After each kill, where it landed: between the offset log and
-- the commit log (`mid`), and of those after the Kafka commit
-- (`after_kafka`: the progress offset has the pending batch).
local function run_killed(b, script, args, ck, out, done, errf, whole_ms)
  local mid, after_kafka = 0, 0
  local stats = support.run_killed { script = script, args = args, done = done, errf = errf, kills = KILLS,
    whole_ms = whole_ms, lo = 60, hi = { 100, 300 }, after_kill = function()
      local n, qid = pending(ck)
      if n then
        mid = mid + 1
        if progress(b, qid, out) >= n then after_kafka = after_kafka + 1 end
      end
    end }
  stats.mid, stats.after_kafka = mid, after_kafka
  return stats
end

local function report(what, seed, stats, n, whole_ms)
  io.stderr:write(string.format("\n[kafka_e2e_spec] %s, seed %d: %d kills (%d between offset log and commit, %d of " ..
    "them after the Kafka commit), %d runs, %d messages out (an uninterrupted run: %d ms)\n", what, seed, stats.kills,
    stats.mid, stats.after_kafka, stats.runs, n, math.floor(whole_ms)))
end

describe("Kafka -> tide -> Kafka, killed with SIGKILL and restarted on its checkpoint", function()
  local seed, script, errf, done, b

  setup(function()
    seed = tonumber(os.getenv("TIDE_CRASH_SEED")) or (os.time() * 1000 + math.floor(os.clock() * 1000))
    math.randomseed(seed)
    script, errf, done = tmpname() .. ".lua", tmpname(), tmpname()
    write_file(script, CHILD)
    b = kafka_broker.start(1)
    b:create_topic("in", PARTS)
    produce_input(b)
  end)

  teardown(function()
    b:stop()
    rm(script, errf, done)
  end)

  local function case(pipeline, rows_of, want, label)
    local ck, ck2 = tmpname(), tmpname()
    local out, ref = "out_" .. pipeline, "ref_" .. pipeline
    b:create_topic(out, PARTS)
    b:create_topic(ref, PARTS)
    local whole = run_once(script, { pipeline, sh_quote(b.bootstrap), ref, ck2, done }, errf)
    local stats = run_killed(b, script, { pipeline, sh_quote(b.bootstrap), out, ck, done }, ck, out, done, errf, whole)
    local got = rows_of(b, out)
    report(label, seed, stats, #got, whole) -- before the checks: a failure's seed and figures
    assert.equal(#want, #got)
    assert.same(rows_of(b, ref), got)
    assert.same(want, got)
    assert.is_true(stats.mid > 0, "no kill landed between the offset log and the commit")
    rm(ck, ck2)
  end

  -- One kill at each instant of batch 5 that matters, then a restart: the
  -- output is exactly the expected rows each time.
  it("killed before a batch's transaction, inside it, and between the Kafka commit and the checkpoint's: " ..
    "each time, exactly the rows", function()
    local K = 5
    for _, instant in ipairs { "before", "inside", "after" } do
      local ck, out = tmpname(), "at_" .. instant
      b:create_topic(out, PARTS)
      os.remove(done)
      local p = spawn(script, { "select", sh_quote(b.bootstrap), out, ck, done, instant, K }, errf)
      p:read("a")
      p:close()
      assert.equal("", support.read_file(errf))
      assert.is_false(support.exists(done), instant .. ": the run was not killed")
      local n, qid = pending(ck)
      assert.equal(K, n, instant .. ": batch " .. K .. " is logged, not committed")
      -- the Kafka side of the instant: batch K committed there only "after"
      assert.equal(instant == "after" and K or K - 1, progress(b, qid, out), instant)
      run_once(script, { "select", sh_quote(b.bootstrap), out, ck, done }, errf)
      assert.same(expected_select(), select_rows(b, out), instant)
      rm(ck)
    end
  end)

  it("where + select: the messages of an uninterrupted run, none lost or repeated", function()
    case("select", select_rows, expected_select(), "Kafka -> where/select -> Kafka")
  end)

  it("watermark + windowed count in append mode: the same windows, each once", function()
    case("window", window_rows, expected_windows(), "Kafka -> windows (append) -> Kafka")
  end)
end)
