-- Scale-out over more than one Kafka topic (issue 15, lua/tide/scaleout.lua):
-- task p of a sub-topology reads partition p of every topic of it (the
-- group assigns partition p of its first topic; the topics of one
-- sub-topology are co-partitioned, as Kafka Streams requires).
--
-- Two workloads on the test broker, each run by several `tide run
-- --application-id` processes, one SIGKILLed mid-run and started again
-- without its local state, the read_committed output equal to a
-- single-process run of the same script and to a computation here:
-- - a stream-stream join of two topics (orders and payments, neither keyed
--   by the order id), a left outer join: both sides are repartitioned by
--   the join key, and the join's tasks read partition p of both
--   repartition topics, their watermark the least of both sides' markers
--   (which writes the orders left without a payment);
-- - a union of two Kafka sources, co-partitioned by their message key
--   (no repartition): each task reads partition p of both topics.
-- And the refusal of topics that are not co-partitioned.

local support = require "support"
local so = require "scaleout_support"
local util = require "tide.util"

local sh_quote, read_file = support.sh_quote, support.read_file

local PARTS = 4

-- The script: args bootstrap, app (topic prefix), workload ("join",
-- "union" or "subscribe": the union's topics read by one source), [a
-- checkpoint directory: the plain single-process engine].
-- A row spends ~0.5 ms in a Lua filter and a cycle takes at most 30
-- offsets per partition, so that a SIGKILL lands in the middle of the run.
local APP = [==[
local tide = require "tide"
local bs, app, op, plain = arg[1], arg[2], arg[3], arg[4]
local function spin()
  local t = os.clock() + 0.0005
  while os.clock() < t do end
  return true
end
local kafka = { ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "300" }
local function source(topic, schema, meta)
  return tide.read_stream("kafka", { bootstrap = bs, subscribe = topic, starting_offsets = "earliest",
    format = "json", schema = schema, include_metadata = meta, max_offsets_per_trigger = 30, kafka = kafka })
end
local f, key
if op == "join" then
  local orders = source(app .. "-orders", "o_id string, o_ts timestamp, amount int")
    :with_watermark("o_ts", "2 seconds"):filter(spin)
  local payments = source(app .. "-payments", "p_id string, p_ts timestamp, method string")
    :with_watermark("p_ts", "10 seconds") -- (payments come up to 6 s after their orders)
  f = orders:join(payments, "o_id = p_id AND p_ts BETWEEN o_ts AND o_ts + interval 5 seconds", "left")
    :select("o_id", "o_ts", "p_ts", "amount", "method")
  key = "o_id"
else
  local a
  if op == "union" then
    -- a watermark on each topic: the task's is the least of them, so the
    -- rows of a topic that lags behind the other are not late
    a = source(app .. "-a", "ts timestamp, amount int", true):with_watermark("ts", "2 seconds")
      :union(source(app .. "-b", "ts timestamp, amount int", true):with_watermark("ts", "2 seconds"))
  else -- "subscribe": one source of both topics (all of their rows there before it starts)
    a = source(app .. "-a," .. app .. "-b", "ts timestamp, amount int", true):with_watermark("ts", "2 seconds")
  end
  f = a:filter(spin)
    :group_by(tide.window("ts", "10 seconds"), "kafka_key"):agg{ "count(*) AS n", "sum(amount) AS total" }
  key = "kafka_key"
end
if plain then
  f:write_stream("kafka", { bootstrap = bs, topic = app .. "-plain", key = key, checkpoint = plain,
    mode = "append", trigger = "available_now" }):await()
else
  f:write_stream("kafka", { bootstrap = bs, topic = app .. "-out", key = key, mode = "append" })
end
]==]

local BASE = 1700000000000 -- ms, a multiple of 10 s

-- Order i: its id, time and amount; its payment (every order but each
-- third): time 0..6 s after the order (the join takes up to 5 s) and
-- method. Orders go to partition i % 4 and payments to (i + 1) % 4 under
-- other message keys, so nothing is partitioned by the order id. Times
-- rise by 100 ms an order with up to 1 s of disorder for orders (under
-- their 2 s delay), 6 s for payments (under their 10 s delay).
local function order(i)
  return "o" .. i, BASE + i * 100 + ((i * 7) % 10) * 100 - 500, (i * 31) % 100
end
local function payment(i)
  if i % 3 == 0 then return nil end
  local _, ts = order(i)
  return "o" .. i, BASE + i * 100 + (i % 7) * 1000, i % 2 == 0 and "card" or "cash", ts
