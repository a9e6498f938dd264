-- Helpers of the scale-out specs (spec/scaleout_*_spec.lua): processes of
-- an application run with `tide run --application-id` in the background,
-- their progress logs, and topics written and read with kcat on the test
-- broker (spec/kafka_broker.lua).
--
--    local so = require "scaleout_support"
--    local p = so.start(dir, "a", "app1", dir .. "/state-a", script, "args...")
--    so.wait_for("what", function() return ... end, 60, so.tell({ a = p }))
--    so.last_progress(p)           -- the last progress report (a table) or nil
--    so.tasks(p)                   -- its tasks: { { id =, offset =, restored_from =, ... } }
--    so.tasks_of(p)                -- their ids: { "0_1", "1_3", ... }
--    os.execute("kill -TERM " .. p.pid); so.wait(p)   -- the exit status
--    so.produce(b, "in", 0, { "key\tvalue", ... })   -- kcat, one message a line
--    so.consume(b, "out")          -- { "key value", ... } read_committed, in topic order
--    so.repartition_rows(so.consume(b, "app-agg1-repartition")) -- the rows committed to it
--    so.crash_run{ ... }           -- 3 processes, one SIGKILLed and restarted without state
--    so.stop(p)                    -- SIGTERM; asserts exit 0
--    so.kill_all(ps)               -- SIGKILL what still runs (a finally of a failed spec)

local support = require "support"
local util = require "tide.util"

local sh_quote, read_file, write_file = support.sh_quote, support.read_file, support.write_file

local M = {}

--- Start `tide run --application-id app --state-dir state_dir --log-progress
-- <dir>/<name>.progress script args` in the background (stderr to
-- <dir>/<name>.err; env: "NAME=value ..." for its environment, or nil).
-- Returns { pid =, err =, log = }.
function M.start(dir, name, app, state_dir, script, args, env)
  local p = { name = name, err = dir .. "/" .. name .. ".err", log = dir .. "/" .. name .. ".progress" }
  local cmd = support.tide_command(string.format("run --application-id %s --state-dir %s --log-progress %s %s %s",
    app, sh_quote(state_dir), sh_quote(p.log), sh_quote(script), args or ""))
  if env then cmd = env .. " " .. cmd end
  p.ph = io.popen(string.format("sh -c %s", sh_quote(cmd .. " >/dev/null 2>" .. sh_quote(p.err) ..
    " & echo $!; wait $!; echo rc=$?")))
  p.pid = tonumber(p.ph:read("l"))
  assert(p.pid, "process started")
  return p
end

--- Wait for process p to end; its exit status.
function M.wait(p)
  local rest = p.ph:read("a")
  p.ph:close()
  p.done = true
  return tonumber(rest:match("rc=(%d+)"))
end

--- SIGKILL and reap the processes of ps that still run.
function M.kill_all(ps)
  for _, p in pairs(ps) do
    if not p.done then
      os.execute("kill -9 " .. p.pid .. " 2>/dev/null")
      M.wait(p)
    end
  end
end

--- Process p's state letter in /proc ("T": stopped), or nil when gone.
function M.state_of(p)
  local f = io.open("/proc/" .. p.pid .. "/stat")
  if not f then return nil end
  local st = f:read("a")
  f:close()
  return st:match("^%d+ %b() (%a)")
end

--- The last progress report of process p, or nil.
function M.last_progress(p)
  local last
  for line in (read_file(p.log) or ""):gmatch("[^\n]+") do last = line end
  return last and util.json_decode(last) or nil
end

--- The tasks of p's last progress report (its application.tasks).
function M.tasks(p)
  local r = M.last_progress(p)
  return r and r.application and r.application.tasks or {}
end

--- The ids of those tasks ("0_1", "1_3", ...).
function M.tasks_of(p)
  local out = {}
  for i, t in ipairs(M.tasks(p)) do out[i] = t.id end
  return out
end

