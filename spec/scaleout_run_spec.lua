-- Specs of the scale-out runtime (issue 15, lua/tide/scaleout.lua): one
-- application run by several `tide run --application-id` processes on the
-- project's test broker (spec/kafka_broker.lua) over loopback.
--
-- The workload: a windowed aggregation keyed by the Kafka message key
-- (no repartition needed), 10 s windows, a 2 s watermark, in append mode.
-- The input: 8 keys over 4 partitions, event times rising with less
-- disorder than the watermark delay, then one message per partition far
-- in the future that closes every earlier window. Its result is known
-- three ways: computed here in Lua, by a single-process run of the same
-- script (tide's plain engine with a checkpoint), and by the application's
-- processes; the read_committed output of each must be the same rows, each
-- exactly once.

local core = require "tide.core"
local support = require "support"
local kafka_broker = require "kafka_broker"
local so = require "scaleout_support"

local tmpname, sh_quote, read_file, write_file = support.tmpname, support.sh_quote, support.read_file,
  support.write_file

local PARTS, KEYS = 4, 8

-- The application's script: args bootstrap, input topic, output topic, [a checkpoint
-- directory: the plain single-process engine instead of an application].
-- A row spends ~1 ms in a Lua filter (see SCALEOUT_STOP_FILE below) and a cycle takes at most 40 offsets
-- per partition, so that the run lasts long enough for a SIGKILL to land
-- in the middle of it.
local APP = [==[
local tide = require "tide"
local bs, input, out, plain = arg[1], arg[2], arg[3], arg[4]
-- SCALEOUT_STOP_FILE: when that file appears, the process removes it and
-- stops itself (SIGSTOP) in the middle of a cycle, as a process that
-- hangs (a zombie once its session times out)
local stop_file, seen = os.getenv("SCALEOUT_STOP_FILE"), 0
local function spin()
  local t = os.clock() + 0.001
  while os.clock() < t do end
  seen = seen + 1
  if stop_file and seen % 10 == 0 then
    local f = io.open(stop_file)
    if f then
      f:close()
      os.remove(stop_file)
      local st = io.open("/proc/self/stat")
      local pid = st:read("l"):match("^%d+")
      st:close()
      os.execute("kill -STOP " .. pid)
    end
  end
  return true
end
local s = tide.read_stream("kafka", { bootstrap = bs, subscribe = input, starting_offsets = "earliest",
  format = "json", schema = "ts timestamp, amount int", include_metadata = true, max_offsets_per_trigger = 40,
  kafka = { ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "300" } })
local f = s:with_watermark("ts", "2 seconds"):filter(spin)
  :group_by(tide.window("ts", "10 seconds"), "kafka_key"):agg{ "count(*) AS n", "sum(amount) AS total" }
if plain then
  f:write_stream("kafka", { bootstrap = bs, topic = out, key = "kafka_key", checkpoint = plain,
    trigger = "available_now" }):await()
else
  f:write_stream("kafka", { bootstrap = bs, topic = out, key = "kafka_key" })
end
]==]

local BASE = 1700000000000 -- ms, a multiple of 10 s

-- Message i (0-based) of key k: its event time and amount. Event times
-- rise by 50 ms a message with up to 1 s of disorder (under the 2 s delay).
local function event(k, i)
  return BASE + i * 50 + ((i * 7 + k * 3) % 20) * 50 - 500, (i * 31 + k * 17) % 100
end

