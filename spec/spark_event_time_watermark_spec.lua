-- Spark's EventTimeWatermarkSuite
-- (sql/core/src/test/scala/org/apache/spark/sql/streaming/EventTimeWatermarkSuite.scala),
-- ported scenario by scenario: same inputs, same expected outputs, watermarks
-- and state-row counts. Spark's MemoryStream[Int] is a memory stream of
-- "value int"; `withColumn("eventTime", timestamp_seconds($"value"))` is
-- S.event_time (value * 1000 ms); window starts come back in seconds.
--
-- Not ported (no tide meaning): "EventTimeStats*" (unit tests of Spark's
-- internal accumulator class), "recovery from Spark ver 2.3.1 commit log ..."
-- and "MultipleWatermarkPolicy: recovery from Spark ver 2.3.1 checkpoints ..."
-- (they need checkpoints written by Spark 2.3.1), "delay in months and years
-- handled correctly" and "SPARK-35815: Support ANSI intervals ..." (Spark's
-- interval literals; tide's durations are API.md s.1, without months or
-- years), "overriding watermark should not fail in compatibility mode" and
-- "stateful operator should pick the first occurrence ... in compatibility
-- mode" (Spark's statefulOperator.allowMultiple=false legacy mode), "multiple
-- event time columns in an input DataFrame for stateful operator is not
-- allowed" (needs a stream-stream join, which tide does not have).
-- The session-window scenarios of older versions of this suite belong to
-- spec/session_*_spec.lua.
local tide = require "tide"
local S = require "spec.spark_support"

local function windowed_count(ms, delay)
  local f = S.event_time(ms:frame())
  if delay then f = f:with_watermark("eventTime", delay) end
  return f:group_by(tide.window("eventTime", "5 seconds")):count()
end

