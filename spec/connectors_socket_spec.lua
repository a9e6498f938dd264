-- Specs for the socket source (connectors/socket.lua), driven through the
-- connector protocol (connectors/README.md) over real TCP on 127.0.0.1.

local core = require "tide.core"
local runtime = require "tide.runtime"
local util = require "tide.util"

local format = string.format

local d = runtime.connector("source", "socket")

local function opts(o) return util.check_options(o, d.options, "read_stream(socket)") end

-- A child process connected to 127.0.0.1:port that sends what is written to it.
local function sender(port)
  return assert(io.popen(format("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && exec cat >&3'", port), "w"))
end

-- Send text on a new connection and close it.
local function send_once(port, text)
  local p = sender(port)
  p:write(text)
  p:close()
end

local function run_until(loop, cond)
  local guard = loop:timer(10000, function() end)
  while not cond() and not guard:is_closed() do loop:run("once") end
  guard:close()
  return cond()
end

-- The error fn raises (assert.has_error would cut "127.0.0.1:9999: " as a position).
local function err_of(fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error")
  return err
end

local function values(batches)
  local out = {}
  for _, b in ipairs(batches) do
    for _, v in ipairs(b:column("value")) do out[#out + 1] = v end
    b:close()
  end
  return out
end

describe("the socket source", function()
  local loop, ctx, src

  before_each(function()
    loop = runtime.loop()
    ctx = { loop = loop, query_id = "test", query_name = "t", checkpoint = "/nonexistent", index = 1 }
  end)
  after_each(function()
    if src then src:stop() end
    src = nil
    loop:run("nowait")
  end)

  local function offset_at_least(n)
    return function() return (src:latest_offset() or 0) >= n end
  end

  it("has the schema value string, needs a port and refuses unknown options", function()
    assert.equal("value string", d.schema(opts { port = 0 }))
    assert.equal("SocketSource[127.0.0.1:9999]", d.label(opts { port = 9999 }))
    assert.has_error(function() d.schema(opts {}) end,
      "option 'port' is required (an integer 0..65535; 0 picks a free port)")
    assert.has_error(function() opts { port = 1, hots = "x" } end,
      "read_stream(socket): unknown option 'hots' (allowed: bad_records, host, max_line, port)")
    assert.has_error(function() opts { port = 70000 } end,
      "read_stream(socket): option 'port' must be <= 65535, got 70000")
    assert.has_error(function() opts { port = 1, bad_records = "skip" } end,
      "read_stream(socket): option 'bad_records' must be one of fail, drop, got 'skip'")
  end)

  it("binds the port it picked for port 0, says so, and is not replayable", function()
    src = d.new(opts { port = 0 }, ctx)
    assert.is_true(src.port > 0)
    assert.equal(format("SocketSource[127.0.0.1:%d]", src.port), src.description)
    assert.is_false(src.replayable)
    assert.is_nil(src:latest_offset())
  end)

  it("counts lines as offsets and returns the lines after start up to stop", function()
    src = d.new(opts { port = 0 }, ctx)
    send_once(src.port, "a\r\nbb\n\nlast")
    assert.is_true(run_until(loop, offset_at_least(4)))
    assert.equal(4, src:latest_offset())
    local bs, counters = src:get_batch(nil, 4)
    assert.is_nil(counters)
    assert.same({ "a", "bb", "", "last" }, values(bs))
    assert.same({ "bb", "" }, values(src:get_batch(1, 3)))
    assert.same({ "last" }, values(src:get_batch(3, 4)))
  end)

  it("says its lag: the lines received after an offset", function()
    src = d.new(opts { port = 0 }, ctx)
    assert.same({ records = 0 }, src:lag(nil))
    send_once(src.port, "1\n2\n3\n")
    assert.is_true(run_until(loop, offset_at_least(3)))
    assert.same({ records = 3 }, src:lag(nil))
    assert.same({ records = 1 }, src:lag(2))
    assert.same({ records = 0 }, src:lag(3))
  end)

  it("forgets committed lines and keeps counting", function()
    src = d.new(opts { port = 0 }, ctx)
    send_once(src.port, "1\n2\n3\n")
    assert.is_true(run_until(loop, offset_at_least(3)))
    src:commit(2)
    assert.same({ "3" }, values(src:get_batch(2, 3)))
    assert.same({ "3" }, values(src:get_batch(0, 3)))   -- lines 1 and 2 are gone
    send_once(src.port, "4\n5\n")
    assert.is_true(run_until(loop, offset_at_least(5)))
    src:commit(3)
    assert.same({ "4", "5" }, values(src:get_batch(3, 5)))
    src:commit(5)
    assert.same({}, values(src:get_batch(5, 5)))
    assert.equal(5, src:latest_offset())
  end)

  it("wakes the watcher when lines arrive", function()
    src = d.new(opts { port = 0 }, ctx)
    local woke = 0
    src:watch(function() woke = woke + 1 end)
    send_once(src.port, "x\n")
    assert.is_true(run_until(loop, function() return woke > 0 end))
    assert.equal(1, src:latest_offset())
  end)

  it("takes lines from several connections at once, many of them", function()
    src = d.new(opts { port = 0 }, ctx)
    local kids = {}
    for c = 1, 3 do
      kids[c] = assert(io.popen(format("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && seq %d 3 60000 >&3'",
        src.port, c)))
    end
    assert.is_true(run_until(loop, offset_at_least(60000)))
    for _, k in ipairs(kids) do k:close() end
    local got = values(src:get_batch(nil, 60000))
    assert.equal(60000, #got)
    table.sort(got, function(a, b) return tonumber(a) < tonumber(b) end)
    for i = 1, 60000 do assert(got[i] == tostring(i), "line " .. i) end
  end)

  it("fails with a clear error when the port is in use or the host is unknown", function()
    src = d.new(opts { port = 0 }, ctx)
    assert.equal(format("socket source: cannot listen on 127.0.0.1:%d: address already in use", src.port),
      err_of(function() d.new(opts { port = src.port }, ctx) end))
    assert.equal("socket source: cannot listen on no-such-host.invalid:0: unknown host",
      err_of(function() d.new(opts { host = "no-such-host.invalid", port = 0 }, ctx) end))
  end)

  it("fails the query on a line longer than max_line, naming the sender", function()
    src = d.new(opts { port = 0, max_line = 8 }, ctx)
    send_once(src.port, "ok\n123456789\nafter\n")
    assert.is_true(run_until(loop, function() return not pcall(src.latest_offset, src) end))
    local ok, err = pcall(src.latest_offset, src)
    assert.is_false(ok)
    assert.matches(format("^socket source 127%%.0%%.0%%.1:%d: a line from 127%%.0%%.0%%.1:%%d+ is longer than 8 bytes "
      .. "%%(option max_line%%)$", src.port), err)
    assert.equal(err, err_of(function() src:get_batch(nil, 1) end))
  end)

  it("drops and counts too long lines with bad_records = drop", function()
    src = d.new(opts { port = 0, max_line = "8B", bad_records = "drop" }, ctx)
    send_once(src.port, "ok\n123456789\nafter\n")
    assert.is_true(run_until(loop, offset_at_least(2)))
    local bs, counters = src:get_batch(nil, 2)
    assert.same({ "ok", "after" }, values(bs))
    assert.same({ dropped = 1 }, counters)
    assert.is_nil(select(2, src:get_batch(nil, 2)))
  end)

  it("fails on a line that is not UTF-8, or drops it with bad_records = drop", function()
    src = d.new(opts { port = 0 }, ctx)
    send_once(src.port, "good\n\xff\xfe\n")
    assert.is_true(run_until(loop, offset_at_least(2)))
    assert.equal(format("socket source 127.0.0.1:%d: line 2: invalid UTF-8 at byte 1", src.port),
      err_of(function() src:get_batch(nil, 2) end))
    src:stop()
    src = d.new(opts { port = 0, bad_records = "drop" }, ctx)
    send_once(src.port, "good\n\xff\xfe\nfine\n")
    assert.is_true(run_until(loop, offset_at_least(3)))
    local bs, counters = src:get_batch(nil, 3)
    assert.same({ "good", "fine" }, values(bs))
    assert.same({ dropped = 1 }, counters)
  end)

  it("stops listening when stopped, closing its connections", function()
    src = d.new(opts { port = 0 }, ctx)
    local port = src.port
    local peer = assert(io.popen(format("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3; echo closed'", port)))
    send_once(port, "x\n")
    assert.is_true(run_until(loop, offset_at_least(1)))
    src:stop()
    src = nil
    assert.equal("closed\n", peer:read("a"))
    peer:close()
    local again = assert(core.loop())  -- the port is free again
    local srv = assert(again:listen("127.0.0.1", port, function() end))
    srv:close()
    again:close()
  end)
end)
