-- Specs for the rate source (connectors/rate.lua), driven through the
-- connector protocol (connectors/README.md).

local core = require "tide.core"
local runtime = require "tide.runtime"
local util = require "tide.util"

local d = runtime.connector("source", "rate")

local function opts(o) return util.check_options(o, d.options, "read_stream(rate)") end

local function rows(batches)
  local out = {}
  for _, b in ipairs(batches) do
    for _, r in ipairs(b:rows()) do out[#out + 1] = { r.timestamp, r.value } end
    b:close()
  end
  return out
end

describe("the rate source", function()
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

  it("has Spark's schema and checks its options", function()
    assert.equal("timestamp timestamp, value int", d.schema(opts {}))
    assert.equal("RateSource[rowsPerSecond=1]", d.label(opts {}))
    assert.equal("RateSource[rowsPerSecond=50]", d.label(opts { rows_per_second = 50 }))
    assert.has_error(function() opts { rows_per_second = 0 } end,
      "read_stream(rate): option 'rows_per_second' must be >= 1, got 0")
    assert.has_error(function() opts { rows_per_second = 1.5 } end,
      "read_stream(rate): option 'rows_per_second' must be an integer, got number 1.5")
    assert.has_error(function() opts { rate = 1 } end,
      "read_stream(rate): unknown option 'rate' (allowed: num_rows, rows_per_second)")
    assert.has_error(function() opts { num_rows = -1 } end,
      "read_stream(rate): option 'num_rows' must be >= 0, got -1")
  end)

  it("makes row i with value i and timestamp start + i * 1000 // rows_per_second", function()
    src = d.new(opts { rows_per_second = 3 }, ctx)
    assert.is_true(src.replayable)
    assert.equal("RateSource[rowsPerSecond=3]", src.description)
    local got = rows(src:get_batch(nil, { start = 1000, rows = 5 }))
    assert.same({ { 1000, 0 }, { 1333, 1 }, { 1666, 2 }, { 2000, 3 }, { 2333, 4 } }, got)
    local three, five = { start = 1000, rows = 3 }, { start = 1000, rows = 5 }
    assert.same({ { 2000, 3 }, { 2333, 4 } }, rows(src:get_batch(three, five)))
    assert.same({}, rows(src:get_batch({ start = 1000, rows = 5 }, { start = 1000, rows = 5 })))
  end)

  it("gives the same rows for the same offsets in a new instance (replay after a restart)", function()
    local a = d.new(opts { rows_per_second = 1000 }, ctx)
    local b = d.new(opts { rows_per_second = 1000 }, ctx)
    local first, stop = { start = 1795000000000, rows = 10 }, { start = 1795000000000, rows = 2500 }
    assert.same(rows(a:get_batch(first, stop)), rows(b:get_batch(first, stop)))
    a:stop()
    b:stop()
  end)

  it("offers the rows available since its start, capped by num_rows", function()
    src = d.new(opts { rows_per_second = 1000, num_rows = 5 }, ctx)
    local t0 = core.time_now()
    local off
    repeat off = src:latest_offset() until (off and off.rows == 5) or core.time_now() - t0 > 10000
    assert.equal(5, off.rows)
    assert.is_true(off.start <= core.time_now() and off.start >= t0 - 1000)
    local got = rows(src:get_batch(nil, off))
    assert.equal(5, #got)
    for i, r in ipairs(got) do
      assert.equal(i - 1, r[2])
      assert.equal(off.start + (i - 1), r[1])
    end
    assert.same(off, src:latest_offset())   -- no more after num_rows
  end)

  it("offers nothing before its first row", function()
    src = d.new(opts { rows_per_second = 1 }, ctx)
    assert.is_nil(src:latest_offset())
  end)

  it("continues the sequence of a previous run from the offsets it is handed", function()
    src = d.new(opts { rows_per_second = 1000 }, ctx)
    local prev = { start = core.time_now() - 60000, rows = 7 }   -- a run that started a minute ago
    local off = src:latest_offset(prev)
    assert.equal(prev.start, off.start)
    assert.is_true(off.rows >= 60000)
    local got = rows(src:get_batch(prev, { start = prev.start, rows = 9 }))
    assert.same({ { prev.start + 7, 7 }, { prev.start + 8, 8 } }, got)
  end)

  it("takes its start back from a commit after a restart", function()
    src = d.new(opts { rows_per_second = 10 }, ctx)
    local start = core.time_now() - 5000
    src:commit({ start = start, rows = 3 })
    local off = src:latest_offset({ start = start, rows = 3 })
    assert.equal(start, off.start)
    assert.is_true(off.rows >= 50)
  end)

  it("never goes back, even if the clock does", function()
    src = d.new(opts { rows_per_second = 10 }, ctx)
    local future = { start = core.time_now() + 3600000, rows = 42 }   -- as if the clock went back an hour
    src:commit(future)
    local off = src:latest_offset(future)
    assert.same({ start = future.start, rows = 42 }, off)
  end)

  it("makes rows up to the end of the valid timestamp range and refuses those past it", function()
    src = d.new(opts {}, ctx)
    local start = util.TS_MAX - 1000
    assert.same({ { start, 0 }, { util.TS_MAX, 1 } }, rows(src:get_batch(nil, { start = start, rows = 2 })))
    assert.has_error(function() src:get_batch(nil, { start = start, rows = 3 }) end,
      "rate source: rows 0..2 from start " .. start .. " at 1 a second: timestamps outside the valid range " ..
      "0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z")
  end)

  it("says its lag: the rows due by now after an offset, capped by num_rows", function()
    src = d.new(opts { rows_per_second = 1000 }, ctx)
    -- a run that started 10 s ago: at least 10000 rows are due
    local start = core.time_now() - 10000
    src:commit({ start = start, rows = 4000 })
    local lag = src:lag({ start = start, rows = 4000 }).records
    assert.is_true(lag >= 6000, tostring(lag))
    assert.is_true(lag <= 6000 + (core.time_now() - start - 10000), tostring(lag)) -- no more than were due
    local capped = d.new(opts { rows_per_second = 1000, num_rows = 5000 }, ctx)
    capped:commit({ start = start, rows = 4000 })
    assert.same({ records = 1000 }, capped:lag({ start = start, rows = 4000 }))
    assert.same({ records = 0 }, capped:lag({ start = start, rows = 5000 }))
    capped:stop()
  end)

  it("rejects an offset that is not its own", function()
    src = d.new(opts {}, ctx)
    assert.has_error(function() src:get_batch(nil, 12) end,
      "rate source: bad offset (expected { start = ms, rows = n })")
    assert.has_error(function() src:commit({ rows = 1 }) end,
      "rate source: bad offset (expected { start = ms, rows = n })")
  end)

  it("wakes the watcher as rows become available, and stops after num_rows", function()
    src = d.new(opts { rows_per_second = 200, num_rows = 3 }, ctx)
    local woke = 0
    src:watch(function()
      woke = woke + 1
      src:latest_offset()
    end)
    local guard = loop:timer(10000, function() end)
    while loop:run("once") and not guard:is_closed() do
      if woke > 0 and (src:latest_offset() or {}).rows == 3 then break end
    end
    assert.is_true(woke > 0)
    assert.equal(3, src:latest_offset().rows)
    -- the watch timer closes itself once num_rows are out (bounded: 1000 ticks of 10 ms)
    guard:close()
    local n = 0
    while loop:run("once") and n < 1000 do n = n + 1 end
    assert.is_false(loop:alive())
  end)

  it("feeds a streaming query that prints to the console sink", function()
    local tide = require "tide"
    local printed = {}
    local q = tide.read_stream("rate", { rows_per_second = 1000, num_rows = 5 })
      :write_stream("console", { trigger = 0, out = function(t) printed[#printed + 1] = t end })
    local t0 = core.time_now()
    while core.time_now() - t0 < 20 do end   -- the 5 rows are due after 5 ms
    q:process_all_available()
    q:stop()
    assert.is_nil(q:exception())
    local text = table.concat(printed)
    assert.matches("^%-+\nBatch: 0\n%-+\n", text)
    local values = {}
    for v in text:gmatch("|%s*(%d+)|\n") do values[#values + 1] = tonumber(v) end
    assert.same({ 0, 1, 2, 3, 4 }, values)
  end)

  it("says when num_rows are out", function()
    src = d.new(opts { rows_per_second = 10, num_rows = 4 }, ctx)
    assert.is_false(src:exhausted(nil))
    assert.is_false(src:exhausted({ start = 1, rows = 3 }))
    assert.is_true(src:exhausted({ start = 1, rows = 4 }))
    src:stop()
    src = d.new(opts { num_rows = 0 }, ctx)
    assert.is_true(src:exhausted(nil))
    src:stop()
    src = d.new(opts { rows_per_second = 10 }, ctx)
    assert.is_false(src:exhausted({ start = 1, rows = 1000000 }))
  end)

  describe("with num_rows, a query", function()
    local tide = require "tide"
    local memory = require "tide.connectors.memory"
    after_each(function() memory.drop_table("rate_rows") end)

    local function values()
      local out = {}
      for _, r in ipairs(tide.table("rate_rows"):collect()) do out[#out + 1] = r.value end
      table.sort(out)
      return out
    end

    local function upto(n)
      local out = {}
      for i = 0, n - 1 do out[#out + 1] = i end
      return out
    end

    it("outputs all num_rows rows in one batch and ends under trigger available_now", function()
      local batches = 0
      local q = tide.read_stream("rate", { rows_per_second = 1, num_rows = 7 })
        :write_stream("memory", { name = "rate_rows", trigger = "available_now" })
      local stop_progress = require("tide.query").on_progress(function(p) if p == q then batches = batches + 1 end end)
      assert.is_true(q:await("60 s"))
      stop_progress()
      assert.is_false(q:is_active())
      assert.is_nil(q:exception())
      assert.same(upto(7), values())
      assert.equal(1, batches)
    end)

    it("ends after num_rows rows under the default trigger", function()
      local q = tide.read_stream("rate", { rows_per_second = 500, num_rows = 40 })
        :write_stream("memory", { name = "rate_rows" })
      assert.is_true(q:await("60 s"))
      assert.is_false(q:is_active())
      assert.is_nil(q:exception())
      assert.equal("Finished", q:status().message)
      assert.same(upto(40), values())
    end)

    it("ends at once with num_rows = 0, having output nothing", function()
      local q = tide.read_stream("rate", { num_rows = 0 }):write_stream("memory", { name = "rate_rows" })
      assert.is_true(q:await("60 s"))
      assert.is_false(q:is_active())
    end)
  end)
end)
