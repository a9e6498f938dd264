-- `tide run` in a real terminal: tmux runs bin/tide in a 120x40 pane
-- (support.term), keys go in with send-keys, the screen comes back with
-- capture-pane. Status
-- lines, the console sink's tables above them, Ctrl-C. Every wait is for a
-- condition on the screen or on disk, with a deadline.

local support = require "support"
local core = require "tide.core"

local q = support.sh_quote

-- tide in a terminal of its own (support.term); `args` for bin/tide. The
-- screen is the visible pane only: status lines are checked on it whole.
local function tmux_start(args) return support.term(support.tide_command(args), { scrollback = false }) end

local function lines_of(screen)
  local t = {}
  for line in (screen .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  while t[#t] == "" do t[#t] = nil end
  return t
end

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$"
local LINE = "^query (%a+): in [%d.]+[kM]? rows/s, processed [%d.]+[kM]? rows/s, batch ([%-%d]+), " ..
  "watermark (%S+), lag (%S+)$"

-- The status lines at the bottom of a screen, checked: the screen's last
-- lines are the status lines (one per query, "ticks" without a watermark,
-- "late" with one), whole, and nothing else on the screen looks like one:
-- the console's tables and the script's print() went above them.
-- Returns the batch ids they show, by query, once both show one.
local function status_of(screen)
  local l = lines_of(screen)
  local at, batch = {}, {}
  for k, line in ipairs(l) do
    if line:find("query ", 1, true) then
      local name, b, wm, lag = line:match(LINE)
      assert(name == "ticks" or name == "late", "a garbled status line: " .. line .. "\n" .. screen)
      assert(at[name] == nil, "two status lines of one query:\n" .. screen)
      at[name], batch[name] = k, tonumber(b)
      if name == "late" then batch.late_watermark = wm end
      if name == "ticks" or not batch[name] then
        assert(wm == "-" and lag == "-", line)
      elseif batch[name] >= 2 then
        assert(wm:match(ISO) and lag:match("^[%d.]+[mshd%d]+$"), line)
      end
    end
  end
  if not (batch.ticks and batch.late) then return nil end
  -- the two lines at the bottom, below every table line
  assert(math.max(at.ticks, at.late) == #l and math.min(at.ticks, at.late) == #l - 1, screen)
  return batch
end

describe("tide run on a terminal", function()
  local script, ck, t
  before_each(function()
    script, ck = support.tmpname() .. ".lua", support.tmpname()
  end)
  after_each(function()
    if t then t:kill() end
    t = nil
    os.execute(string.format("rm -rf %s %s", q(script), q(ck)))
  end)

  it("shows a status line per query, updated in place below the console's tables, and Ctrl-C commits and exits 0",
    function()
      support.write_file(script, string.format([[
local tide = require "tide"
tide.read_stream("rate", { rows_per_second = 200 })
  :write_stream("console", { trigger = "300 ms", name = "ticks", num_rows = 2, checkpoint = %q })
tide.read_stream("rate", { rows_per_second = 50 })
  :with_watermark("timestamp", "2 seconds")
  :write_stream(function(id) print("late wrote batch " .. id) end, { trigger = "200 ms", name = "late" })
]], ck))
      t = tmux_start("run " .. q(script))
      local first = t:wait(function(s)
        local st = status_of(s)
        return st and st.ticks >= 1 and s:find("Batch: 1", 1, true) and s:find("\nlate wrote batch 1\n") and st
      end, 20, "both status lines after a batch")
      -- the lines update in place: a later batch, still one line each, at the bottom
      t:wait(function(s)
        local st = status_of(s)
        return st and st.ticks >= first.ticks + 2 and st.late > first.late and st.late_watermark:match(ISO)
      end, 20, "a later batch on the status line")
      -- the tables and the lines never mix: checked on every screen seen,
      -- here a few more of them
      local screens = 0
      t:wait(function(s)
        if status_of(s) then screens = screens + 1 end
        return screens >= 10
      end, 20, "more screens")
      t:type(nil, "C-c")
      local _, screen = t:wait(function(s) return s:match("EXITED (%d+)\n") end, 20, "the exit status")
      assert.equal("0", screen:match("EXITED (%d+)\n"))
      -- the status lines were erased before exiting
      assert.is_nil(screen:find("query ticks:", 1, true), screen)
      assert.is_nil(screen:find("query late:", 1, true), screen)
      -- the last batch the console printed is committed
      local shown
      for n in screen:gmatch("Batch: (%d+)") do shown = tonumber(n) end
      local c = assert(core.checkpoint(ck, { read_only = true }))
      local off, com = c:latest()
      c:close()
      assert.equal(shown, com)
      assert.equal(com, off)
    end)

  it("shows no status line with --quiet", function()
    support.write_file(script, [[
local tide = require "tide"
tide.read_stream("rate", { rows_per_second = 100 })
  :write_stream("console", { trigger = "200 ms", name = "ticks", num_rows = 1 })
]])
    t = tmux_start("run --quiet " .. q(script))
    t:wait("Batch: 3", 20)
    local screen = t:screen()
    assert.is_nil(screen:find("query ticks", 1, true), screen)
    t:type(nil, "C-c")
    local rc = t:wait(function(s) return s:match("EXITED (%d+)\n") end, 20, "the exit status")
    assert.equal("0", rc)
  end)
  it("exits at once with 130 on a second Ctrl-C during a slow batch, which stays uncommitted", function()
    local marker = support.tmpname()
    -- batch 2 computes for a minute (a CPU-bound sink: it never returns to
    -- the event loop while it runs)
    support.write_file(script, string.format([[
local tide = require "tide"
tide.read_stream("rate", { rows_per_second = 100 })
  :write_stream(function(id)
    if id == 2 then
      local f = assert(io.open(%q, "w"))
      f:close()
      local deadline = os.time() + 60
      while os.time() < deadline do end
    end
  end, { trigger = "100 ms", name = "slow", checkpoint = %q })
]], marker, ck))
    t = tmux_start("run " .. q(script))
    t:wait(function() return support.exists(marker) end, 20, "the slow batch")
    -- Two signals sent before the process takes the first merge into one
    -- (standard signals do not queue), which a loaded machine makes
    -- likely: press Ctrl-C again each second until the process is gone.
    -- Any second one delivered must end it, in the middle of the batch.
    t:type(nil, "C-c")
    local last = os.time()
    local rc = t:wait(function(s)
      local got = s:match("EXITED (%d+)\n")
      if not got and os.time() > last then
        t:type(nil, "C-c")
        last = os.time()
      end
      return got
    end, 15, "the exit status")
    os.remove(marker)
    assert.equal("130", rc)
    -- batches 0 and 1 are committed; batch 2 runs again on the next start
    local c = assert(core.checkpoint(ck, { read_only = true }))
    local off, com = c:latest()
    c:close()
    assert.equal(2, off)
    assert.equal(1, com)
  end)
end)
