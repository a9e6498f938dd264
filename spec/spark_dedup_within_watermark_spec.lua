-- Spark's StreamingDeduplicationWithinWatermarkSuite
-- (sql/core/src/test/scala/org/apache/spark/sql/streaming/StreamingDeduplicationWithinWatermarkSuite.scala),
-- ported scenario by scenario. A key stays a duplicate until the watermark
-- reaches its event time + the delay (SEMANTICS.md s.6).
--
-- Not ported (Spark internals with no tide meaning): "SPARK-46676:
-- canonicalization of StreamingDeduplicateWithinWatermarkExec should work"
-- (plan canonicalization), "Partition key extraction -
-- DedupeWithinWatermark" (state store partition keys), "incremental cleanup
-- factor does not change dropDuplicatesWithinWatermark output" (a Spark conf;
-- its sequence is the "subset of columns" scenario, ported below).
local tide = require "tide"
local S = require "spec.spark_support"

describe("Spark StreamingDeduplicationWithinWatermarkSuite", function()
  after_each(S.cleanup)

  -- StreamingDeduplicationWithinWatermarkSuite: test("deduplicate in batch DataFrame")
  it("deduplicate in batch DataFrame", function()
    local rows = {}
    for i = 0, 9 do rows[#rows + 1] = { id = i } end
    local df = tide.from_rows(rows, "id int")
    for _, build in ipairs {
      function() return df:drop_duplicates_within_watermark():collect() end,
      function() return df:with_column("newcol", "id"):drop_duplicates_within_watermark("newcol"):collect() end,
    } do
      local ok, err = pcall(build)
      assert.is_false(ok)
      assert.matches("drop_duplicates_within_watermark", err)
      assert.matches("static", err)
    end
  end)

  -- StreamingDeduplicationWithinWatermarkSuite: test("deduplicate without event time column should result in error")
  it("deduplicate without event time column should result in error", function()
    local ms = tide.memory_stream("value string")
    for _, build in ipairs {
      function() return ms:frame():drop_duplicates_within_watermark() end,
      function() return ms:frame():with_column("newcol", "value"):drop_duplicates_within_watermark("newcol") end,
    } do
      local ok, err = pcall(function() build():write_stream("memory", { name = "dwwm" }) end)
      assert.is_false(ok)
      assert.matches("drop_duplicates_within_watermark", err)
      assert.matches("watermark", err)
    end
  end)

  -- StreamingDeduplicationWithinWatermarkSuite:
  -- test("deduplicate with all columns with event time column in DataFrame")
  it("deduplicate with all columns with event time column in DataFrame", function()
    local ms = tide.memory_stream("value int")
    local f = S.event_time(ms:frame()):with_watermark("eventTime", "10 seconds")
      :drop_duplicates_within_watermark():select("eventTime")
    local t = S.test_stream(f, { out = S.event_secs })
    -- Advance watermark to 5 secs, no-data-batch does not drop state rows
    t:add(ms, S.ints(table.unpack(S.repeat_range(5, 10, 15))))
    t:check_answer({ 10 }, { 11 }, { 12 }, { 13 }, { 14 }, { 15 })
    t:state_rows(6, 6)

    -- Advance watermark to 7 secs, no-data-batch does not drop state rows
    t:add(ms, S.ints(13, 14, 15, 16, 17))
    -- 13 to 15 are duplicated
    t:check_new_answer({ 16 }, { 17 })
    t:state_rows(8, 2)

    t:add(ms, S.ints(5)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:state_rows(8, 0, 1)

    -- Advance watermark to 25 secs, no-data-batch drops state rows having expired time <= 25
    t:add(ms, S.ints(35))
    t:check_new_answer({ 35 })
    t:state_rows(3, 1)

    -- Advance watermark to 45 seconds, no-data-batch drops state rows having expired time <= 45
    t:add(ms, S.ints(55))
    t:check_new_answer({ 55 })
    t:state_rows(1, 1)
  end)

  -- StreamingDeduplicationWithinWatermarkSuite: test("deduplicate with subset of columns which event time column is
  -- not in subset")
  it("deduplicate with subset of columns which event time column is not in subset", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local f = S.event_time(ms:frame(), "_2"):with_watermark("eventTime", "2 seconds")
      :drop_duplicates_within_watermark("_1"):select("_1", "eventTime")
    local t = S.test_stream(f, { out = function(r) return { r._1, r.eventTime // 1000 } end })
    -- Advances watermark to 15
    t:add(ms, S.tuples({ "a", 17 }))
    t:check_new_answer({ "a", 17 })
    -- expired time is set to 19
    t:state_rows(1, 1)

    -- Watermark does not advance
    t:add(ms, S.tuples({ "a", 16 }))
    t:check_new_answer()
    t:state_rows(1, 0)

    -- Watermark does not advance
    -- Should not emit anything as data less than watermark
    t:add(ms, S.tuples({ "a", 13 }))
    t:check_new_answer()
    t:state_rows(1, 0, 1)

    -- Advances watermark to 20. no-data batch drops state row ("a" -> 19)
    t:add(ms, S.tuples({ "b", 22 }, { "c", 21 }))
    t:check_new_answer({ "b", 22 }, { "c", 21 })
    -- expired time is set to 24 and 23
    t:state_rows(2, 2)

    -- Watermark does not advance
    t:add(ms, S.tuples({ "a", 21 }))
    -- "a" is identified as new event since previous batch dropped state row ("a" -> 19)
    t:check_new_answer({ "a", 21 })
    -- expired time is set to 23
    t:state_rows(3, 1)

    -- Advances watermark to 23. no-data batch drops state row ("a" -> 23), ("c" -> 23)
    t:add(ms, S.tuples({ "d", 25 }))
    t:check_new_answer({ "d", 25 })
    t:state_rows(2, 1)
  end)

  -- StreamingDeduplicationWithinWatermarkSuite: test("SPARK-39650: duplicate with specific keys should allow input to
  -- change schema")
  it("SPARK-39650: duplicate with specific keys should allow input to change schema", function()
    local support = require "spec.support"
    local ck = support.tmpname() .. "-ck"
    local got = {}
    local function sink(id, rows) got[id] = rows end
    local function dedupe(ms, cols)
      return S.event_time(ms:frame(), "_2"):with_watermark("eventTime", "10 seconds")
        :drop_duplicates_within_watermark("_1"):select(table.unpack(cols))
    end

    local in1 = tide.memory_stream("_1 string, _2 int")
    local q = dedupe(in1, { "_1", "eventTime" }):write_stream(sink, { checkpoint = ck })
    in1:add(S.tuples({ "a", 1 }))
    q:process_all_available()
    assert.same({ { _1 = "a", eventTime = 1000 } }, got[0])
    in1:add(S.tuples({ "a", 2 }, { "b", 3 }))
    q:process_all_available()
    assert.same({ { _1 = "b", eventTime = 3000 } }, got[1])
    q:stop()

    local in2 = tide.memory_stream("_1 string, _2 int, _3 string")
    -- initialize new memory stream with previously executed batches
    in2:add(S.tuples({ "a", 1, "dummy" }))
    in2:add(S.tuples({ "a", 2, "dummy" }, { "b", 3, "dummy" }))
    q = dedupe(in2, { "_1", "eventTime", "_3" }):write_stream(sink, { checkpoint = ck })
    in2:add(S.tuples({ "a", 5, "a" }, { "b", 2, "b" }, { "c", 9, "c" }))
    q:process_all_available()
    assert.same({ { _1 = "c", eventTime = 9000, _3 = "c" } }, got[q:last_progress().batch_id])
    q:stop()
    os.execute("rm -rf '" .. ck .. "'")
  end)

  -- StreamingDeduplicationWithinWatermarkSuite: test("SPARK-50492: drop event time column after
  -- dropDuplicatesWithinWatermark")
  it("SPARK-50492: drop event time column after dropDuplicatesWithinWatermark", function()
    local ms = tide.memory_stream("_1 int, _2 int")
    local f = S.event_time(ms:frame(), "_1"):select("_1", "_2", "eventTime AS first")
      :with_watermark("first", "10 seconds")
      :drop_duplicates_within_watermark("_2"):select("_2")
    local t = S.test_stream(f, { out = function(r) return { r._2 } end })
    t:add(ms, S.tuples({ 1, 2 }))
    t:check_answer({ 2 })
  end)
end)
