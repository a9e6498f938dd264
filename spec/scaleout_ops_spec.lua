-- Scale-out of the stateful operators beyond aggregations (issue 15,
-- lua/tide/scaleout.lua): `group_by(k):process(fn, opts)` and session
-- windows under `tide run --application-id`, on the test broker.
--
-- Both group by a column that is NOT the Kafka message key, so the query
-- splits in two sub-topologies (the rows go through a repartition topic
-- keyed by the user), and the operator's state lives in the task's local
-- cache and in its changelog. The input: 4 partitions, every user in every
-- partition, event times rising with less disorder than the watermark
-- delay, in bursts separated by 4+ seconds of event time (so that session
-- windows close), then one message per partition an hour later that closes
-- everything before. The result is known three ways: computed here in Lua,
-- by a single-process run of the same script (tide's plain engine), and by
-- the application's processes, one of them SIGKILLed mid-run and started
-- again with its local state gone (its tasks restore from the changelog);
-- the read_committed output of each must be the same rows, each once.
--
-- A third case: process() with processing-time timeouts, its state (and
-- the timeouts in it) restored from the changelog by a process that starts
-- with no local state, the timeouts then firing there.

local support = require "support"
local so = require "scaleout_support"

local sh_quote = support.sh_quote

local PARTS, USERS, GAP_EVERY = 4, 6, 40

-- The script: args bootstrap, input topic, output topic, operator
-- ("process", "session" or "timeout"), [a checkpoint directory: the plain
-- single-process engine instead of an application]. A row spends ~0.5 ms
-- in a Lua filter and a cycle takes at most 40 offsets per partition, so
-- that a SIGKILL lands in the middle of the run.
local APP = [==[
local tide = require "tide"
local bs, input, out, op, plain = arg[1], arg[2], arg[3], arg[4], arg[5]
local function spin()
  local t = os.clock() + 0.0005
  while os.clock() < t do end
  return true
end
local s = tide.read_stream("kafka", { bootstrap = bs, subscribe = input, starting_offsets = "earliest",
  format = "json", schema = "ts timestamp, user string, amount int", include_metadata = true,
  max_offsets_per_trigger = op ~= "timeout" and 40 or nil,
  kafka = { ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "300" } })
local f
if op == "process" then
  -- per user, count and sum by 10 s bucket of event time; a bucket is
  -- written once the watermark passes its end (an event-time timer)
  f = s:with_watermark("ts", "2 seconds"):filter(spin):group_by("user"):process(function(user, rows, state)
    local st, out, wm = state:get() or {}, {}, state:watermark() or 0
    for _, r in ipairs(rows) do
      local w = r.ts - r.ts % 10000
      local b = st[w] or { 0, 0 }
      b[1], b[2] = b[1] + 1, b[2] + r.amount
      st[w] = b
    end
    local next_end
    for w, b in pairs(st) do
      if w + 10000 <= wm then
        out[#out + 1] = { user = user, window_start = w, n = b[1], total = b[2] }
        st[w] = nil
      elseif not next_end or w + 10000 < next_end then
        next_end = w + 10000
      end
    end
    if next_end then
      state:set(st)
      state:set_timer(next_end)
    else
      state:remove()
    end
    return out
  end, { schema = "user string, window_start timestamp, n int, total int", timeout = "event_time" })
elseif op == "session" then
  f = s:with_watermark("ts", "2 seconds"):filter(spin)
    :group_by(tide.session_window("ts", "3 seconds"), "user"):agg{ "count(*) AS n", "sum(amount) AS total" }
else
  -- per Kafka key (no repartition): the count and sum of its rows, written
  -- when no row came for 4 s of processing time
  f = s:group_by("kafka_key"):process(function(key, rows, state)
    if state:has_timed_out() then
      local v = state:get()
      state:remove()
      return { { user = key, window_start = 0, n = v[1], total = v[2] } }
    end
    local v = state:get() or { 0, 0 }
    for _, r in ipairs(rows) do v[1], v[2] = v[1] + 1, v[2] + r.amount end
    state:set(v)
    state:set_timeout("4 seconds")
  end, { schema = "user string, window_start timestamp, n int, total int", timeout = "processing",
    ttl = "1 hour" })
end
if plain then
  f:write_stream("kafka", { bootstrap = bs, topic = out, key = "user", checkpoint = plain, mode = "append",
    trigger = "available_now" }):await()
else
  f:write_stream("kafka", { bootstrap = bs, topic = out, key = "user", mode = "append" })
end
]==]

local BASE = 1700000000000 -- ms, a multiple of 10 s

-- Message i (0-based) of partition p: its user, event time and amount.
-- Event times rise by 50 ms a message with up to 1 s of disorder (under the
-- 2 s delay), and jump 5 s every GAP_EVERY messages.
local function event(p, i)
  return "u" .. ((i * 5 + p * 3) % USERS),
    BASE + i * 50 + (i // GAP_EVERY) * 5000 + ((i * 7 + p * 3) % 20) * 50 - 500, (i * 31 + p * 17) % 100
end

-- Produce messages [from, to) of every partition, keyed by a message id.
local function produce(b, topic, from, to) so.produce_events(b, topic, PARTS, event, from, to) end

-- One message per partition an hour later: every earlier window closes.
local function produce_end(b, topic)
  for p = 0, PARTS - 1 do
    so.produce(b, topic, p, { string.format('end-%d\t{"ts":%d,"user":"u0","amount":0}', p, BASE + 3600000) })
  end
end

-- The expected rows for messages [0, n) of every partition, computed
-- here: "user start n total", sorted. By 10 s bucket of event time, or
-- by session (a row at t opens [t, t + 3 s); overlapping or touching
-- sessions of a user merge).
local function expected(n, op)
  local by = {}
  for p = 0, PARTS - 1 do
    for i = 0, n - 1 do
      local user, ts, amount = event(p, i)
      by[user] = by[user] or {}
      local l = by[user]
      l[#l + 1] = { ts, amount }
    end
  end
  local out = {}
  for user, l in pairs(by) do
    table.sort(l, function(x, y) return x[1] < y[1] end)
    local cur
    local function flush()
      if cur then out[#out + 1] = string.format("%s %d %d %d", user, cur.start, cur.n, cur.total) end
    end
    for _, r in ipairs(l) do
      local start = op == "process" and r[1] - r[1] % 10000 or r[1]
      local joins = cur and (op == "process" and start == cur.start or op == "session" and r[1] <= cur.last + 3000)
      if not joins then
        flush()
        cur = { start = start, n = 0, total = 0 }
      end
      cur.n, cur.total, cur.last = cur.n + 1, cur.total + r[2], r[1]
    end
    flush()
  end
  table.sort(out)
  return out
end

-- The output topic's committed rows, sorted: "user start n total" (a
-- repeated row stays, twice).
local function output(b, topic)
  local rows = {}
  for _, l in ipairs(so.consume(b, topic)) do
    local k, rest = l:match("^(%S+) ({.*})$")
    assert(k, "an unexpected message: " .. l)
    local v = require("tide.util").json_decode(rest)
    assert(v.user == k, "the key is the user: " .. l)
    rows[#rows + 1] = string.format("%s %d %d %d", v.user, v.window_start, v.n, v.total)
  end
  table.sort(rows)
  return rows
end

describe("scale-out: process() and session windows", function()
  local env = so.fixture(APP)
  setup(env.open)
  teardown(env.close)

  -- A process of application app running operator op (reading app-in,
  -- writing app-out).
  local function run(name, app, op, state)
    return env.run(name, app, string.format("%s-in %s-out %s", app, app, op), state)
  end

  -- The plain engine's output of the same script, in one process.
  local function plain(app, op)
    local b = env.b
    b:create_topic(app .. "-plain", 1)
    local code, _, err = support.run_cmd(support.tide_command(string.format("run --quiet %s %s %s-in %s-plain %s %s",
      sh_quote(env.script), sh_quote(b.bootstrap), app, app, op, sh_quote(env.dir .. "/ck-" .. app))))
    assert.equal(0, code, err)
    return output(b, app .. "-plain")
  end

  -- Three processes; one SIGKILLed mid-run and started again with its
  -- local state gone; the output equals expected(n) and the plain run's.
  local function across_a_crash(app, op)
    local b = env.b
    b:create_topic(app .. "-in", PARTS)
    b:create_topic(app .. "-out", PARTS)
    local want = expected(480, op)
    local ps = {}
    finally(function() so.kill_all(ps) end)
    local got = so.crash_run {
      ps = ps,
      run = function(name, state) return run(name, app, op, state) end,
      state = function(name) return env.state(app, name) end,
      produce = function(step) produce(b, app .. "-in", (step - 1) * 120, step * 120) end,
      produce_end = function() produce_end(b, app .. "-in") end,
      rows = function() return output(b, app .. "-out") end,
      want = want,
    }
    -- the restarted process had no local state: what it ran came from the
    -- changelogs
    for _, t in ipairs(got.restarted) do assert.equal("changelog", t.restored_from, t.id) end
    assert.same(want, got.rows)
    -- the rows did go through the repartition topic
    assert.equal(481 * PARTS, so.repartition_rows(so.consume(b, app .. "-" .. op .. "1-repartition")))
    assert.same(want, plain(app, op))
  end

  it("runs process() with event-time timers across processes: the output of one process, exactly once, through " ..
    "a SIGKILL and a restart without local state", function()
    across_a_crash("pr", "process")
  end)

  it("runs session windows across processes: the output of one process, exactly once, through a SIGKILL and a " ..
    "restart without local state", function()
    across_a_crash("se", "session")
  end)

  it("restores process() state with its processing-time timeouts from the changelog, and the timeouts fire there",
    function()
      local app, b = "pt", env.b
      b:create_topic(app .. "-in", PARTS)
      b:create_topic(app .. "-out", PARTS)
      -- keyed by user, each user's rows in one partition
      local want, lines = {}, {}
      for u = 0, 7 do
        local n, total = 0, 0
        local p = u % PARTS
        lines[p] = lines[p] or {}
        for i = 0, 9 + u do
          local amount = (u * 13 + i * 7) % 50
          n, total = n + 1, total + amount
          lines[p][#lines[p] + 1] = string.format('k%d\t{"ts":%d,"user":"x","amount":%d}', u, BASE + i, amount)
        end
        want[#want + 1] = string.format("k%d 0 %d %d", u, n, total)
      end
      table.sort(want)
      for p = 0, PARTS - 1 do so.produce(b, app .. "-in", p, lines[p]) end
      local ps = {}
      finally(function() so.kill_all(ps) end)
      local tell = so.tell(ps)
      ps.p1 = run("p1", app, "timeout")
      so.wait_for("the first process to read everything", function()
        local n = 0
        for _, t in ipairs(so.tasks(ps.p1)) do
          if t.offset == #lines[t.partitions[1][2]] then n = n + 1 end
        end
        return n == PARTS
      end, 90, tell)
      so.stop(ps.p1)
      os.execute("rm -rf " .. sh_quote(env.state(app, "p1")))
      ps.p2 = run("p2", app, "timeout", "p1")
      so.wait_for("every key's row in the output", function() return #output(b, app .. "-out") >= #want end, 90, tell)
      for _, t in ipairs(so.tasks(ps.p2)) do assert.equal("changelog", t.restored_from, t.id) end
      so.stop(ps.p2)
      assert.same(want, output(b, app .. "-out"))
    end)
end)