end

-- Produce orders and payments [from, to).
local function produce_join(b, app, from, to)
  local o, p = {}, {}
  for part = 0, PARTS - 1 do o[part], p[part] = {}, {} end
  for i = from, to - 1 do
    local id, ts, amount = order(i)
    local l = o[i % PARTS]
    l[#l + 1] = string.format('m%d\t{"o_id":"%s","o_ts":%d,"amount":%d}', i, id, ts, amount)
    local pid, pts, method = payment(i)
    if pid then
      l = p[(i + 1) % PARTS]
      l[#l + 1] = string.format('n%d\t{"p_id":"%s","p_ts":%d,"method":"%s"}', i, pid, pts, method)
    end
  end
  for part = 0, PARTS - 1 do
    if #o[part] > 0 then so.produce(b, app .. "-orders", part, o[part]) end
    if #p[part] > 0 then so.produce(b, app .. "-payments", part, p[part]) end
  end
end

-- One order and one payment per partition an hour later: both watermarks
-- pass every earlier row's bound.
local function produce_join_end(b, app)
  for part = 0, PARTS - 1 do
    so.produce(b, app .. "-orders", part, { string.format('e%d\t{"o_id":"end","o_ts":%d,"amount":0}', part,
      BASE + 3600000) })
    so.produce(b, app .. "-payments", part, { string.format('f%d\t{"p_id":"none","p_ts":%d,"method":"x"}', part,
      BASE + 3600000) })
  end
end

-- The left outer join's rows for orders [0, n): "id o_ts p_ts amount
-- method" (p_ts and method "null" for an order without a payment within
-- 5 s: written once the watermark passes that bound), sorted.
local function expected_join(n)
  local out = {}
  for i = 0, n - 1 do
    local id, ts, amount = order(i)
    local pid, pts, method = payment(i)
    if pid and pts >= ts and pts <= ts + 5000 then
      out[#out + 1] = string.format("%s %d %d %d %s", id, ts, pts, amount, method)
    else
      out[#out + 1] = string.format("%s %d null %d null", id, ts, amount)
    end
  end
  table.sort(out)
  return out
end

-- Message i (0-based) of key k in topic x ("a" or "b"): its event time and
-- amount. Key "u<k>" always to partition k % 4 in both topics.
local KEYS = 8
local function event(x, k, i)
  local off = x == "a" and 0 or 3
  return BASE + i * 50 + ((i * 7 + k * 3 + off) % 20) * 50 - 500, (i * 31 + k * 17 + off * 5) % 100
end

local function produce_union(b, app, from, to)
  for _, x in ipairs { "a", "b" } do
    for part = 0, PARTS - 1 do
      local lines = {}
      for i = from, to - 1 do
        for k = part, KEYS - 1, PARTS do
          local ts, amount = event(x, k, i)
          lines[#lines + 1] = string.format('u%d\t{"ts":%d,"amount":%d}', k, ts, amount)
        end
      end
      so.produce(b, app .. "-" .. x, part, lines)
    end
  end
end

local function produce_union_end(b, app)
  for _, x in ipairs { "a", "b" } do
    for part = 0, PARTS - 1 do
      local lines = {}
      for k = part, KEYS - 1, PARTS do lines[#lines + 1] = string.format('u%d\t{"ts":%d,"amount":0}', k,
        BASE + 3600000) end
      so.produce(b, app .. "-" .. x, part, lines)
    end
  end
end

-- The union's windows for messages [0, n) of every key of both topics:
-- "key window_start n total", sorted.
local function expected_union(n)
  return so.windows(function(add)
    for _, x in ipairs { "a", "b" } do
      for k = 0, KEYS - 1 do
        for i = 0, n - 1 do add("u" .. k, event(x, k, i)) end
      end
    end
  end)
end

-- A topic's committed rows as sorted lines (a repeated row stays, twice).
local function output(b, topic, op)
  local rows = {}
  for _, l in ipairs(so.consume(b, topic)) do
    local k, rest = l:match("^(%S+) ({.*})$")
    assert(k, "an unexpected message: " .. l)
    local v = util.json_decode(rest)
    if op == "join" then
      assert(v.o_id == k, "the key is the order id: " .. l)
      rows[#rows + 1] = string.format("%s %d %s %d %s", v.o_id, v.o_ts, tostring(v.p_ts or "null"), v.amount,
        tostring(v.method or "null"))
    else
      assert(v.kafka_key == k, "the key is the message key: " .. l)
      rows[#rows + 1] = string.format("%s %d %d %d", k, v.window_start, v.n, v.total)
    end
  end
  table.sort(rows)
  return rows
end

describe("scale-out over several Kafka topics", function()
  local env = so.fixture(APP)
  setup(env.open)
  teardown(env.close)

  local function run(name, app, op, state) return env.run(name, app, app .. " " .. op, state) end

  -- Three processes; one SIGKILLed mid-run and started again without its
  -- local state; the output equals want and the plain run's.
  local function across_a_crash(app, op, produce, produce_end, want, topics, per_step)
    local b = env.b
    for _, t in ipairs(topics) do b:create_topic(app .. "-" .. t, PARTS) end
    b:create_topic(app .. "-out", PARTS)
    b:create_topic(app .. "-plain", 1)
    local ps = {}
    finally(function() so.kill_all(ps) end)
    local got = so.crash_run {
      ps = ps,
      run = function(name, state) return run(name, app, op, state) end,
      state = function(name) return env.state(app, name) end,
      produce = function(step) produce(b, app, (step - 1) * per_step, step * per_step) end,
      produce_end = function() produce_end(b, app) end,
      rows = function() return output(b, app .. "-out", op) end,
      want = want,
    }
    -- the restarted process had no local state: what it ran came from the
    -- changelogs
    for _, t in ipairs(got.restarted) do assert.equal("changelog", t.restored_from, t.id) end
    assert.same(want, got.rows)
    -- each task reads partition p of every topic of its sub-topology
    local seen = {}
    for id, t in pairs(got.tasks) do
      seen[id] = #t.partitions
      for _, tp in ipairs(t.partitions) do assert.equal(t.partitions[1][2], tp[2], id) end
    end
    local code, _, err = support.run_cmd(support.tide_command(string.format("run --quiet %s %s %s %s %s",
      sh_quote(env.script), sh_quote(b.bootstrap), app, op, sh_quote(env.dir .. "/ck-" .. app))))
    assert.equal(0, code, err)
    assert.same(want, output(b, app .. "-plain", op))
    return seen
  end

  it("runs a stream-stream left outer join of two topics, both sides repartitioned by the join key, through a " ..
    "SIGKILL and a restart without local state", function()
    local seen = across_a_crash("jn", "join", produce_join, produce_join_end, expected_join(400),
      { "orders", "payments" }, 100)
    -- the join's tasks (sub-topology 2) read both repartition topics
    assert.equal(2, seen["2_0"] or seen["2_1"] or seen["2_2"] or seen["2_3"])
  end)

  it("runs a union of two co-partitioned topics (no repartition), through a SIGKILL and a restart without local " ..
    "state", function()
    local seen = across_a_crash("un", "union", produce_union, produce_union_end, expected_union(240), { "a", "b" },
      60)
    assert.equal(2, seen["0_0"] or seen["0_1"] or seen["0_2"] or seen["0_3"])
  end)

  it("runs one source subscribed to two co-partitioned topics", function()
    local b, app = env.b, "sb"
    for _, t in ipairs { "a", "b", "out" } do b:create_topic(app .. "-" .. t, PARTS) end
    produce_union(b, app, 0, 40)
    produce_union_end(b, app)
    local want = expected_union(40)
    local ps = {}
    finally(function() so.kill_all(ps) end)
    ps.p = run("p", app, "subscribe")
    so.wait_for("every window in the output", function() return #output(b, app .. "-out", "union") >= #want end,
      90, so.tell(ps))
    local tasks = so.tasks(ps.p)
    so.stop(ps.p)
    assert.same(want, output(b, app .. "-out", "union"))
    assert.equal(PARTS, #tasks)
    for _, t in ipairs(tasks) do
      local p = t.partitions[1][2]
      assert.same({ { "sb-a", p }, { "sb-b", p } }, t.partitions)
      assert.same({ 82, 82 }, t.offsets) -- 2 keys x (40 messages + the end), in each
    end
  end)

  it("refuses topics of one sub-topology that are not co-partitioned, naming them", function()
    local b = env.b
    b:create_topic("cp-a", PARTS)
    b:create_topic("cp-b", 2)
    b:create_topic("cp-out", PARTS)
    local p = run("x", "cp", "union")
    local code = so.wait(p)
    assert.equal(1, code)
    assert.matches("application_id 'cp': the topics of one sub%-topology must have the same number of partitions " ..
      "%(a task reads partition p of each%): 'cp%-a' has 4, 'cp%-b' has 2", read_file(p.err))
  end)
end)
