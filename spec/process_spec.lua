-- Specs for tide.stateful: `f:group_by(keys):process(fn, opts)`, arbitrary
-- stateful processing in Lua (issue 19). Spark's own scenarios are in
-- spark_flat_map_groups_with_state_spec.lua; here the state handle, its
-- values through a checkpoint, TTL, several keys, failures and re-runs,
-- the analyzer's refusals and every bad argument.
local tide = require "tide"
local stateful = require "tide.stateful"
local S = require "spec.spark_support"

local function err_of(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^[^:]+:%d+: ", ""))
end

local function clock()
  local c = { now = 1000 }
  function c.fn() return c.now end
  return c
end

local function words(...)
  local rows = {}
  for i, w in ipairs { ... } do rows[i] = { user = w, n = i } end
  return rows
end

local STREAM = "user string, n int"

describe("process", function()
  after_each(S.cleanup)

  describe("the value encoding", function()
    it("reads back what it wrote, integers and floats apart, tables nested", function()
      local v = { 1, 2.0, "x", true, false, { a = { b = { 3 } } }, [10] = -7, k = math.maxinteger, f = -0.5 }
      local back = stateful.decode(stateful.encode(v))
      assert.same(v, back)
      assert.equal("integer", math.type(back[1]))
      assert.equal("float", math.type(back[2]))
      assert.equal(stateful.encode({ a = 1, b = 2 }), stateful.encode({ b = 2, a = 1 }))
    end)

    it("refuses what it cannot store, and bytes that are not its own", function()
      assert.equal("state:set: cannot store a function (values are nil, booleans, numbers, strings and tables " ..
        "of them)", err_of(function() stateful.encode({ f = print }, "state:set") end))
      local t = {}
      t.self = t
      assert.equal("x: cannot store a table that contains itself", err_of(function() stateful.encode(t, "x") end))
      assert.matches("^bad encoded value", err_of(function() stateful.decode("zz") end))
      assert.matches("^bad encoded value: 1 bytes after its end", err_of(function() stateful.decode("tt") end))
    end)
  end)

  describe("on a stream", function()
    it("keeps any Lua value per key through a restart, and counts state rows", function()
      local ms = tide.memory_stream(STREAM)
      local f = ms:frame():group_by("user"):process(function(user, rows, state)
        local s = state:get() or { seen = {}, total = 0, ratio = 0.5 }
        for _, r in ipairs(rows) do
          s.seen[#s.seen + 1] = r.n
          s.total = s.total + r.n
        end
        s.ratio = s.ratio * 2
        state:set(s)
        return { { user = user, total = s.total, seen = #s.seen, ratio = s.ratio } }
      end, { schema = "user string, total int, seen int, ratio double" })
      local t = S.test_stream(f, { mode = "update", out = function(r) return { r.user, r.total, r.seen, r.ratio } end })
      t:add(ms, words("a", "b", "a"))
      t:check_new_answer({ "a", 4, 2, 1.0 }, { "b", 2, 1, 1.0 })
      t:state_rows(2, 2)
      t:stop()
      t:start()
      t:add(ms, words("a"))
      t:check_new_answer({ "a", 5, 3, 2.0 })
      local ops = t.q:last_progress().state_operators
      assert.equal("process", ops[1].name)
      assert.is_true(ops[1].memory_bytes > 0)
    end)

    it("keeps what set stores: a table changed without set, or after it, is not the state", function()
      local ms = tide.memory_stream(STREAM)
      local f = ms:frame():group_by("user"):process(function(user, rows, state)
        local s = state:get()
        local before = s and s.n or 0
        if s then s.n = 999 end -- changed without set: this call's copy only
        local v = { n = before + #rows }
        state:set(v)
        v.n = -1 -- after set: not stored
        return { { user = user, n = before } }
      end, { schema = STREAM })
      local t = S.test_stream(f, { mode = "update", out = function(r) return { r.user, r.n } end })
      t:add(ms, words("a", "a"))
      t:add(ms, words("a"))
      t:add(ms, words("a"))
      t:check_answer({ "a", 0 }, { "a", 2 }, { "a", 3 })
    end)

    it("gives several keys as a table of column = value, and the rows in input order", function()
      local ms = tide.memory_stream("a string, b int, x int")
      local f = ms:frame():group_by("a", "b % 2 AS odd"):process(function(key, rows)
        local xs = {}
        for i, r in ipairs(rows) do xs[i] = r.x end
        return { { a = key.a, odd = key.odd, xs = table.concat(xs, ",") } }
      end, { schema = "a string, odd int, xs string" })
      local t = S.test_stream(f, { mode = "append", out = function(r) return { r.a, r.odd, r.xs } end })
      t:add(ms, { { a = "p", b = 1, x = 1 }, { a = "p", b = 2, x = 2 }, { a = "p", b = 3, x = 3 } })
      t:check_new_answer({ "p", 1, "1,3" }, { "p", 0, "2" })
    end)

    it("forgets values not set for the ttl (processing time)", function()
      local c = clock()
      local ms = tide.memory_stream(STREAM)
      local f = ms:frame():group_by("user"):process(function(user, rows, state)
        local n = (state:get() or 0) + #rows
        if user ~= "keep" or not state:exists() then state:set(n) end
        return { { user = user, n = n } }
      end, { schema = STREAM, ttl = "10 seconds" })
      local t = S.test_stream(f, { mode = "update", out = function(r) return { r.user, r.n } end, clock = c.fn })
      t:add(ms, words("a", "keep"))
      t:check_new_answer({ "a", 1 }, { "keep", 1 })
      c.now = c.now + 5000
      t:add(ms, words("a", "keep")) -- a set again at 6 s; keep read, not set (set at 1 s)
      t:check_new_answer({ "a", 2 }, { "keep", 2 })
      c.now = c.now + 6000 -- 12 s: keep's value (1 s) is past the ttl, a's (6 s) is not
      t:add(ms, words("a", "keep"))
      t:check_new_answer({ "a", 3 }, { "keep", 1 })
      t:state_rows(2, 5) -- written: a and keep, then a, then a and keep again
    end)

    it("drops late rows with event-time timeouts only, counting them", function()
      local ms = tide.memory_stream("user string, t int")
      local f = ms:frame():with_column("ts", "CAST(t * 1000 AS timestamp)"):with_watermark("ts", "5 seconds")
        :group_by("user"):process(function(user, rows)
          return { { user = user, n = #rows } }
        end, { schema = STREAM, timeout = "event_time" })
      local t = S.test_stream(f, { mode = "append", out = function(r) return { r.user, r.n } end })
      t:add(ms, { { user = "a", t = 20 } })
      t:check_new_answer({ "a", 1 })
      t:add(ms, { { user = "a", t = 15 }, { user = "a", t = 16 } }) -- watermark 15: 15 is late, 16 is not
      t:check_new_answer({ "a", 1 })
      t:state_rows(0, 0, 1)
    end)

    it("fails the batch naming the key when fn raises, and runs it again on the committed state", function()
      local ms = tide.memory_stream(STREAM)
      local fail = false
      local f = ms:frame():group_by("user"):process(function(user, rows, state)
        if fail then error("expected failure") end
        local n = (state:get() or 0) + #rows
        state:set(n)
        return { { user = user, n = n } }
      end, { schema = STREAM })
      local t = S.test_stream(f, { mode = "update", out = function(r) return { r.user, r.n } end })
      t:add(ms, words("a"))
      t:check_new_answer({ "a", 1 })
      fail = true
      ms:add(words("a"))
      local ok, err = pcall(t.process, t)
      assert.is_false(ok)
      assert.matches("batch 1: process: key a: .*expected failure", err)
      assert.matches("stack traceback", err)
      fail = false
      t:start()
      t:check_new_answer({ "a", 2 })
    end)

    it("fails the batch for a result that is not rows or does not fit the schema", function()
      for _, case in ipairs {
        { function() return 5 end, "process: key a: the function returned a number, expected an array of rows or nil" },
        { function() return { "x" } end, "process: key a: row 1 of the result is a string, expected a table" },
        { function() return { { user = "a", n = "many" } } end,
          "process: a result row does not fit the schema (user string, n int): row 1: field 'n': expected int" },
      } do
        local ms = tide.memory_stream(STREAM)
        local q = ms:frame():group_by("user"):process(case[1], { schema = STREAM })
          :write_stream("memory", { name = "bad_process", mode = "append" })
        ms:add(words("a"))
        local ok, err = pcall(q.process_all_available, q)
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
        q:stop()
      end
    end)

    it("refuses a key too long for the state store, naming it", function()
      local ms = tide.memory_stream(STREAM)
      local q = ms:frame():group_by("user"):process(function() end, { schema = STREAM })
        :write_stream("memory", { name = "long_key", mode = "append" })
      ms:add { { user = string.rep("x", 600), n = 1 } }
      local ok, err = pcall(q.process_all_available, q)
      assert.is_false(ok)
      assert.matches("process: the key x+ takes 605 bytes encoded; the state store takes at most 500", err)
      q:stop()
    end)

    it("refuses state handle misuse at once", function()
      local ms = tide.memory_stream(STREAM)
      local kept, errors = nil, {}
      local f = ms:frame():group_by("user"):process(function(_, _, state)
        kept = state
        errors[#errors + 1] = err_of(function() state:set(print) end)
        errors[#errors + 1] = err_of(function() state:set_timer(5000) end)
        errors[#errors + 1] = err_of(function() state:set_timeout("1 minute") end)
        return nil
      end, { schema = STREAM })
      local t = S.test_stream(f, { mode = "append" })
      t:add(ms, words("a"))
      t:check_new_answer()
      assert.same({
        "state:set: cannot store a function (values are nil, booleans, numbers, strings and tables of them)",
        'state:set_timer: needs process(fn, { timeout = "event_time" }) (this one\'s timeout is none)',
        'state:set_timeout: needs process(fn, { timeout = "processing" }) (this one\'s timeout is none)',
      }, errors)
      assert.equal("state:get: this handle's call has returned (a handle is good for its call only)",
        err_of(function() kept:get() end))
    end)

    it("refuses bad timeouts: not positive, before the watermark", function()
      local ms = tide.memory_stream("user string, t int")
      local errors = {}
      local f = ms:frame():with_column("ts", "CAST(t * 1000 AS timestamp)"):with_watermark("ts", "5 seconds")
        :group_by("user"):process(function(_, _, state)
          if state:watermark() > 0 then
            errors[#errors + 1] = err_of(function() state:set_timer(state:watermark() - 1) end)
            errors[#errors + 1] = err_of(function() state:set_timer("soon") end)
          end
        end, { schema = STREAM, timeout = "event_time" })
      local t = S.test_stream(f, { mode = "append" })
      t:add(ms, { { user = "a", t = 20 } })
      t:add(ms, { { user = "a", t = 21 } })
      t:check_new_answer()
      assert.same({ "state:set_timer: the time 1970-01-01T00:00:14.999Z is before the current watermark " ..
        "1970-01-01T00:00:15Z", "state:set_timer: expected a timestamp (integer ms or an ISO-8601 string), got soon" },
        errors)
      local ms2 = tide.memory_stream(STREAM)
      local got
      local f2 = ms2:frame():group_by("user"):process(function(_, _, state)
        got = err_of(function() state:set_timeout(0) end)
      end, { schema = STREAM, timeout = "processing" })
      local t2 = S.test_stream(f2, { mode = "append" })
      t2:add(ms2, words("a"))
      t2:check_new_answer()
      assert.equal("state:set_timeout: the duration must be > 0, got 0", got)
    end)

    it("refuses the plans Spark refuses", function()
      local ms = tide.memory_stream(STREAM)
      local function p(f, o) return f:group_by("user"):process(function() end, o or { schema = STREAM }) end
      local function start_err(f, mode)
        return err_of(function() f:write_stream("memory", { name = "refused", mode = mode }) end)
      end
      assert.equal("write_stream(memory): process with timeout = \"event_time\" needs a watermark: " ..
        "f:with_watermark(col, delay) before group_by (as in Spark)",
        start_err(p(ms:frame(), { schema = STREAM, timeout = "event_time" }), "append"))
      assert.matches("complete output mode not supported with process", start_err(p(ms:frame()), "complete"))
      assert.matches("^write_stream%(memory%): Aggregate %[user%] %[count%(%*%) AS count%] after Process %[user%] " ..
        ".* is not supported: one of them per query", start_err(p(ms:frame()):group_by("user"):count(), "update"))
      assert.matches("^write_stream%(memory%): Process %[user%] .* after Aggregate .* is not supported",
        start_err(p(ms:frame():group_by("user"):agg { n = "count(*)" }:with_column("n", "CAST(n AS int)"),
          { schema = STREAM }), "update"))
    end)
  end)

  it("runs once per key on a static frame, from no state", function()
    local f = tide.from_rows(words("a", "b", "a"), STREAM):group_by("user"):process(function(user, rows, state)
      assert(not state:exists())
      state:set(#rows)
      return { { user = user, n = #rows } }
    end, { schema = STREAM })
    assert.same({ { user = "a", n = 2 }, { user = "b", n = 1 } }, f:collect())
    assert.matches("^Process %[user%] <Lua function> => user string, n int %(timeout none%)", f:explain())
  end)

  it("refuses bad arguments, naming them", function()
    local f = tide.from_rows(words("a"), STREAM)
    local g = f:group_by("user")
    local fn = function() end
    assert.equal("process: bad argument #1: expected a function(key, rows, state), got nil",
      err_of(function() g:process(nil, { schema = STREAM }) end))
    assert.equal("process: option 'schema' is required (the schema of the rows fn returns)",
      err_of(function() g:process(fn) end))
    assert.matches("^process: bad schema: ", err_of(function() g:process(fn, { schema = "x nope" }) end))
    assert.equal("process: option 'timeout' must be one of none, processing, event_time, got 'soon'",
      err_of(function() g:process(fn, { schema = STREAM, timeout = "soon" }) end))
    assert.matches("^process: unknown option 'mode'",
      err_of(function() g:process(fn, { schema = STREAM, mode = "x" }) end))
    assert.equal("process: option 'ttl' must be > 0",
      err_of(function() g:process(fn, { schema = STREAM, ttl = 0 }) end))
    assert.equal("process: needs at least one key: f:group_by(col, ...):process(fn, opts)",
      err_of(function() f:group_by():process(fn, { schema = STREAM }) end))
    local w = tide.from_rows({ { ts = 1 } }, "ts timestamp")
    assert.equal("process: group by columns or expressions, not a window (keep event time in the state instead)",
      err_of(function() w:group_by(tide.window("ts", "1 minute")):process(fn, { schema = STREAM }) end))
    assert.equal("process: bad self: expected a grouped frame (f:group_by(...):process(fn, opts))",
      err_of(function() g.process(5, fn, {}) end))
    local ok, err = pcall(function() local _ = g:process(fn) end)
    assert.is_false(ok)
    assert.matches("^spec/process_spec.lua:%d+: process: option 'schema' is required", err)
  end)

  it("refuses a clock that does not give integer ms", function()
    local ms = tide.memory_stream(STREAM)
    local q = ms:frame():write_stream("memory", { name = "clocked", clock = function() return 1.5 end })
    ms:add(words("a"))
    local ok, err = pcall(q.process_all_available, q)
    assert.is_false(ok)
    assert.matches("option 'clock' returned 1.5, not integer ms", err, 1, true)
    q:stop()
  end)
end)
