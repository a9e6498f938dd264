-- Scale-out with a repartition (issue 15; lua/tide/topology.lua): a windowed
-- count grouped by a column that is NOT the Kafka message key, run by
-- several `tide run --application-id` processes on the test broker. The
-- query splits in two sub-topologies: tasks 0_p read the input and write
-- each row, keyed by its user, to the topic app-agg1-repartition; tasks 1_p
-- read that topic and aggregate, with the watermark carried by markers.
--
-- The input: 4 partitions, every user in every partition, event times rising
-- with less disorder than the watermark delay, then one message per
-- partition far in the future that closes every earlier window. The result
-- is known three ways: computed here in Lua, by a single-process run of the
-- same script (tide's plain engine, no repartition), and by the
-- application's processes, one of them SIGKILLed mid-run and one added
-- later; the read_committed output of each must be the same rows, each
-- exactly once.

local support = require "support"
local kafka_broker = require "kafka_broker"
local so = require "scaleout_support"

local tmpname, sh_quote, read_file, write_file = support.tmpname, support.sh_quote, support.read_file,
  support.write_file

local PARTS, USERS = 4, 6

-- The script: args bootstrap, output topic, [a checkpoint directory: the
-- plain single-process engine instead of an application]. A row spends
-- ~0.5 ms in a Lua filter and a cycle takes at most 40 offsets per
-- partition, so that a SIGKILL lands in the middle of the run.
local APP = [==[
local tide = require "tide"
local bs, out, plain = arg[1], arg[2], arg[3]
local function spin()
  local t = os.clock() + 0.0005
  while os.clock() < t do end
  return true
end
local s = tide.read_stream("kafka", { bootstrap = bs, subscribe = "in", starting_offsets = "earliest",
  format = "json", schema = "ts timestamp, user string, amount int", max_offsets_per_trigger = 40,
  kafka = { ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "300" } })
local f = s:with_watermark("ts", "2 seconds"):filter(spin)
  :group_by(tide.window("ts", "10 seconds"), "user"):agg{ "count(*) AS n", "sum(amount) AS total" }
if plain then
  f:write_stream("kafka", { bootstrap = bs, topic = out, key = "user", checkpoint = plain,
    trigger = "available_now" }):await()
else
  f:write_stream("kafka", { bootstrap = bs, topic = out, key = "user" })
end
]==]

local BASE = 1700000000000 -- ms, a multiple of 10 s

-- Message i (0-based) of partition p: its user, event time and amount.
-- Event times rise by 50 ms a message with up to 1 s of disorder (under the
-- 2 s delay); users are spread over every partition.
local function event(p, i)
  return "u" .. ((i * 5 + p * 3) % USERS), BASE + i * 50 + ((i * 7 + p * 3) % 20) * 50 - 500, (i * 31 + p * 17) % 100
end

-- Produce messages [from, to) of every partition, keyed by a message id.
local function produce(b, from, to) so.produce_events(b, "in", PARTS, event, from, to) end

-- One message per partition far in the future: every earlier window closes.
local function produce_end(b)
  for p = 0, PARTS - 1 do
    so.produce_lines(b, "in", p, { string.format('end-%d\t{"ts":%d,"user":"u0","amount":0}', p, BASE + 3600000) })
  end
end

-- The expected rows for messages [0, n) of every partition:
-- "user window_start n total", sorted.
local function expected(n)
  return so.windows(function(add)
    for p = 0, PARTS - 1 do
      for i = 0, n - 1 do add(event(p, i)) end
    end
  end)
end

-- The output topic's committed rows, sorted (a repeated row stays, twice).
local function output(b, topic)
  local rows = {}
  for _, l in ipairs(so.committed_lines(b, topic)) do
    local k, w, u, n, t = l:match('^(%S+) {"window_start":(%-?%d+),"window_end":%-?%d+,"user":"(%S+)","n":(%d+),' ..
      '"total":(%d+)}$')
    assert(k and k == u, "an unexpected message: " .. l)
    rows[#rows + 1] = string.format("%s %s %s %s", u, w, n, t)
  end
  table.sort(rows)
  return rows
end

describe("scale-out with a repartition", function()
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

  it("gives the rows of one process and of a computation in Lua, exactly once, through a SIGKILL and a " ..
    "process added later", function()
    b:create_topic("in", PARTS)
    b:create_topic("out", PARTS)
    b:create_topic("plain", 1)
    produce(b, 0, 200)
    local ps = {}
    local function run(name)
      ps[name] = so.start(dir, name, "rp", dir .. "/state-" .. name, script, sh_quote(b.bootstrap) .. " out")
    end
    for _, n in ipairs { "a", "b", "c" } do run(n) end
    local tell = so.errors(ps)
    -- the 8 tasks (4 reading the input, 4 reading the repartition topic) spread over the three processes
    -- (a task's local cache is a directory "<s>_<p>" in the state
    -- directory of each process that opened it: a progress report comes
    -- only from a cycle with work)
    local function all_tasks()
      local busy, seen, n = 0, {}, 0
      for _, name in ipairs { "a", "b", "c" } do
        local mine = 0
        for id in support.sh("ls " .. sh_quote(dir .. "/state-" .. name .. "/rp") .. " 2>/dev/null"):gmatch("[^\n]+") do
          if id:match("^%d+_%d+$") then
            mine = mine + 1
            if not seen[id] then n = n + 1 end
            seen[id] = true
          end
        end
        if mine > 0 then busy = busy + 1 end
      end
      return busy, seen, n
    end
    so.wait_for("the tasks of both sub-topologies spread over the three processes", function()
      local busy, seen, n = all_tasks()
      return busy == 3 and n == 2 * PARTS and seen["0_0"] and seen["1_0"]
    end, 90, tell)
    produce(b, 200, 400)
    -- SIGKILL one that runs tasks, in the middle of the run
    local victim = ps.b
    os.execute("kill -9 " .. victim.pid)
    so.wait(victim)
    produce(b, 400, 600)
    run("d")
    so.wait_for("the added process to get a task", function() return so.opened(dir .. "/state-d") end, 90, tell)
    produce(b, 600, 800)
    produce_end(b)
    local want = expected(800)
    so.wait_for("every window in the output", function() return #output(b, "out") >= #want end, 180, tell)
    -- stop the others (Ctrl-C's SIGTERM): they leave the group and exit 0
    for n, p in pairs(ps) do
      if p ~= victim then
        os.execute("kill -TERM " .. p.pid)
        assert.equal(0, so.wait(p), n .. " exits 0: " .. (read_file(p.err) or ""))
      end
    end
    assert.same(want, output(b, "out"))
    -- the rows did go through the repartition topic: every input row, once
    -- in the committed part (markers aside)
    assert.equal(800 * PARTS + PARTS, so.repartition_rows(so.committed_lines(b, "rp-agg1-repartition")))
    -- the same script run by tide's plain engine, in one process
    local code, _, err = support.run_cmd(support.tide_command(string.format("run --quiet %s %s plain %s",
      sh_quote(script), sh_quote(b.bootstrap), sh_quote(dir .. "/ck"))))
    assert.equal(0, code, err)
    assert.same(want, output(b, "plain"))
  end)
end)
