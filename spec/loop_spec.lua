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

-- A child process connected to 127.0.0.1:port that sends what is written
-- to it (bash's /dev/tcp and cat: real TCP from another process).
local function sender(port)
  return assert(io.popen(string.format("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && exec cat >&3'", port), "w"))
end

local function send(p, text)
  p:write(text)
  p:flush()
end

-- Run the loop until cond() holds or 10 s pass; returns cond().
local function run_until(loop, cond)
  local guard = loop:timer(10000, function() end)
  while not cond() and not guard:is_closed() do loop:run("once") end
  guard:close()
  return cond()
end

describe("tide.Server", function()
  local loop, got, calls

  local function on_lines(n)
    calls = calls + 1
    got = got + n
  end

  -- The values of the kept lines [from, to) (default: all received).
  local function values(srv, from, to)
    local b = assert(srv:batch(from or 0, to or srv:stats().lines))
    local v = {}
    for i, x in ipairs(b:column("value")) do v[i] = x end
    b:close()
    return v
  end

  before_each(function()
    loop, got, calls = core.loop(), 0, 0
  end)
  after_each(function() loop:close() end)

  it("picks a free port for port 0 and says which", function()
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
    assert.matches("^tide%.Server %(0x%x+%)$", tostring(srv))
    assert.is_true(srv:port() > 0)
    assert.is_true(srv:is_active())
    assert.same({ accepted = 0, open = 0, bytes = 0, lines = 0, errors = 0 }, srv:stats())
  end)

  it("cuts lines across writes and connections, strips a CR before the LF, and delivers a last line at close",
    function()
      local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
      local a, b = sender(srv:port()), sender(srv:port())
      send(a, "hel")
      assert.is_true(run_until(loop, function() return srv:stats().bytes == 3 end))
      assert.equal(0, got)
      send(a, "lo\r")
      assert.is_true(run_until(loop, function() return srv:stats().bytes == 6 end))
      send(a, "\nwor")
      assert.is_true(run_until(loop, function() return got == 1 end))
      assert.same({ "hello" }, values(srv))
      send(b, "b1\n\nb3 \r\n")
      assert.is_true(run_until(loop, function() return got == 4 end))
      assert.same({ "hello", "b1", "", "b3 " }, values(srv))
      a:close()
      assert.is_true(run_until(loop, function() return got == 5 end))
      assert.same({ "wor" }, values(srv, 4, 5))
      b:close()
      assert.is_true(run_until(loop, function() return srv:stats().open == 0 end))
      assert.same({ accepted = 2, open = 0, bytes = 19, lines = 5, errors = 0 }, srv:stats())
    end)

  it("tells on_lines how many lines each read completed, and keeps them until forgotten", function()
    local counts = {}
    local srv = assert(loop:listen("127.0.0.1", 0, function(n) counts[#counts + 1] = n end))
    local a = sender(srv:port())
    send(a, "1\n2\n3\n")
    a:close()
    assert.is_true(run_until(loop, function() return srv:stats().lines == 3 end))
    local total = 0
    for _, n in ipairs(counts) do total = total + n end
    assert.equal(3, total)
    assert.is_true(#counts <= 3)
    assert.same({ "2", "3" }, values(srv, 1, 3))
    local b, lines, dropped, at = srv:batch(0, 3)
    assert.same({ 3, 0, {} }, { lines, dropped, at })
    b:close()
    srv:forget(2)
    assert.same({ "3" }, values(srv, 2, 3))
    assert.has_error(function() srv:batch(1, 3) end, "srv:batch: lines [1, 3) are not kept (kept: [2, 3))")
    assert.has_error(function() srv:batch(2, 4) end, "srv:batch: lines [2, 4) are not kept (kept: [2, 3))")
  end)

  it("fails on a line that is not UTF-8, or drops it and counts it", function()
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
    local a = sender(srv:port())
    send(a, "ok\nbad \xff\nfine\n")
    a:close()
    assert.is_true(run_until(loop, function() return got == 3 end))
    assert.same({ nil, "line 2: invalid UTF-8 at byte 5", "ESCHEMA" }, { srv:batch(0, 3) })
    local b, lines, dropped, at = srv:batch(0, 3, "drop")
    assert.same({ "ok", "fine", n = 2 }, b:column("value"))
    assert.same({ 3, 1, { 2 } }, { lines, dropped, at })
    b:close()
  end)

  it("receives many lines from several connections", function()
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
    local kids = {}
    for c = 1, 4 do
      kids[c] = assert(io.popen(string.format(
        "exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && seq %d 4 200000 >&3'", srv:port(), c)))
    end
    assert.is_true(run_until(loop, function() return got == 200000 end))
    for _, k in ipairs(kids) do k:close() end
    local seen = {}
    for _, l in ipairs(values(srv)) do seen[tonumber(l)] = true end
    for i = 1, 200000 do
      if not seen[i] then error("line " .. i .. " is missing") end
    end
    assert.is_true(calls < 200000)
  end)

  it("reports a line longer than max_line through on_error, skips it and goes on", function()
    local errors = {}
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines, {
      max_line = 4,
      on_error = function(msg, name) errors[#errors + 1] = { msg, name } end,
    }))
    local a = sender(srv:port())
    send(a, "1234\n12345\nok\n123456")
    a:close()
    assert.is_true(run_until(loop, function() return srv:stats().open == 0 and srv:stats().accepted == 1 end))
    assert.same({ "1234", "ok" }, values(srv))
    assert.equal(2, #errors)
    assert.matches("^127%.0%.0%.1:%d+: line longer than 4 bytes %(skipped%)$", errors[1][1])
    assert.equal("ETOOBIG", errors[1][2])
    assert.equal(2, srv:stats().errors)
  end)

  it("fails with a failure tuple when the port is in use or the host does not resolve", function()
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
    local s2, msg, name = loop:listen("127.0.0.1", srv:port(), on_lines)
    assert.is_nil(s2)
    assert.equal("EADDRINUSE: Address already in use", msg)
    assert.equal("EADDRINUSE", name)
    s2, msg, name = loop:listen("no-such-host.invalid", 0, on_lines)
    assert.is_nil(s2)
    assert.equal("ENOTFOUND: not found", msg)
    assert.equal("ENOTFOUND", name)
  end)

  it("rejects bad arguments and options", function()
    assert.has_error(function() loop:listen("127.0.0.1", 70000, on_lines) end,
      "bad argument #2 to 'listen' (must be 0..65535)")
    assert.has_error(function() loop:listen("127.0.0.1", 0) end,
      "bad argument #3 to 'listen' (function expected, got no value)")
    assert.has_error(function() loop:listen("127.0.0.1", 0, on_lines, { max_lines = 1 }) end,
      "listen: unknown option 'max_lines' (allowed: max_line, on_error)")
    assert.has_error(function() loop:listen("127.0.0.1", 0, on_lines, { max_line = 0 }) end,
      "listen: option 'max_line' must be an integer >= 1")
    assert.has_error(function() loop:listen("127.0.0.1", 0, on_lines, { on_error = 1 }) end,
      "listen: option 'on_error' must be a function")
  end)

  it("closes its connections when closed, and refuses further use", function()
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
    local peer = assert(io.popen(string.format(
      "exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3; echo closed'", srv:port())))
    assert.is_true(run_until(loop, function() return srv:stats().open == 1 end))
    srv:close()
    assert.is_true(srv:is_closed())
    assert.equal("closed\n", peer:read("a"))
    peer:close()
    assert.has_error(function() srv:port() end, "attempt to use a closed tide.Server")
    assert.has_error(function() srv:stats() end, "attempt to use a closed tide.Server")
    srv:close()
    assert.is_false(loop:run("nowait"))
  end)

  it("is closed with its loop", function()
    local srv = assert(loop:listen("127.0.0.1", 0, on_lines))
    local port = srv:port()
    loop:close()
    assert.is_true(srv:is_closed())
    local l2 = core.loop()
    local again = assert(l2:listen("127.0.0.1", port, on_lines)) -- the port is free again
    again:close()
    l2:close()
  end)

  it("raises a callback's error from loop:run", function()
    local srv = assert(loop:listen("127.0.0.1", 0, function() error("bad lines") end))
    local a = sender(srv:port())
    send(a, "x\n")
    a:close()
    local ok, err = pcall(run_until, loop, function() return false end)
    assert.is_false(ok)
    assert.matches("loop_spec%.lua:%d+: bad lines", err)
  end)
end)

-- Run a child lua5.4 whose stdin is `redirect` (a shell fragment): `body`
-- after the prelude and `local core = require "tide.core"`; its output.
local function run_child(redirect, body)
  local support = require "spec.support"
  local script = support.tmpname()
  support.write_file(script, support.CHILD_PRELUDE .. "local core = require 'tide.core'\n" .. body)
  local p = io.popen(redirect .. " lua5.4 " .. script .. " 2>&1")
  local out = p:read("a")
  p:close()
  os.remove(script)
  return out
end

describe("tide.Input", function()
  local support = require "spec.support"

  -- Run a child lua5.4 whose stdin is `redirect` (a shell fragment) and that
  -- reads it with loop:input(0, ...), printing the kind, each chunk's bytes
  -- in %q form and the end.
  local function child(redirect, extra)
    return run_child(redirect, [[
local loop = core.loop()
local parts = {}
local inp = assert(loop:input(0, function(bytes, err)
  if bytes then parts[#parts + 1] = bytes else parts[#parts + 1] = "<end " .. tostring(err) .. ">" end
end))
io.write(inp:kind(), "\n")
]] .. (extra or "") .. [[
loop:run()
io.write(string.format("%q", table.concat(parts)), "\n")
assert(inp:is_active() == false)
inp:close()
loop:close()
]])
  end

  it("reads a pipe to its end", function()
    assert.equal('pipe\n"one\\\ntwo<end nil>"\n', child("printf 'one\\ntwo' |"))
  end)

  it("reads a file to its end, and /dev/null as empty", function()
    local path = support.tmpname()
    support.write_file(path, string.rep("x", 70000))
    local out = child("<" .. path, [[
local r, e = inp:set_raw(true)
io.write(tostring(r), " ", e, "\n")
io.write(tostring(select(2, inp:winsize())), "\n")
]])
    os.remove(path)
    -- 70000 bytes come in two reads and whole.
    local want = 'file\nnil EINVAL: Invalid argument\nEINVAL: Invalid argument\n"' .. string.rep("x", 70000) ..
      '<end nil>"\n'
    assert.is_true(out == want, "unexpected output of " .. #out .. " bytes: " .. out:sub(1, 200))
    assert.equal('file\n"<end nil>"\n', child("</dev/null"))
  end)

  it("holds bytes back while paused", function()
    local out = child("printf 'abc' |", [[
inp:pause()
assert(not inp:is_active())
loop:timer(50, 0, function()
  io.write("#parts=", #parts, "\n")
  inp:resume()
end)
]])
    assert.equal('pipe\n#parts=0\n"abc<end nil>"\n', out)
  end)

  it("checks its arguments and options", function()
    local loop <close> = core.loop()
    assert.has_error(function() loop:input(-1, print) end,
      "bad argument #1 to 'input' (must be a file descriptor (>= 0))")
    assert.has_error(function() loop:input(0) end, "bad argument #2 to 'input' (function expected, got no value)")
    assert.has_error(function() loop:input(0, print, { rare = true }) end,
      "input: unknown option 'rare' (allowed: raw)")
    assert.has_error(function() loop:input(0, print, { raw = 1 }) end, "input: option 'raw' must be a boolean")
  end)

  it("fails with a failure tuple on a descriptor that is not open", function()
    local loop <close> = core.loop()
    local inp, msg, name = loop:input(987, print)
    assert.is_nil(inp)
    assert.equal("EINVAL: Invalid argument", msg)
    assert.equal("EINVAL", name)
    assert.is_false(loop:run("nowait"))
  end)

  it("refuses use once closed", function()
    local script = support.tmpname()
    support.write_file(script, support.CHILD_PRELUDE .. [[
local core = require "tide.core"
local loop = core.loop()
local inp = assert(loop:input(0, function() end))
inp:close()
inp:close()
print(tostring(inp), inp:is_closed(), select(2, pcall(inp.kind, inp)))
loop:close()
]])
    local p = io.popen("lua5.4 " .. script .. " </dev/null 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("^tide%.Input %(closed%)\ttrue\t.*attempt to use a closed tide%.Input\n$", out)
  end)
end)

describe("tide.Poll", function()
  local support = require "spec.support"

  local child = run_child

  it("calls back while the descriptor is readable, until stopped; again starts it", function()
    local out = child("printf 'abc' |", [[
local loop = core.loop()
local got = {}
local p
p = assert(loop:poll(0, function(err)
  assert(err == nil, err)
  got[#got + 1] = io.read(1) or "<eof>"
  if #got == 2 then
    p:stop()
    loop:timer(20, 0, function() got[#got + 1] = "|" assert(p:again()) end)
  elseif #got == 5 then
    p:close()
  end
end))
print(tostring(p):match("^tide%.Poll"), p:is_active())
loop:run()
print(table.concat(got), p:is_closed())
loop:close()
]])
    assert.equal("tide.Poll\ttrue\nab|c<eof>\ttrue\n", out)
  end)

  it("checks its arguments, fails with a failure tuple on what epoll refuses, and refuses use once closed", function()
    local loop <close> = core.loop()
    assert.has_error(function() loop:poll(-1, print) end,
      "bad argument #1 to 'poll' (must be a file descriptor (>= 0))")
    assert.has_error(function() loop:poll(0) end, "bad argument #2 to 'poll' (function expected, got no value)")
    local p, msg, name = loop:poll(987, print)
    assert.is_nil(p)
    assert.equal("EBADF: Bad file descriptor", msg)
    assert.equal("EBADF", name)
    local path = support.tmpname()
    support.write_file(path, "x")
    local out = child("<" .. path, [[
local loop = core.loop()
print(loop:poll(0, print))
loop:close()
]])
    os.remove(path)
    assert.equal("nil\tEPERM: Operation not permitted\tEPERM\n", out)
    out = child("printf x |", [[
local loop = core.loop()
local p = assert(loop:poll(0, print))
p:close()
p:stop()
print(p:is_closed(), select(2, pcall(p.again, p)))
loop:close()
]])
    assert.matches("^true\t.*attempt to use a closed tide%.Poll\n$", out)
  end)
end)

describe("loop:catch_interrupt", function()
  local loop, sig

  before_each(function()
    loop = core.loop()
    sig = loop:signal("SIGINT", function() end)
  end)
  after_each(function()
    loop:catch_interrupt("off")
    sig:close()
    loop:close()
  end)

  it("in eval mode, interrupts Lua code that runs outside the loop on SIGINT", function()
    loop:catch_interrupt("eval")
    local n = 0
    local ok, err = pcall(function()
      core.raise_signal("SIGINT")
      while true do n = n + 1 end
    end)
    assert.is_false(ok)
    assert.equal("interrupted!", err)
    -- The next chunk runs unhindered.
    assert.equal(3, (function() return 1 + 2 end)())
    -- The signal's callback has not had it yet: it comes with the next run.
    assert.equal(1, loop:catch_interrupt("prompt"))
    loop:run("nowait")
    assert.equal(0, loop:catch_interrupt("prompt"))
  end)

  it("in eval mode, lets a callback finish and raises from loop:run; the signal's callback knows", function()
    sig:close()
    local got
    sig = loop:signal("SIGINT", function(...) got = table.pack(...) end)
    loop:catch_interrupt("eval")
    local finished = false
    loop:timer(1, 0, function()
      core.raise_signal("SIGINT")
      local x = 0
      for i = 1, 10000 do x = x + i end
      finished = x == 50005000
    end)
    local ok, err = pcall(loop.run, loop)
    assert.is_false(ok)
    assert.equal("interrupted!", err)
    assert.is_true(finished)
    assert.same({ "SIGINT", true, n = 2 }, got)
  end)

  it("in prompt mode, only passes SIGINT on to the tide.Signal", function()
    sig:close()
    local got = 0
    sig = loop:signal("SIGINT", function(...)
      got = got + select("#", ...)
      loop:stop()
    end)
    loop:catch_interrupt("prompt")
    loop:timer(1, 0, function() core.raise_signal("SIGINT") end)
    assert.is_true(loop:run())
    assert.equal(1, got) -- fn("SIGINT") alone
  end)

  it("in prompt mode, interrupts a callback that does not return on a second SIGINT", function()
    loop:catch_interrupt("prompt")
    loop:timer(1, 0, function()
      core.raise_signal("SIGINT")
      core.raise_signal("SIGINT")
      while true do end
    end)
    local ok, err = pcall(loop.run, loop)
    assert.is_false(ok)
    assert.matches("^interrupted!\nstack traceback:", err)
  end)

  it("rejects an unknown mode", function()
    assert.has_error(function() loop:catch_interrupt("on") end,
      "bad argument #1 to 'catch_interrupt' (invalid option 'on')")
  end)
end)

describe("core.readline_open", function()
  it("fails with ENOTTY when stdin is not a terminal", function()
    local out = run_child("</dev/null", "print(core.readline_open())\n")
    assert.equal("nil\tENOTTY: Inappropriate ioctl for device\tENOTTY\n", out)
  end)
end)