describe("Spark EventTimeWatermarkSuite", function()
  after_each(S.cleanup)

  -- EventTimeWatermarkSuite: test("error on bad column")
  it("error on bad column", function()
    local f = tide.memory_stream("value int"):frame()
    local ok, err = pcall(f.with_watermark, f, "badColumn", "1 minute")
    assert.is_false(ok)
    assert.matches("badColumn", err)
  end)

  -- EventTimeWatermarkSuite: test("error on wrong type")
  it("error on wrong type", function()
    local f = tide.memory_stream("value int"):frame()
    local ok, err = pcall(f.with_watermark, f, "value", "1 minute")
    assert.is_false(ok)
    assert.matches("value", err)
    assert.matches("int", err)
  end)

  -- EventTimeWatermarkSuite: test("event time and watermark metrics")
  it("event time and watermark metrics", function()
    -- No event time metrics when there is no watermarking
    local in1 = tide.memory_stream("value int")
    local t = S.test_stream(windowed_count(in1, nil), { mode = "complete", out = S.window_count })
    t:add(in1, S.ints(15))
    t:check_answer({ 15, 1 })
    t:event_stats()
    t:add(in1, S.ints(10, 12, 14))
    t:check_answer({ 10, 3 }, { 15, 1 })
    t:event_stats()
    t:stop()

    -- All event time metrics where watermarking is set
    local in2 = tide.memory_stream("value int")
    t = S.test_stream(windowed_count(in2, "10 seconds"), { out = S.window_count })
    t:add(in2, S.ints(15))
    t:check_answer()
    t:event_stats(15, 15, 15, 0)
    t:add(in2, S.ints(10, 12, 14))
    t:check_answer()
    t:event_stats(10, 14, 12, 5)
    t:add(in2, S.ints(25))
    t:check_answer({ 10, 3 })
    t:event_stats(25, 25, 25, 5)
  end)

  -- EventTimeWatermarkSuite: test("event time and watermark metrics with Trigger.Once (SPARK-24699)")
  it("event time and watermark metrics with Trigger.Once (SPARK-24699)", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(windowed_count(ms, "10 seconds"), { out = S.window_count, start = false })
    -- Trigger.Once runs one batch per start and no no-data batch, so the
    -- output released by a watermark appears one start later.
    t:start { trigger = "once" }
    t:await()

    t:add_only(ms, S.ints(15))
    t:start { trigger = "once" }
    t:await()
    t:check_new_answer()
    t:event_stats(15, 15, 15, 0)
    -- watermark should be updated to 15 - 10 = 5

    t:add_only(ms, S.ints(10, 12, 14))
    t:start { trigger = "once" }
    t:await()
    t:check_new_answer()
    t:event_stats(10, 14, 12, 5)
    -- watermark should stay at 5

    t:add_only(ms, S.ints(25))
    t:start { trigger = "once" }
    t:await()
    t:check_new_answer()
    t:event_stats(25, 25, 25, 5)
    -- watermark should be updated to 25 - 10 = 15

    t:add_only(ms, S.ints(50))
    t:start { trigger = "once" }
    t:await()
    t:check_new_answer({ 10, 3 }) -- watermark = 15 is used to generate this
    t:event_stats(50, 50, 50, 15)
    -- watermark should be updated to 50 - 10 = 40

    t:add_only(ms, S.ints(50))
    t:start { trigger = "once" }
    t:await()
    t:check_new_answer({ 15, 1 }, { 25, 1 }) -- watermark = 40 is used to generate this
    t:event_stats(50, 50, 50, 40)
  end)

  -- EventTimeWatermarkSuite: test("append mode")
  it("append mode", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(windowed_count(ms, "10 seconds"), { out = S.window_count })
    t:add(ms, S.ints(10, 11, 12, 13, 14, 15))
    t:check_new_answer()
    t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
    t:check_new_answer({ 10, 5 })
    t:num_state_rows(2)
    t:dropped_by_watermark(0)
    t:add(ms, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:num_state_rows(2)
    t:dropped_by_watermark(1)
  end)

  -- EventTimeWatermarkSuite: test("update mode")
  it("update mode", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(windowed_count(ms, "10 seconds"), { mode = "update", out = S.window_count })
    t:add(ms, S.ints(10, 11, 12, 13, 14, 15))
    t:check_new_answer({ 10, 5 }, { 15, 1 })
    t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
    t:check_new_answer({ 25, 1 })
    t:num_state_rows(2)
    t:dropped_by_watermark(0)
    t:add(ms, S.ints(10, 25)) -- Ignore 10 as its less than watermark
    t:check_new_answer({ 25, 2 })
    t:num_state_rows(2)
    t:dropped_by_watermark(1)
    t:add(ms, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:num_state_rows(2)
    t:dropped_by_watermark(1)
  end)

  -- EventTimeWatermarkSuite: test("recovery")
  it("recovery", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(windowed_count(ms, "10 seconds"), { out = S.window_count })
    t:add(ms, S.ints(10, 11, 12, 13, 14, 15))
    t:check_answer()
    t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
    t:check_answer({ 10, 5 })
    t:stop()
    -- Spark purges the commit log up to the latest commit and clears the
    -- sink. Its purge keeps the given batch (SEMANTICS.md s.8), so nothing is
    -- re-run: only the sink's clearing changes what follows.
    t:clear()
    t:start()
    t:add(ms, S.ints(10, 27, 30)) -- Advance watermark to 20 seconds, 10 should be ignored
    t:check_answer({ 15, 1 })
    t:stop()
    t:start()
    t:add(ms, S.ints(17)) -- Watermark should still be 20 seconds, 17 should be ignored
    t:check_answer({ 15, 1 })
    t:add(ms, S.ints(40)) -- Advance watermark to 30 seconds, emit first data 25
    t:check_new_answer({ 25, 2 })
  end)

  -- A global sum over two unioned streams (watermark delays 10 and 5
  -- seconds) in complete mode, and Spark's getWatermarkAfterData: add the
  -- rows, run, and return the watermark of a dummy batch run after them.
  local function two_streams(opts)
    local first, second = tide.memory_stream("value int"), tide.memory_stream("value int")
    local first_df = S.event_time(first:frame()):with_watermark("eventTime", "10 seconds"):select("value")
    local second_df = S.event_time(second:frame()):with_watermark("eventTime", "5 seconds"):select("value")
    local union = first_df:union(second_df):agg { s = "sum(value)" }
    opts.mode = "complete"
    local t = S.test_stream(union, opts)
    return t, function(first_data, second_data)
      if first_data then t:add_only(first, S.ints(table.unpack(first_data))) end
      if second_data then t:add_only(second, S.ints(table.unpack(second_data))) end
      t:process()
      -- add a dummy batch so the last batch ran with the new watermark
      t:add(first, S.ints(0))
      return t.q:last_progress().event_time.watermark
    end
  end

  -- EventTimeWatermarkSuite: test("watermark with 2 streams")
  it("watermark with 2 streams", function()
    local t, watermark_after_data = two_streams {}

    -- Global watermark starts at 0 until we get data from both sides
    assert.equal(0, watermark_after_data({ 11 }))
    assert.equal(1000, watermark_after_data(nil, { 6 }))
    -- Global watermark stays at left watermark 1 when right watermark moves to 2
    assert.equal(1000, watermark_after_data(nil, { 8 }))
    -- Global watermark switches to right side value 2 when left watermark goes higher
    assert.equal(3000, watermark_after_data({ 21 }))
    -- Global watermark goes back to left
    assert.equal(11000, watermark_after_data(nil, { 17, 28, 39 }))
    -- Global watermark stays on left as long as it's below right
    assert.equal(21000, watermark_after_data({ 31 }))
    assert.equal(31000, watermark_after_data({ 41 }))
    -- Global watermark switches back to right again
    assert.equal(34000, watermark_after_data({ 51 }))

    -- Global watermark is updated correctly with simultaneous data from both sides
    assert.equal(90000, watermark_after_data({ 100 }, { 100 }))
    assert.equal(105000, watermark_after_data({ 120 }, { 110 }))
    assert.equal(120000, watermark_after_data({ 130 }, { 125 }))

    -- Global watermark doesn't decrement with simultaneous data
    assert.equal(120000, watermark_after_data({ 100 }, { 100 }))
    assert.equal(120000, watermark_after_data({ 140 }, { 100 }))
    assert.equal(130000, watermark_after_data({ 100 }, { 135 }))

    -- Global watermark recovers after restart, but left side watermark ahead of it does not.
    assert.equal(185000, watermark_after_data({ 200 }, { 190 }))
    t:stop()
    t:start()
    assert.equal(185000, watermark_after_data())
    -- Even though the left side was ahead of 185000 in the last execution, the watermark won't
    -- increment until it gets past it in this execution.
    assert.equal(185000, watermark_after_data(nil, { 200 }))
    assert.equal(190000, watermark_after_data({ 200 }))
    -- the global sum saw every row, late or not: nothing is late to an aggregation without an event-time key
    t:check_last_batch({ s = 11 + 6 + 8 + 21 + 17 + 28 + 39 + 31 + 41 + 51 + 100 * 2 + 120 + 110 + 130 + 125 +
      100 + 100 + 140 + 100 + 100 + 135 + 200 + 190 + 200 + 200 })
  end)

  -- Not in Spark's suite: "watermark with 2 streams" under the max policy
  -- (multiple_watermark_policy = "max", Spark's
  -- spark.sql.streaming.multipleWatermarkPolicy), the global watermark being
  -- the larger of the two streams' (first: max - 10 s, second: max - 5 s).
  it("watermark with 2 streams, max policy", function()
    local t, watermark_after_data = two_streams { multiple_watermark_policy = "max" }

    assert.equal(1000, watermark_after_data({ 11 }))             -- one stream is enough: 11 - 10
    assert.equal(1000, watermark_after_data(nil, { 6 }))         -- 6 - 5 is not larger
    assert.equal(3000, watermark_after_data(nil, { 8 }))         -- 8 - 5
    assert.equal(11000, watermark_after_data({ 21 }))            -- 21 - 10
    assert.equal(34000, watermark_after_data(nil, { 17, 28, 39 })) -- 39 - 5
    assert.equal(34000, watermark_after_data({ 31 }))            -- 31 - 10 is not larger
    assert.equal(95000, watermark_after_data({ 100 }, { 100 }))  -- max(90, 95)
    t:stop()
    t:start { multiple_watermark_policy = "max" }
    assert.equal(95000, watermark_after_data({ 50 }))            -- never backward, also across a restart
    assert.equal(105000, watermark_after_data(nil, { 110 }))     -- 110 - 5
    t:check_last_batch({ s = 11 + 6 + 8 + 21 + 17 + 28 + 39 + 31 + 100 + 100 + 50 + 110 })
  end)

  -- EventTimeWatermarkSuite: test("complete mode")
  it("complete mode", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(windowed_count(ms, "10 seconds"), { mode = "complete", out = S.window_count })
    -- No eviction when asked to compute complete results.
    t:add(ms, S.ints(10, 11, 12))
    t:check_answer({ 10, 3 })
    t:add(ms, S.ints(25))
    t:check_answer({ 10, 3 }, { 25, 1 })
    t:add(ms, S.ints(25))
    t:check_answer({ 10, 3 }, { 25, 2 })
    t:add(ms, S.ints(10))
    t:check_answer({ 10, 4 }, { 25, 2 })
    t:add(ms, S.ints(25))
    t:check_answer({ 10, 4 }, { 25, 3 })
  end)

  -- EventTimeWatermarkSuite: test("group by on raw timestamp")
  it("group by on raw timestamp", function()
    local ms = tide.memory_stream("value int")
    local f = S.event_time(ms:frame()):with_watermark("eventTime", "10 seconds"):group_by("eventTime"):count()
    local t = S.test_stream(f, { out = function(r) return { r.eventTime // 1000, r.count } end })
    t:add(ms, S.ints(10))
    t:check_answer()
    t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
    t:check_answer({ 10, 1 })
  end)

  -- EventTimeWatermarkSuite: test("delay threshold should not be negative.")
  it("delay threshold should not be negative.", function()
    local f = S.event_time(tide.memory_stream("value int"):frame())
    for _, delay in ipairs { "-10 seconds", -10000 } do
      local ok, err = pcall(f.with_watermark, f, "eventTime", delay)
      assert.is_false(ok, tostring(delay))
      assert.matches("negative", err)
    end
  end)

  -- EventTimeWatermarkSuite: test("overriding watermark should not be allowed by default")
  it("overriding watermark should not be allowed by default", function()
    local ms = tide.memory_stream("_1 int, _2 int")
    local ok, err = pcall(function()
      local f = ms:frame()
        :with_column("first", "CAST(_1 * 1000 AS timestamp)")
        :with_column("second", "CAST(_2 * 1000 AS timestamp)")
        :with_watermark("first", "1 minute")
        :select("*")
        :with_watermark("second", "2 minutes")
        :group_by(tide.window("second", "1 minute")):count()
      local t = S.test_stream(f)
      t:add(ms, S.tuples({ 100, 200 }))
    end)
    assert.is_false(ok)
    assert.matches("watermark", err)
  end)

  -- EventTimeWatermarkSuite: test("EventTime watermark should be ignored in batch query.")
  it("EventTime watermark should be ignored in batch query.", function()
    local rows = {}
    for k = 1, 100 do rows[k] = { key = k, value = tostring(k) } end
    local got = tide.from_rows(rows, "key int, value string")
      :with_column("eventTime", "CAST(key * 1000 AS timestamp)")
      :with_watermark("eventTime", "1 minute")
      :select("eventTime")
      :collect()
    local secs = {}
    for i, r in ipairs(got) do secs[i] = r.eventTime // 1000 end
    table.sort(secs)
    local want = {}
    for k = 1, 100 do want[k] = k end
    assert.same(want, secs)
  end)

  -- EventTimeWatermarkSuite: test("SPARK-21565: watermark operator accepts attributes from replacement")
  it("SPARK-21565: watermark operator accepts attributes from replacement", function()
    -- Spark reads the rows back from JSON files; a memory stream of the same
    -- schema stands in for the file source.
    local ms = tide.memory_stream("symbol string, price double, eventTime timestamp")
    ms:add { { symbol = "a", price = 100.0, eventTime = 100 } }
    local f = ms:frame():with_watermark("eventTime", "2 seconds")
      :group_by("symbol", "eventTime"):agg { "count(price) AS count" }
      :select("symbol", "eventTime", "count")
    local q = f:write_stream("memory", { name = "spark21565", mode = "append" })
    q:process_all_available()
    q:stop()
    assert.is_nil(q:exception())
  end)

  -- EventTimeWatermarkSuite: test("SPARK-27340 Alias on TimeWindow expression cause watermark metadata lost")
  it("SPARK-27340 Alias on TimeWindow expression cause watermark metadata lost", function()
    local ms = tide.memory_stream("value int")
    local alias_window = S.event_time(ms:frame())
      :with_watermark("eventTime", "10 seconds")
      :select(tide.window("eventTime", "5 seconds"))
    local f = alias_window:group_by("window_start", "window_end"):count()
    local t = S.test_stream(f, { out = S.window_count })
    t:add(ms, S.ints(10, 11, 12, 13, 14, 15))
    t:check_new_answer()
    t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
    t:check_new_answer({ 10, 5 })
    t:num_state_rows(2)
    t:add(ms, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:num_state_rows(2)
  end)

  -- EventTimeWatermarkSuite: test("test no-data flag")
  for _, flag in ipairs { true, false } do
    it("test no-data flag (no_data_batches = " .. tostring(flag) .. ")", function()
      local ms = tide.memory_stream("value int")
      local t = S.test_stream(windowed_count(ms, "10 seconds"), { out = S.window_count, no_data_batches = flag })
      t:add(ms, S.ints(10, 11, 12, 13, 14, 15))
      t:check_new_answer()
      t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
      -- Check if there is new answer if flag is set, no new answer otherwise
      if flag then t:check_new_answer({ 10, 5 }) else t:check_new_answer() end
    end)
  end

  -- dfWithMultipleWatermarks: two streams, watermarks of 10 and 15 seconds,
  -- union, select($"eventTime".cast("int")).
  local function multiple_watermarks(in1, in2)
    local df1 = S.event_time(in1:frame()):with_watermark("eventTime", "10 seconds")
    local df2 = S.event_time(in2:frame()):with_watermark("eventTime", "15 seconds")
    return df1:union(df2):select("eventTime")
  end

  -- EventTimeWatermarkSuite: test("MultipleWatermarkPolicy: max")
  it("MultipleWatermarkPolicy: max", function()
    local in1, in2 = tide.memory_stream("value int"), tide.memory_stream("value int")
    local t = S.test_stream(multiple_watermarks(in1, in2),
      { out = S.event_secs, multiple_watermark_policy = "max" })
    t:multi_add({ in1, S.ints(20) }, { in2, S.ints(30) })
    t:check_last_batch({ 20 }, { 30 })
    t:check_watermark(in1, 15) -- max(20 - 10, 30 - 15) = 15
    t:stop()
    t:start { multiple_watermark_policy = "max" }
    t:check_watermark(in1, 15) -- watermark recovered correctly
    t:multi_add({ in1, S.ints(120) }, { in2, S.ints(130) })
    t:check_last_batch({ 120 }, { 130 })
    t:check_watermark(in1, 115) -- max(120 - 10, 130 - 15) = 115, policy recovered correctly
    t:add(in1, S.ints(150))
    t:check_last_batch({ 150 })
    t:check_watermark(in1, 140) -- should advance even if one of the input has data
  end)

  -- EventTimeWatermarkSuite: test("MultipleWatermarkPolicy: min")
  it("MultipleWatermarkPolicy: min", function()
    local in1, in2 = tide.memory_stream("value int"), tide.memory_stream("value int")
    local t = S.test_stream(multiple_watermarks(in1, in2),
      { out = S.event_secs, multiple_watermark_policy = "min" })
    t:multi_add({ in1, S.ints(20) }, { in2, S.ints(30) })
    t:check_last_batch({ 20 }, { 30 })
    t:check_watermark(in1, 10) -- min(20 - 10, 30 - 15) = 10
    t:stop()
    t:start { multiple_watermark_policy = "min" }
    t:check_watermark(in1, 10) -- watermark recovered correctly
    t:multi_add({ in1, S.ints(120) }, { in2, S.ints(130) })
    t:check_last_batch({ 120 }, { 130 })
    t:check_watermark(in2, 110) -- min(120 - 10, 130 - 15) = 110, policy recovered correctly
    t:add(in2, S.ints(150))
    t:check_last_batch({ 150 })
    t:check_watermark(in2, 110) -- does not advance when only one of the input has data
  end)

  -- EventTimeWatermarkSuite: test("MultipleWatermarkPolicy: recovery from checkpoints ignores session conf")
  it("MultipleWatermarkPolicy: recovery from checkpoints ignores session conf", function()
    local in1, in2 = tide.memory_stream("value int"), tide.memory_stream("value int")
    local t = S.test_stream(multiple_watermarks(in1, in2),
      { out = S.event_secs, multiple_watermark_policy = "max" })
    t:multi_add({ in1, S.ints(20) }, { in2, S.ints(30) })
    t:check_last_batch({ 20 }, { 30 })
    t:check_watermark(in1, 15) -- max(20 - 10, 30 - 15) = 15
    t:stop()

    t:start { multiple_watermark_policy = "min" }
    t:check_watermark(in1, 15) -- watermark recovered correctly
    t:multi_add({ in1, S.ints(120) }, { in2, S.ints(130) })
    t:check_last_batch({ 120 }, { 130 })
    t:check_watermark(in1, 115) -- max(120 - 10, 130 - 15) = 115, policy recovered correctly
    t:add(in1, S.ints(150))
    t:check_last_batch({ 150 })
    t:check_watermark(in1, 140) -- should advance even if one of the input has data
  end)

  -- EventTimeWatermarkSuite: test("MultipleWatermarkPolicy: fail on incorrect conf values")
  it("MultipleWatermarkPolicy: fail on incorrect conf values", function()
    local in1, in2 = tide.memory_stream("value int"), tide.memory_stream("value int")
    local f = multiple_watermarks(in1, in2)
    for _, value in ipairs { "", "random" } do
      local ok, err = pcall(f.write_stream, f, "memory", { name = "policy", multiple_watermark_policy = value })
      assert.is_false(ok)
      assert.matches("min", err)
      assert.matches("max", err)
    end
  end)
end)
