-- Specs for the event loop binding (core/l_loop.c): tide.Loop, tide.Timer,
-- tide.Watch, tide.Signal.

local core = require "tide.core"

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/tide-loop-spec-XXXXXX")
  local dir = p:read("l")
  p:close()
  return dir
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("tide.Loop", function()
  local loop

  before_each(function() loop = core.loop() end)
  after_each(function() loop:close() end)

  it("is a tide.Loop that says so", function()
    assert.matches("^tide%.Loop %(0x%x+%)$", tostring(loop))
    assert.is_false(loop:alive())
    assert.equal("integer", math.type(loop:now()))
  end)

  describe("timers", function()
    it("fire in the order of their timeouts", function()
      local seen = {}
      loop:timer(30, 0, function() seen[#seen + 1] = "c" end)
      loop:timer(5, 0, function() seen[#seen + 1] = "a" end)
      loop:timer(15, function() seen[#seen + 1] = "b" end)   -- repeat_ms may be left out
      assert.is_true(loop:alive())
      assert.is_false(loop:run())
      assert.equal("abc", table.concat(seen))
    end)

    it("close themselves after firing when they do not repeat", function()
      local t = loop:timer(1, 0, function() end)
      assert.is_true(t:is_active())
      loop:run()
      assert.is_true(t:is_closed())
      assert.equal("tide.Timer (closed)", tostring(t))
      t:stop()   -- a no-op, as is close
      t:close()
    end)

    it("repeat until stopped, and restart with again", function()
      local n, t = 0, nil
      t = loop:timer(1, 1, function()
        n = n + 1
        if n == 3 then t:stop() end
      end)
      assert.is_false(loop:run())
      assert.equal(3, n)
      assert.is_false(t:is_active())
      assert.is_false(t:is_closed())
      assert.is_true(t:again())
      assert.is_true(loop:run("once"))
      assert.is_true(n >= 4)   -- "once" may also run timers that fell due meanwhile
      t:close()
      assert.is_true(loop:alive())    -- closing handles keep the loop alive ...
      assert.is_false(loop:run("nowait"))
      assert.is_false(loop:alive())   -- ... until their close callbacks ran
    end)

    it("keep firing when the program drops their object", function()
      local n = 0
      loop:timer(1, 1, function()
        n = n + 1
        if n == 5 then loop:stop() end
        collectgarbage()
      end)
      collectgarbage()
      loop:run()
      assert.equal(5, n)
    end)

    it("can be closed with a to-be-closed variable", function()
      local t
      do
        local tt <close> = loop:timer(1000, 0, function() end)
        t = tt
      end
      assert.is_true(t:is_closed())
      assert.is_false(loop:run("nowait"))
    end)

    it("survive the collection of their object while closing", function()
      for _ = 1, 100 do
        local t = loop:timer(1000, 0, function() end)
        t:close()
      end
      collectgarbage()
      collectgarbage()
      assert.is_false(loop:run("nowait"))
    end)

    it("check their arguments", function()
      assert.has_error(function() loop:timer(-1, 0, print) end, "bad argument #1 to 'timer' (must be >= 0)")
      assert.has_error(function() loop:timer(1, -1, print) end, "bad argument #2 to 'timer' (must be >= 0)")
      assert.has_error(function() loop:timer(1, 0) end,
        "bad argument #3 to 'timer' (function expected, got no value)")
    end)
  end)

  describe("run", function()
    it("runs once without waiting in nowait mode, saying whether handles remain", function()
      local fired = false
      loop:timer(10000, 0, function() fired = true end)
      assert.is_true(loop:run("nowait"))
      assert.is_false(fired)
    end)

    it("rejects an unknown mode", function()
      assert.has_error(function() loop:run("forever") end, "bad argument #1 to 'run' (invalid option 'forever')")
    end)

    it("raises a callback's error with its traceback, and stops the loop", function()
      local later = false
      loop:timer(1, 0, function() error("boom") end)
      loop:timer(1, 0, function() later = true end)
      local ok, err = pcall(loop.run, loop)
      assert.is_false(ok)
      assert.matches("loop_spec%.lua:%d+: boom\nstack traceback:\n", err)
      assert.is_false(later)
      assert.is_false(loop:run())   -- the loop goes on where it stopped
      assert.is_true(later)
    end)

    it("raises a non-string error value unchanged", function()
      local e = { code = 42 }
      loop:timer(1, 0, function() error(e) end)
      local ok, err = pcall(loop.run, loop)
      assert.is_false(ok)
      assert.equal(e, err)
    end)

    it("does not nest", function()
      loop:timer(1, 0, function() loop:run() end)
      local ok, err = pcall(loop.run, loop)
      assert.is_false(ok)
      assert.matches("loop:run: the loop is already running", err, 1, true)
    end)

    it("returns early on stop", function()
      local n = 0
      loop:timer(1, 1, function()
        n = n + 1
        loop:stop()
      end)
      assert.is_true(loop:run())
      assert.equal(1, n)
    end)
  end)

  describe("watch", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

    it("sees a file written in a directory", function()
      local got
      local w = loop:watch(dir, function(filename, events)
        got = got or { filename, events }
        loop:stop()
      end)
      assert.matches("^tide%.Watch", tostring(w))
      loop:timer(5, 0, function() write(dir .. "/data.txt", "hello\n") end)
      local guard = loop:timer(5000, 0, function() loop:stop() end)
      loop:run()
      guard:close()
      assert.same("data.txt", got and got[1])
      assert.truthy(got[2] == "change" or got[2] == "rename")
      w:close()
      assert.is_true(w:is_closed())
    end)

    it("fails with a failure tuple on a missing path", function()
      local w, msg, name = loop:watch(dir .. "/nope", print)
      assert.is_nil(w)
      assert.equal("ENOENT: No such file or directory", msg)
      assert.equal("ENOENT", name)
      assert.is_false(loop:run("nowait"))
    end)
  end)

  describe("signal", function()
    it("calls back with the signal's name", function()
      local got
      local s = loop:signal("SIGHUP", function(name)
        got = name
        loop:stop()
      end)
      assert.matches("^tide%.Signal", tostring(s))
      loop:timer(1, 0, function() core.raise_signal("SIGHUP") end)
      loop:run()
      assert.equal("SIGHUP", got)
      s:close()
    end)

    it("rejects an unknown signal name", function()
      assert.has_error(function() loop:signal("SIGFOO", print) end,
        "bad argument #1 to 'signal' (invalid option 'SIGFOO')")
      assert.has_error(function() core.raise_signal("KILL") end,
        "bad argument #1 to 'raise_signal' (invalid option 'KILL')")
    end)
  end)

  describe("close", function()
    it("is idempotent", function()
      loop:close()
      loop:close()
      assert.equal("tide.Loop (closed)", tostring(loop))
      assert.is_false(loop:alive())
    end)

    it("closes every handle", function()
      local t = loop:timer(100000, 0, print)
      local s = loop:signal("SIGUSR1", print)
      local w = loop:watch("/tmp", print)
      loop:close()
      assert.is_true(t:is_closed())
      assert.is_true(s:is_closed())
      assert.is_true(w:is_closed())
    end)

    it("makes the loop refuse further use", function()
      loop:close()
      assert.has_error(function() loop:run() end, "attempt to use a closed tide.Loop")
      assert.has_error(function() loop:timer(1, 0, print) end, "attempt to use a closed tide.Loop")
    end)

    it("works from inside a callback: run returns once the loop is closed", function()
      loop:timer(100000, 0, print)
      loop:timer(1, 0, function() loop:close() end)
      assert.is_false(loop:run())
      assert.equal("tide.Loop (closed)", tostring(loop))
    end)

    it("makes handles refuse further use", function()
      local t = loop:timer(100000, 100000, print)
      t:close()
      t:close()
      assert.has_error(function() t:again() end, "attempt to use a closed tide.Timer")
    end)

    it("is left to the end of the Lua state when never called", function()
      local l2 = core.loop()
      l2:timer(100000, 0, print)
      l2:watch("/tmp", print)
      l2 = nil   -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
