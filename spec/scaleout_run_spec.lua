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

local support = require "support"
local kafka_broker = require "kafka_broker"

local tmpname, sh_quote, read_file, write_file = support.tmpname, support.sh_quote, support.read_file,
  support.write_file

local PARTS, KEYS = 4, 8

-- The application's script: args bootstrap, output topic, [a checkpoint
-- directory: the plain single-process engine instead of an application].
-- A row spends ~1 ms in a Lua filter and a cycle takes at most 40 offsets
-- per partition, so that the run lasts long enough for a SIGKILL to land
-- in the middle of it.
local APP = [==[
local tide = require "tide"
local bs, out, plain = arg[1], arg[2], arg[3]
local function spin()
  local t = os.clock() + 0.001
  while os.clock() < t do end
  return true
end
local s = tide.read_stream("kafka", { bootstrap = bs, subscribe = "in", starting_offsets = "earliest",
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

-- Produce messages [from, to) of every key with kcat: key "u<k>" always to
-- partition k % PARTS.
local function produce(b, from, to)
  for p = 0, PARTS - 1 do
    local lines = {}
    for i = from, to - 1 do
      for k = p, KEYS - 1, PARTS do
        local ts, amount = event(k, i)
        lines[#lines + 1] = string.format('u%d\t{"ts":%d,"amount":%d}', k, ts, amount)
      end
    end
    local f = tmpname()
    write_file(f, table.concat(lines, "\n") .. "\n")
    local code, _, err = support.run_cmd(string.format("kcat -P -b %s -t in -p %d -K '\t' -l %s",
      sh_quote(b.bootstrap), p, sh_quote(f)))
    os.remove(f)
    assert(code == 0, "kcat -P failed: " .. err)
  end
end

-- One message per key far in the future: every earlier window closes.
local function produce_end(b)
  for p = 0, PARTS - 1 do
    local lines = {}
    for k = 0, KEYS - 1 do
      if k % PARTS == p then lines[#lines + 1] = string.format('u%d\t{"ts":%d,"amount":0}', k, BASE + 3600000) end
    end
    local f = tmpname()
    write_file(f, table.concat(lines, "\n") .. "\n")
    assert(support.run_cmd(string.format("kcat -P -b %s -t in -p %d -K '\t' -l %s", sh_quote(b.bootstrap), p,
      sh_quote(f))) == 0)
    os.remove(f)
  end
end

-- The expected rows for messages [0, n) of every key: "key window_start n total", sorted.
local function expected(n)
  local agg = {}
  for k = 0, KEYS - 1 do
    for i = 0, n - 1 do
      local ts, amount = event(k, i)
      local w = ts - ts % 10000
      local id = string.format("u%d %d", k, w)
      local a = agg[id] or { 0, 0 }
      agg[id] = a
      a[1], a[2] = a[1] + 1, a[2] + amount
    end
  end
  local out = {}
  for id, a in pairs(agg) do out[#out + 1] = string.format("%s %d %d", id, a[1], a[2]) end
  table.sort(out)
  return out
end

-- The output topic as a read_committed consumer sees it, as sorted rows
-- (a repeated row stays, twice).
local function output(b, topic)
  local code, out, err = support.run_cmd(string.format(
    "kcat -b %s -C -t %s -e -q -X isolation.level=read_committed -f '%%k %%s\\n'", sh_quote(b.bootstrap),
    sh_quote(topic)))
  assert(code == 0, "kcat -C failed: " .. err)
  local rows = {}
  for _, l in ipairs(support.lines_of(out)) do
    local k, w, n, t = l:match('^(%S+) {"window_start":(%-?%d+),"window_end":%-?%d+,"kafka_key":"%S+","n":(%d+),' ..
      '"total":(%d+)}$')
    assert(k, "an unexpected message: " .. l)
    rows[#rows + 1] = string.format("%s %s %s %s", k, w, n, t)
  end
  table.sort(rows)
  return rows
end

-- A process `tide run --application-id app --state-dir dir app.lua ...` in
-- the background: its pid, its stderr file and its progress log.
local function start(dir, name, app, state_dir, script, args)
  local p = { err = dir .. "/" .. name .. ".err", log = dir .. "/" .. name .. ".progress" }
  local cmd = support.tide_command(string.format("run --application-id %s --state-dir %s --log-progress %s %s %s",
    app, sh_quote(state_dir), sh_quote(p.log), sh_quote(script), args))
  p.ph = io.popen(string.format("sh -c %s", sh_quote(cmd .. " >/dev/null 2>" .. sh_quote(p.err) ..
    " & echo $!; wait $!; echo rc=$?")))
  p.pid = tonumber(p.ph:read("l"))
  assert(p.pid, "process started")
  return p
end

-- Wait for the process to end; its exit status.
local function wait(p)
  local rest = p.ph:read("a")
  p.ph:close()
  p.done = true
  return tonumber(rest:match("rc=(%d+)"))
end

-- The tasks a process's last progress report names.
local function tasks_of(p)
  local last
  for line in (read_file(p.log) or ""):gmatch("[^\n]+") do last = line end
  if not last then return {} end
  local out = {}
  for id in last:match('"tasks":%[(.-)%]'):gmatch('"id":"([%d_]+)"') do out[#out + 1] = id end
  return out
end

local function wait_for(what, f, secs, tell)
  for _ = 1, (secs or 60) * 10 do
    if f() then return end
    support.sleep_ms(100)
  end
  error("timed out waiting for " .. what .. (tell and ("\n" .. tell()) or ""))
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

  local function errs(ps)
    return function()
      local out = {}
      for name, p in pairs(ps) do out[#out + 1] = name .. ": " .. (read_file(p.err) or "") end
      return table.concat(out, "\n")
    end
  end

  it("gives the output of one process, exactly once, through a SIGKILL and a process added later", function()
    b:create_topic("in", PARTS)
    b:create_topic("out", PARTS)
    b:create_topic("plain", 1)
    produce(b, 0, 200)
    local ps = {}
    for _, n in ipairs { "a", "b", "c" } do ps[n] = start(dir, n, "app1", dir .. "/state-" .. n, script, sh_quote(b.bootstrap) .. " out")
    end
    local tell = errs(ps)
    finally(function()
      for _, p in pairs(ps) do
        if not p.done then
          os.execute("kill -9 " .. p.pid .. " 2>/dev/null")
          wait(p)
        end
      end
    end)
    -- all 4 tasks run, spread over the 3 processes
    wait_for("the tasks spread over the three processes", function()
      local n, all = 0, {}
      for _, p in pairs(ps) do
        local t = tasks_of(p)
        if #t > 0 then n = n + 1 end
        for _, id in ipairs(t) do all[id] = true end
      end
      return n == 3
    end, 60, tell)
    produce(b, 200, 400)
    -- SIGKILL one that runs tasks, in the middle of the run
    local victim = #tasks_of(ps.b) > 0 and ps.b or ps.c
    os.execute("kill -9 " .. victim.pid)
    wait(victim)
    produce(b, 400, 600)
    ps.d = start(dir, "d", "app1", dir .. "/state-d", script, sh_quote(b.bootstrap) .. " out")
    -- (a task it opened has its directory in its state_dir)
    wait_for("the added process to get a task", function()
      return support.sh("ls " .. sh_quote(dir .. "/state-d/app1")):match("0_%d") ~= nil
    end, 60, tell)
    produce(b, 600, 800)
    produce_end(b)
    local want = expected(800)
    wait_for("every window in the output", function() return #output(b, "out") >= #want end, 120, tell)
    -- stop the others (Ctrl-C's SIGTERM): they leave the group and exit 0
    for n, p in pairs(ps) do
      if p ~= victim then
        os.execute("kill -TERM " .. p.pid)
        assert.equal(0, wait(p), n .. " exits 0: " .. (read_file(p.err) or ""))
      end
    end
    assert.same(want, output(b, "out"))
    -- the same script run by tide's plain engine, in one process
    local code, _, err = support.run_cmd(support.tide_command(string.format("run --quiet %s %s plain %s",
      sh_quote(script), sh_quote(b.bootstrap), sh_quote(dir .. "/ck"))))
    assert.equal(0, code, err)
    assert.same(want, output(b, "plain"))
  end)
end)
