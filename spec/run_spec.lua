-- `tide run SCRIPT`: the script's queries run until they end, and Ctrl-C
-- (SIGINT) or SIGTERM stops them after the batch in flight; the script's
-- code after tide.run() is not needed for that: the CLI drives the loop.

local support = require "support"

local function wait_for(path, pred)
  for _ = 1, 500 do
    if pred(support.read_file(path)) then return true end
    support.sleep_ms(20)
  end
  return false
end

describe("tide run", function()
  local script, log, ck
  before_each(function()
    script, log, ck = support.tmpname() .. ".lua", support.tmpname(), support.tmpname()
  end)
  after_each(function() os.execute(string.format("rm -rf '%s' '%s' '%s'", script, log, ck)) end)

  for _, sig in ipairs { "INT", "TERM" } do
    it("stops the script's queries on SIG" .. sig .. ", committed, and exits 0", function()
      support.write_file(script, string.format([[
local tide = require "tide"
local log = assert(io.open(%q, "a"))
log:setvbuf("no")
tide.read_stream("rate", { rows_per_second = 1000 })
  :write_stream(function(id, rows) log:write(id, " ", #rows, "\n") end, { trigger = "20 ms", checkpoint = %q })
]], log, ck))
      local cmd = string.format("sh -c '%s/bin/tide run %s >/dev/null 2>&1 & echo $!; wait $!; echo rc=$?'",
        support.ROOT, script)
      local p = io.popen(cmd)
      local pid = tonumber(p:read("l"))
      assert.is_true(wait_for(log, function(t) return select(2, t:gsub("\n", "")) >= 3 end), "batches ran")
      os.execute("kill -" .. sig .. " " .. pid)
      local rest = p:read("a")
      p:close()
      assert.equal("rc=0", rest:match("rc=%d+"))
      -- every batch the sink saw is committed: a restart goes on after it
      local lines = {}
      for line in support.read_file(log):gmatch("[^\n]+") do lines[#lines + 1] = line end
      local last = tonumber(lines[#lines]:match("^(%d+)"))
      local c = require("tide.core").checkpoint(ck, { read_only = true })
      local off, com = c:latest()
      c:close()
      assert.equal(last, com)
      assert.equal(com, off)
    end)
  end

  it("exits 1 with the query's error when a batch fails", function()
    support.write_file(script, [[
local tide = require "tide"
local ms = tide.memory_stream("v int")
ms:add { { v = 1 } }
ms:frame():write_stream(function() error("sink is down") end, { trigger = "once" })
]])
    local p = io.popen(string.format("%s/bin/tide run %s 2>&1; echo rc=$?", support.ROOT, script))
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("tide: run: ", 1, true), out)
    assert.truthy(out:find("batch 0: sink ForeachBatchSink: ", 1, true), out)
    assert.truthy(out:find("sink is down", 1, true), out)
    assert.equal("rc=1", out:match("rc=%d+"))
  end)
end)