-- Produce messages [from, to) of every key, in event-time order: key
-- "u<k>" always to partition k % PARTS.
local function produce(b, topic, from, to)
  for p = 0, PARTS - 1 do
    local lines = {}
    for i = from, to - 1 do
      for k = p, KEYS - 1, PARTS do
        local ts, amount = event(k, i)
        lines[#lines + 1] = string.format('u%d\t{"ts":%d,"amount":%d}', k, ts, amount)
      end
    end
    so.produce(b, topic, p, lines)
  end
end

-- One message per key an hour later: every earlier window closes.
local function produce_end(b, topic)
  for p = 0, PARTS - 1 do
    local lines = {}
    for k = p, KEYS - 1, PARTS do lines[#lines + 1] = string.format('u%d\t{"ts":%d,"amount":0}', k, BASE + 3600000) end
    so.produce(b, topic, p, lines)
  end
end

-- The expected rows for messages [0, n) of every key: "key window_start n total", sorted.
local function expected(n)
  return so.windows(function(add)
    for k = 0, KEYS - 1 do
      for i = 0, n - 1 do add("u" .. k, event(k, i)) end
    end
  end)
end

-- The output topic as sorted rows "key window_start n total" (a repeated
-- row stays, twice).
local function output(b, topic)
  local rows = {}
  for _, l in ipairs(so.consume(b, topic)) do
    local k, w, n, t = l:match('^(%S+) {"window_start":(%-?%d+),"window_end":%-?%d+,"kafka_key":"%S+","n":(%d+),' ..
      '"total":(%d+)}$')
    assert(k, "an unexpected message: " .. l)
    rows[#rows + 1] = string.format("%s %s %s %s", k, w, n, t)
  end
  table.sort(rows)
  return rows
end

-- Every task of the processes' last reports at offset `at` (all input read).
local function caught_up(ps, at)
  local n = 0
  for _, p in pairs(ps) do
    for _, t in ipairs(so.tasks(p)) do
      if t.offset ~= at then return false end
      n = n + 1
    end
  end
  return n == PARTS
end

describe("scale-out: an application of several tide run processes", function()
  local b, dir, script
  setup(function()
    b = kafka_broker.start()
    dir = tmpname()
    os.execute("mkdir -p " .. sh_quote(dir))
    script = dir .. "/app.lua"
    write_file(script, APP)
  end)
  teardown(function()
    if b then b:stop() end
    os.execute("rm -rf " .. sh_quote(dir))
  end)

  -- A process of application app (reading app-in, writing app-out).
  local function run(name, app, state, env)
    return so.start(dir, name, app, dir .. "/" .. state, script,
      string.format("%s %s-in %s-out", sh_quote(b.bootstrap), app, app), env)
  end

  -- SIGTERM (Ctrl-C's twin): the process leaves the group and exits 0.
  local function stop(p)
    os.execute("kill -TERM " .. p.pid)
    assert.equal(0, so.wait(p), p.name .. " exits 0: " .. (read_file(p.err) or ""))
  end

  local function topics(app)
    b:create_topic(app .. "-in", PARTS)
    b:create_topic(app .. "-out", PARTS)
  end

  it("gives the output of one process, exactly once, through a SIGKILL and a process added later", function()
    topics("app1")
    b:create_topic("plain", 1)
    produce(b, "app1-in", 0, 200)
    local ps = {}
    finally(function() so.kill_all(ps) end)
    for _, n in ipairs { "a", "b", "c" } do ps[n] = run(n, "app1", "state-" .. n) end
    local tell = so.tell(ps)
    so.wait_for("the tasks spread over the three processes", function()
      for _, n in ipairs { "a", "b", "c" } do
        if not so.opened(dir .. "/state-" .. n) then return false end
      end
      return true
    end, 60, tell)
    produce(b, "app1-in", 200, 400)
    -- SIGKILL one of them in the middle of the run: its tasks move after
    -- its session times out, and start again from what it committed
    os.execute("kill -9 " .. ps.b.pid)
    so.wait(ps.b)
    produce(b, "app1-in", 400, 600)
    ps.d = run("d", "app1", "state-d")
    -- (a task it opened has its directory in its state_dir)
    so.wait_for("the added process to get a task", function()
      return so.opened(dir .. "/state-d/app1")
    end, 60, tell)
    produce(b, "app1-in", 600, 800)
    produce_end(b, "app1-in")
    local want = expected(800)
    so.wait_for("every window in the output", function() return #output(b, "app1-out") >= #want end, 120, tell)
    for _, n in ipairs { "a", "c", "d" } do stop(ps[n]) end
    assert.same(want, output(b, "app1-out"))
    -- the same script run by tide's plain engine, in one process
    local code, _, err = support.run_cmd(support.tide_command(string.format("run --quiet %s %s app1-in plain %s",
      sh_quote(script), sh_quote(b.bootstrap), sh_quote(dir .. "/ck"))))
    assert.equal(0, code, err)
    assert.same(want, output(b, "plain"))
  end)

  it("restores tasks from the changelog when the local state is gone, from the local state when it is current",
    function()
      topics("app2")
      produce(b, "app2-in", 0, 300)
      local ps = {}
      finally(function() so.kill_all(ps) end)
      local tell = so.tell(ps)
      ps.p1 = run("p1", "app2", "state-2")
      so.wait_for("the first process to read everything", function() return caught_up({ ps.p1 }, 600) end, 90,
        tell)
      stop(ps.p1)
      -- its local state is lost: the next process restores every task from
      -- the changelog (the windows open at the stop go on from there)
      os.execute("rm -rf " .. sh_quote(dir .. "/state-2"))
      produce(b, "app2-in", 300, 800)
      ps.p2 = run("p2", "app2", "state-2")
      so.wait_for("the second process to read everything", function() return caught_up({ ps.p2 }, 1600) end, 90,
        tell)
      local ids = so.tasks_of(ps.p2)
      for _, t in ipairs(so.tasks(ps.p2)) do assert.equal("changelog", t.restored_from, t.id) end
      stop(ps.p2)
      -- each task ran 25 or more cycles here: its cache keeps only its last
      -- entries (purged every 10 cycles), its last commit is still there
      assert.equal(PARTS, #ids)
      for _, id in ipairs(ids) do
        local ck = assert(core.checkpoint(dir .. "/state-2/app2/" .. id, { read_only = true }))
        local last_offsets, last = ck:latest()
        assert.is_true(last >= 20, id .. " ran " .. tostring(last) .. " cycles")
        assert.equal(last, last_offsets)
        assert.is_nil(ck:offsets(1), id)
        assert.is_nil(ck:commit_entry(1), id)
        local purged = last - last % 10 -- the last purge kept entries purged - 9 .. purged
        assert.is_nil(ck:commit_entry(purged - 10), id)
        assert.is_string(ck:commit_entry(purged - 9), id)
        ck:close()
      end
      -- the next one on the same state directory: its local state is current
      produce_end(b, "app2-in")
      ps.p3 = run("p3", "app2", "state-2")
      so.wait_for("the third process to read everything", function() return caught_up({ ps.p3 }, 1602) end, 90,
        tell)
      for _, t in ipairs(so.tasks(ps.p3)) do assert.equal("local", t.restored_from, t.id) end
      so.wait_for("every window in the output", function() return #output(b, "app2-out") >= #expected(800) end, 60,
        tell)
      stop(ps.p3)
      assert.same(expected(800), output(b, "app2-out"))
    end)

  it("fences a zombie: a process stopped past its session timeout cannot commit, and stops with the reason",
    function()
      topics("app3")
      produce(b, "app3-in", 0, 300)
      local ps = {}
      finally(function()
        if ps.z then os.execute("kill -CONT " .. ps.z.pid .. " 2>/dev/null") end
        so.kill_all(ps)
      end)
      local tell = so.tell(ps)
      local stop_file = dir .. "/stop-z"
      ps.z = run("z", "app3", "state-z", "SCALEOUT_STOP_FILE=" .. sh_quote(stop_file))
      ps.y = run("y", "app3", "state-y")
      so.wait_for("both processes to run tasks", function()
        return #so.tasks(ps.z) > 0 and #so.tasks(ps.y) > 0
      end, 60, tell)
      produce(b, "app3-in", 300, 600)
      -- z stops itself in the middle of a cycle; its session times out and
      -- y takes over every task from what z committed
      write_file(stop_file, "")
      so.wait_for("the zombie to stop", function() return so.state_of(ps.z) == "T" end, 30, tell)
      so.wait_for("the other process to take every task over", function() return caught_up({ ps.y }, 1200) end, 90,
        tell)
      -- z wakes up and finishes its cycle: the group no longer knows it, so
      -- its transaction is refused and aborted, and it stops with the reason
      os.execute("kill -CONT " .. ps.z.pid)
      so.wait_for("the zombie to exit", function()
        local st = so.state_of(ps.z)
        return st == nil or st == "Z"
      end, 60, tell)
      assert.equal(1, so.wait(ps.z))
      -- one line: tide: query app3 (<source> -> <sink>) failed: application app3: this process was fenced
      -- (<the broker's refusal>): another process owns its tasks now
      local line
      for l in read_file(ps.z.err):gmatch("[^\n]+") do
        if l:find("fenced", 1, true) then line = l end
      end
      assert.is_truthy(line, read_file(ps.z.err))
      assert.matches("^tide: query app3 %(.*%) failed: application app3: this process was fenced %(.+%): another " ..
        "process owns its tasks now$", line)
      produce(b, "app3-in", 600, 800)
      produce_end(b, "app3-in")
      so.wait_for("every window in the output", function() return #output(b, "app3-out") >= #expected(800) end, 90,
        tell)
      stop(ps.y)
      assert.same(expected(800), output(b, "app3-out"))
    end)
end)