--- What the processes wrote to stderr, for a failure's message.
function M.tell(ps)
  return function()
    local out = {}
    for name, p in pairs(ps) do out[#out + 1] = tostring(name) .. ": " .. (read_file(p.err) or "") end
    return table.concat(out, "\n")
  end
end

--- Wait up to secs (default 60) for f() to be true; raise naming what.
function M.wait_for(what, f, secs, tell)
  local deadline = os.time() + (secs or 60)
  repeat
    if f() then return end
    support.sleep_ms(200)
  until os.time() > deadline
  error("timed out waiting for " .. what .. (tell and ("\n" .. tell()) or ""))
end

--- Append messages to partition `part` of topic with kcat: lines
-- "key\tvalue".
function M.produce(b, topic, part, lines)
  local f = support.tmpname()
  write_file(f, table.concat(lines, "\n") .. "\n")
  local code, _, err = support.run_cmd(string.format("kcat -P -b %s -t %s -p %d -K '\t' -l %s",
    sh_quote(b.bootstrap), sh_quote(topic), part, sh_quote(f)))
  os.remove(f)
  assert(code == 0, "kcat -P failed: " .. err)
end

--- The messages of topic as a read_committed consumer sees them: "key value" lines.
function M.consume(b, topic)
  local code, out, err = support.run_cmd(string.format(
    "kcat -b %s -C -t %s -e -q -X isolation.level=read_committed -f '%%k %%s\\n'", sh_quote(b.bootstrap),
    sh_quote(topic)))
  assert(code == 0, "kcat -C failed: " .. err)
  return support.lines_of(out)
end

--- The fixture of a scale-out spec: one test broker for the file, a
-- directory, and the application's script written there. In the spec's
-- describe: `local env = so.fixture(APP); setup(env.open); teardown(env.close)`.
-- env, filled in by open: { b = the broker, dir =, script =, state =
-- function(app, name) -> <dir>/state-<app>-<name>, run = function(name, app,
-- args[, state]) -> so.start of the script as process `<app>-<name>` of
-- application app with arguments "<bootstrap> args", its state directory
-- state(app, state or name) }.
function M.fixture(script_text)
  local env = {}
  function env.open()
    env.b = require("kafka_broker").start()
    env.dir = support.tmpname()
    os.execute("mkdir -p " .. sh_quote(env.dir))
    env.script = env.dir .. "/app.lua"
    write_file(env.script, script_text)
  end
  function env.close()
    if env.b then env.b:stop() end
    os.execute("rm -rf " .. sh_quote(env.dir))
  end
  function env.state(app, name) return env.dir .. "/state-" .. app .. "-" .. name end
  function env.run(name, app, args, state)
    -- (logs named by application too: a progress log is appended to)
    return M.start(env.dir, app .. "-" .. name, app, env.state(app, state or name), env.script,
      sh_quote(env.b.bootstrap) .. " " .. args)
  end
  return env
end

--- SIGTERM (Ctrl-C's twin): process p leaves the group and exits 0 (else
-- this raises, with its stderr).
function M.stop(p)
  os.execute("kill -TERM " .. p.pid)
  local code = M.wait(p)
  if code ~= 0 then
    error(string.format("%s exited %s, not 0: %s", p.name, tostring(code), read_file(p.err) or ""), 2)
  end
end

-- The rows in the lines of a repartition topic that M.consume returned
-- ("key value"): one per one-row message ("K1..." key), a row block's row
-- count for each row block (no key, "B1" + base64 of schema id u32, row
-- count u32, ...: its first 12 base64 characters are its first 9 bytes);
-- watermark markers count none (docs/FORMAT.md).
function M.repartition_rows(lines)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local rows = 0
  for _, l in ipairs(lines) do
    local block = l:match("^%s*B1(%S+)")
    if l:match("^K1") then rows = rows + 1 end
    if block then
      local bytes = {}
      for i = 1, 12, 4 do
        local v = 0
        for j = i, i + 3 do v = v << 6 | (abc:find(block:sub(j, j), 1, true) - 1) end
        bytes[#bytes + 1] = string.char(v >> 16 & 255, v >> 8 & 255, v & 255)
      end
      rows = rows + string.unpack("<I4", table.concat(bytes), 5)
    end
  end
  return rows
end

--- The expected windows of an input, as sorted rows "<key> <window_start>
-- <n> <total>": each(add) calls add(key, ts, amount) for every event;
-- windows of 10 s.
function M.windows(each)
  local agg = {}
  each(function(key, ts, amount)
    local id = string.format("%s %d", key, ts - ts % 10000)
    local a = agg[id] or { 0, 0 }
    agg[id] = a
    a[1], a[2] = a[1] + 1, a[2] + amount
  end)
  local out = {}
  for id, a in pairs(agg) do out[#out + 1] = string.format("%s %d %d", id, a[1], a[2]) end
  table.sort(out)
  return out
end

--- Produce events [from, to) of partitions 0 .. parts-1 of topic, keyed
-- by a message id (so the key says nothing of the user): event(p, i) ->
-- user, ts, amount.
function M.produce_events(b, topic, parts, event, from, to)
  for p = 0, parts - 1 do
    local lines = {}
    for i = from, to - 1 do
      local user, ts, amount = event(p, i)
      lines[#lines + 1] = string.format('m%d-%d\t{"ts":%d,"user":"%s","amount":%d}', p, i, ts, user, amount)
    end
    M.produce(b, topic, p, lines)
  end
end

--- Whether the process with state directory `state_dir` opened a task:
-- a task's local cache is a directory "<s>_<p>" under it. (A progress
-- report comes only from a cycle with work, which a task that got no new
-- rows has not run: waiting for a report can wait for ever.)
function M.opened(state_dir)
  for name in support.sh("ls -R " .. sh_quote(state_dir) .. " 2>/dev/null"):gmatch("[^\n]+") do
    if name:match("^%d+_%d+$") then return true end
  end
  return false
end

--- The run of an application through a crash: three processes; once
-- they all run tasks, one is SIGKILLed and started again with its state
-- directory gone; every process is stopped with SIGTERM once the output
-- has as many rows as `want`.
-- @tab o `{ ps = {} (the caller kills what is left in it: finally),
-- run = function(name[, state]) -> process (so.start; its progress log
-- named by name, its state directory by state or name), state = function(name) ->
-- its state directory, produce = function(step): step 1..4 of the input,
-- produce_end = function(), rows = function() -> the output's sorted rows,
-- want = sorted rows }`
-- @treturn table `{ restarted = the restarted process's last tasks, tasks
-- = the tasks of the processes' last reports by id, rows = the output's
-- rows at the end }`
function M.crash_run(o)
  local ps = o.ps
  local function opened(state) return M.opened(o.state(state)) end
  o.produce(1)
  for _, n in ipairs { "a", "b", "c" } do ps[n] = o.run(n) end
  local tell = M.tell(ps)
  M.wait_for("the tasks spread over the three processes", function()
    return opened("a") and opened("b") and opened("c")
  end, 90, tell)
  o.produce(2)
  os.execute("kill -9 " .. ps.b.pid)
  M.wait(ps.b)
  os.execute("rm -rf " .. sh_quote(o.state("b")))
  o.produce(3)
  ps.b2 = o.run("b2", "b") -- (a log of its own: the killed one's is appended to)
  M.wait_for("the restarted process to get a task", function() return opened("b") end, 90, tell)
  o.produce(4)
  o.produce_end()
  M.wait_for("every row in the output", function() return #o.rows() >= #o.want end, 180, tell)
  M.wait_for("a report of the restarted process", function() return #M.tasks(ps.b2) > 0 end, 60, tell)
  local restarted = M.tasks(ps.b2)
  local seen = {}
  for _, p in pairs(ps) do
    if not p.done then
      for _, t in ipairs(M.tasks(p)) do seen[t.id] = t end
    end
  end
  for _, p in pairs(ps) do
    if not p.done then M.stop(p) end
  end
  return { restarted = restarted, tasks = seen, rows = o.rows() }
end

-- (the names spec/scaleout_repartition_spec.lua was written with)
M.produce_lines, M.committed_lines, M.errors = M.produce, M.consume, M.tell

return M
