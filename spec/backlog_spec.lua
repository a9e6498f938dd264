-- A query with a backlog (trigger 0 with data always waiting, or batches
-- longer than their trigger interval) runs its batches back to back; the
-- loop must still give every other client its turn between two batches:
-- signals (the CLI's Ctrl-C and SIGTERM), await's timeout, other timers.
-- Each command runs under `timeout`, so a regression fails instead of
-- hanging the suite.

local support = require "support"
local core = require "tide.core"

local function wait_for(path, pred)
  for _ = 1, 1000 do
    if pred(support.read_file(path) or "") then return true end
    support.sleep_ms(20)
  end
  return false
end

local function count_lines(t) return select(2, t:gsub("\n", "")) end

describe("a query with a backlog", function()
  local script, log, ck
  before_each(function()
    script, log, ck = support.tmpname() .. ".lua", support.tmpname(), support.tmpname()
  end)
  after_each(function() os.execute(string.format("rm -rf '%s' '%s' '%s'", script, log, ck)) end)

  -- trigger 0 over a rate source: every batch finds new rows;
  -- trigger "1 ms" with a sink slower than that: every batch overran.
  local cases = {
    { sig = "INT", trigger = "0", sleep = "" },
    { sig = "TERM", trigger = "0", sleep = "" },
    -- (a busy sink: os.execute's system() would ignore the SIGINT meanwhile)
    { sig = "INT", trigger = "\"1 ms\"", sleep = "local t = os.clock() + 0.005 while os.clock() < t do end" },
  }
  for _, c in ipairs(cases) do
    it(string.format("stops on SIG%s under `tide run` (trigger %s%s), committed, exit 0", c.sig, c.trigger,
      c.sleep ~= "" and ", a slow sink" or ""), function()
      support.write_file(script, string.format([[
local tide = require "tide"
local log = assert(io.open(%q, "a"))
log:setvbuf("no")
tide.read_stream("rate", { rows_per_second = 100000 })
  :write_stream(function(id, rows) %s log:write(id, " ", #rows, "\n") end, { trigger = %s, checkpoint = %q })
]], log, c.sleep, c.trigger, ck))
      local cmd = string.format(
        "sh -c 'timeout --foreground -s KILL 60 %s/bin/tide run %s >/dev/null 2>&1 & echo $!; wait $!; echo rc=$?'",
        support.ROOT, script)
      local p = io.popen(cmd)
      local pid = tonumber(p:read("l"))
      assert.is_true(wait_for(log, function(t) return count_lines(t) >= 20 end), "batches ran")
      -- the pid is timeout's: it hands the signal on to tide, once (--foreground:
      -- not again to the process group, which a second Ctrl-C would be)
      os.execute("kill -" .. c.sig .. " " .. pid)
      local rest = p:read("a")
      p:close()
      assert.equal("rc=0", rest:match("rc=%d+"))
      local lines = support.lines_of(support.read_file(log))
      local last = tonumber(lines[#lines]:match("^(%d+)"))
      local cp = core.checkpoint(ck, { read_only = true })
      local off, com = cp:latest()
      cp:close()
      assert.equal(last, com)
      assert.equal(com, off)
    end)
  end

  it("lets await(timeout) time out and other timers fire between its batches", function()
    -- in a child process: without the loop's turn, await would never return
    support.write_file(script, string.format([[
local tide = require "tide"
local batches, fired = 0, 0
local q = tide.read_stream("rate", { rows_per_second = 100000 })
  :write_stream(function() os.execute("sleep 0.005") batches = batches + 1 end, { trigger = 0, checkpoint = %q })
local t = require("tide.runtime").loop():timer(1, 0, function() fired = fired + 1 end)
local done = q:await("300 ms")
t:close()
print(done, fired, batches > 1, q:is_active())
q:stop()
print(q:is_active())
]], ck))
    local code, out = support.run_cmd(string.format("timeout -s KILL 60 %s/bin/tide run %s", support.ROOT, script))
    assert.equal("false\t1\ttrue\ttrue\nfalse\n", out)
    assert.equal(0, code)
  end)
end)
