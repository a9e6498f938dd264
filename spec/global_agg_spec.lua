-- Global aggregation (issue 19): `f:agg{...}` and `f:group_by():agg{...}`
-- with no key, on static frames and streams, as Spark's `df.agg(...)` and
-- `groupBy().agg(...)`: one row over all the rows, also over none (count 0,
-- the other aggregates NULL: Spark's aggregation without grouping keys
-- always yields its row, StreamingAggregationSuite "SPARK-21977" says so of
-- streams too); complete and update modes (the row every batch), append
-- refused as Spark's UnsupportedOperationChecker refuses it; a window key as
-- the only key is an ordinary keyed aggregation and runs in append mode.
local tide = require "tide"
local S = require "spec.spark_support"

local function nums(...)
  local rows = {}
  for i, v in ipairs { ... } do rows[i] = { x = v, d = v * 0.5 } end
  return tide.from_rows(rows, "x int, d double")
end

describe("global aggregation", function()
  after_each(S.cleanup)

  describe("on a static frame", function()
    it("gives one row over all the rows", function()
      local got = nums(1, 2, 3, 4):agg { n = "count(*)", s = "sum(x)", a = "avg(x)", lo = "min(d)", hi = "max(d)" }
      assert.same({ { n = 4, s = 10, a = 2.5, lo = 0.5, hi = 2.0 } }, got:collect())
      assert.same({ { "a", "double?" }, { "hi", "double?" }, { "lo", "double?" }, { "n", "int" }, { "s", "int?" } },
        got:schema())
    end)

    it("is the same as group_by() with no key, and count() counts", function()
      local f = nums(5, 6, 7)
      assert.same(f:agg { "sum(x) AS s", "count_distinct(x) AS k" }:collect(),
        f:group_by():agg { "sum(x) AS s", "count_distinct(x) AS k" }:collect())
      assert.same({ { count = 3 } }, f:group_by():count():collect())
    end)

    it("gives count 0 and NULL for the other aggregates over no rows, as Spark", function()
      local got = nums(1, 2):where("x > 10"):agg {
        n = "count(*)", c = "count(x)", k = "count_distinct(x)", s = "sum(x)", a = "avg(x)", lo = "min(x)",
        f = "first(x)", l = "last(x)",
      }:collect()
      assert.same({ { n = 0, c = 0, k = 0 } }, got)
      assert.same({ { count = 0 } }, tide.from_rows({}, "x int"):group_by():count():collect())
    end)

    it("gives the same result whatever the input's batches", function()
      local rows = {}
      for i = 1, 100 do rows[i] = { x = i } end
      for _, per in ipairs { 1, 7, 100 } do
        local f = tide.from_rows(rows, "x int", { batch_rows = per })
        assert.same({ { s = 5050, n = 100, l = 100 } }, f:agg { s = "sum(x)", n = "count(*)", l = "last(x)" }:collect())
      end
    end)

    it("can be sorted, limited and shown like any frame", function()
      local f = nums(1, 2):agg { s = "sum(x)" }
      assert.same({ { s = 3 } }, f:order_by("s DESC"):limit(5):collect())
      assert.equal("Aggregate [] [sum(x) AS s]  => s int?\n  +- Rows (2)  => x int, d double", f:explain())
    end)

    it("raises at definition time for bad aggregates, naming them", function()
      local f = nums(1)
      assert.has_error(function() f:agg {} end,
        "agg: expected at least one aggregate (count, sum, min, max, avg, first, last, count_distinct)")
      assert.has_error(function() f:agg "count(*)" end, "agg: expected a table of aggregate expressions, got string")
      assert.has_error(function() f:agg { "x + 1" } end,
        "agg: (x + 1) is not an aggregate (use count, sum, min, max, avg, first, last, count_distinct)")
      assert.has_error(function() f:agg { "sum(zz)" } end, "agg: unknown column 'zz' (columns: x, d)")
      assert.has_error(function() f.agg(5, {}) end, "agg: bad self: expected a frame (use f:agg(...), not f.agg(...))")
      local ok, err = pcall(function() f:agg { "sum(x) + 1" } end)
      assert.is_false(ok)
      assert.matches("^spec/global_agg_spec.lua:%d+: agg: aggregate function 'sum' is not allowed here$", err)
    end)
  end)

  describe("on a stream", function()
    it("outputs the one row every batch in complete mode, keeping it across a restart", function()
      local ms = tide.memory_stream("x int")
      local t = S.test_stream(ms:frame():agg { n = "count(*)", s = "sum(x)" },
        { mode = "complete", out = function(r) return { r.n, r.s } end })
      t:add(ms, { { x = 1 }, { x = 2 } })
      t:check_last_batch({ 2, 3 })
      t:state_rows(1, 1)
      t:stop()
      t:start()
      t:add(ms, { { x = 10 } })
      t:check_last_batch({ 3, 13 })
      t:state_rows(1, 1)
    end)

    it("outputs count 0 and NULL sums for a batch whose rows are all filtered out, as Spark", function()
      local ms = tide.memory_stream("x int")
      local f = ms:frame():where("x > 100"):agg { n = "count(*)", s = "sum(x)" }
      local t = S.test_stream(f, { mode = "complete",
        out = function(r) return { r.n, r.s == nil and "null" or r.s } end })
      t:add(ms, { { x = 1 } })
      t:check_last_batch({ 0, "null" })
      t:state_rows(0, 0)
      t:add(ms, { { x = 101 }, { x = 1 } })
      t:check_last_batch({ 1, 101 })
    end)

    it("outputs the row every batch in update mode, also when the batch changed nothing", function()
      local ms = tide.memory_stream("x int")
      local f = ms:frame():where("x > 0"):group_by():count()
      local t = S.test_stream(f, { mode = "update", out = function(r) return { r.count } end })
      t:add(ms, { { x = 1 }, { x = 2 } })
      t:check_last_batch({ 2 })
      t:add(ms, { { x = -1 } })
      t:check_last_batch({ 2 })
      t:stop()
      t:start()
      t:add(ms, { { x = 3 } })
      t:check_last_batch({ 3 })
      t:check_answer({ 2 }, { 2 }, { 3 })
    end)

    it("drops no row as late: a global aggregation has no event-time key", function()
      local ms = tide.memory_stream("value int")
      local f = S.event_time(ms:frame()):with_watermark("eventTime", "5 seconds"):agg { s = "sum(value)" }
      local t = S.test_stream(f, { mode = "update", out = function(r) return { r.s } end })
      t:add(ms, S.ints(20))
      t:add(ms, S.ints(1)) -- far behind the watermark (15): still summed
      t:check_last_batch({ 21 })
      t:state_rows(1, 2, 0)
    end)

    it("refuses append mode with Spark's reason", function()
      local ms = tide.memory_stream("value int")
      local f = S.event_time(ms:frame()):with_watermark("eventTime", "5 seconds"):agg { n = "count(*)" }
      local ok, err = pcall(f.write_stream, f, "memory", { name = "g", mode = "append" })
      assert.is_false(ok)
      assert.matches("append output mode not supported for a streaming global aggregation %(no grouping key%) " ..
        "%(as in Spark%)", err)
      assert.matches('use mode = "update" or "complete"', err, 1, true)
      -- the default mode is append: refused the same way
      assert.has_error(function() ms:frame():agg { n = "count(*)" }:write_stream("memory", { name = "g2" }) end)
    end)

    it("runs in append mode with a window key as the only key", function()
      local ms = tide.memory_stream("value int")
      local f = S.event_time(ms:frame()):with_watermark("eventTime", "10 seconds")
        :group_by(tide.window("eventTime", "5 seconds")):agg { s = "sum(value)" }
      local t = S.test_stream(f, { mode = "append", out = function(r) return { r.window_start // 1000, r.s } end })
      t:add(ms, S.ints(10, 11, 12))
      t:check_new_answer()
      t:add(ms, S.ints(25))
      t:check_new_answer({ 10, 33 })
    end)

    it("is refused after another streaming aggregation, as any second aggregation", function()
      local ms = tide.memory_stream("value int")
      local f = ms:frame():group_by("value"):count():agg { n = "count(*)" }
      local ok, err = pcall(f.write_stream, f, "memory", { name = "g3", mode = "complete" })
      assert.is_false(ok)
      assert.matches("multiple streaming aggregations in one query are not supported", err, 1, true)
    end)
  end)
end)
