-- Spark's StreamingDeduplicationSuite
-- (sql/core/src/test/scala/org/apache/spark/sql/streaming/StreamingDeduplicationSuite.scala),
-- ported scenario by scenario. MemoryStream[String] is a stream of
-- "value string", MemoryStream[(String, Int)] one of "_1 string, _2 int".
-- Several operators' metrics are given in Spark's order (sink first).
--
-- Not ported (Spark internals with no tide meaning): "SPARK-29438: ensure
-- UNION doesn't lead streaming deduplication to use shifted partition IDs"
-- (partition ids), "SPARK-39650: recovery from checkpoint ..." (checkpoints
-- written by Spark 3.3.0/3.5.1), "collation aware deduplication" and
-- "non-binary collation aware deduplication not supported" (Spark string
-- collations), "test that avro encoding is not supported" (a state store
-- encoding conf). In "SPARK-35896: metrics in StateOperatorProgress are output
-- correctly" the removed-rows count, the shuffle partitions and the state
-- store instances have no tide counterpart; its other metrics are checked.
local tide = require "tide"
local S = require "spec.spark_support"

local function strings(...)
  local rows = {}
  for i, v in ipairs { ... } do rows[i] = { value = v } end
  return rows
end

local function pair(r) return { r._1, r._2 } end

-- inputData.toDS().withColumn("eventTime", timestamp_seconds($"value"))
--   .withWatermark("eventTime", "10 seconds").dropDuplicates()
--   .select($"eventTime".cast("long"))
local function dedup_with_watermark(ms)
  return S.event_time(ms:frame()):with_watermark("eventTime", "10 seconds")
    :drop_duplicates():select("eventTime")
end

describe("Spark StreamingDeduplicationSuite", function()
  after_each(S.cleanup)

  -- StreamingDeduplicationSuite: test("deduplicate with all columns")
  it("deduplicate with all columns", function()
    local ms = tide.memory_stream("value string")
    local t = S.test_stream(ms:frame():drop_duplicates(), { out = function(r) return { r.value } end })
    t:add(ms, strings("a"))
    t:check_last_batch({ "a" })
    t:state_rows(1, 1)
    t:add(ms, strings("a"))
    t:check_last_batch()
    t:state_rows(1, 0)
    t:add(ms, strings("b"))
    t:check_last_batch({ "b" })
    t:state_rows(2, 1)
  end)

  -- StreamingDeduplicationSuite: test("deduplicate with some columns")
  it("deduplicate with some columns", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(ms:frame():drop_duplicates("_1"), { out = pair })
    t:add(ms, S.tuples({ "a", 1 }))
    t:check_last_batch({ "a", 1 })
    t:state_rows(1, 1, 0)
    t:add(ms, S.tuples({ "a", 2 })) -- Dropped
    t:check_last_batch()
    t:state_rows(1, 0, 0)
    t:add(ms, S.tuples({ "b", 1 }))
    t:check_last_batch({ "b", 1 })
    t:state_rows(2, 1, 0)
  end)

  -- StreamingDeduplicationSuite: test("multiple deduplicates")
  it("multiple deduplicates", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(ms:frame():drop_duplicates():drop_duplicates("_1"), { out = pair })
    t:add(ms, S.tuples({ "a", 1 }))
    t:check_last_batch({ "a", 1 })
    t:state_rows({ 1, 1 }, { 1, 1 })

    t:add(ms, S.tuples({ "a", 2 })) -- Dropped from the second `dropDuplicates`
    t:check_last_batch()
    t:state_rows({ 1, 2 }, { 0, 1 })

    t:add(ms, S.tuples({ "b", 1 }))
    t:check_last_batch({ "b", 1 })
    t:state_rows({ 2, 3 }, { 1, 1 })
  end)

  -- StreamingDeduplicationSuite: test("SPARK-35896: metrics in StateOperatorProgress are output correctly")
  it("SPARK-35896: metrics in StateOperatorProgress are output correctly", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(dedup_with_watermark(ms), { out = S.event_secs })
    t:add(ms, S.ints(table.unpack(S.repeat_range(5, 10, 15))))
    t:check_answer({ 10 }, { 11 }, { 12 }, { 13 }, { 14 }, { 15 })
    t:state_rows(6, 6, 0)

    t:add(ms, S.ints(25)) -- Advance watermark to 15 secs, no-data-batch drops rows <= 15
    t:check_new_answer({ 25 })
    t:state_rows(1, 1, 0)

    t:add(ms, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:state_rows(1, 0, 1)

    t:add(ms, S.ints(10))
    t:check_new_answer()
    assert.equal("dedup", t.q:last_progress().state_operators[1].name)
  end)

  -- StreamingDeduplicationSuite: test("deduplicate with watermark")
  it("deduplicate with watermark", function()
    local ms = tide.memory_stream("value int")
    local t = S.test_stream(dedup_with_watermark(ms), { out = S.event_secs })
    t:add(ms, S.ints(table.unpack(S.repeat_range(5, 10, 15))))
    t:check_answer({ 10 }, { 11 }, { 12 }, { 13 }, { 14 }, { 15 })
    t:state_rows(6, 6)

    t:add(ms, S.ints(25)) -- Advance watermark to 15 secs, no-data-batch drops rows <= 15
    t:check_new_answer({ 25 })
    t:state_rows(1, 1)

    t:add(ms, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:state_rows(1, 0, 1)

    t:add(ms, S.ints(45)) -- Advance watermark to 35 seconds, no-data-batch drops row 25
    t:check_new_answer({ 45 })
    t:state_rows(1, 1)
  end)

  -- StreamingDeduplicationSuite: test("deduplicate with aggregate - append mode")
  it("deduplicate with aggregate - append mode", function()
    local ms = tide.memory_stream("value int")
    local f = S.event_time(ms:frame()):with_watermark("eventTime", "10 seconds")
      :drop_duplicates()
      :group_by(tide.window("eventTime", "5 seconds")):count()
    local t = S.test_stream(f, { out = S.window_count })
    t:add(ms, S.ints(table.unpack(S.repeat_range(5, 10, 15))))
    t:check_last_batch()
    -- states in aggregate in [10, 14), [15, 20) (2 windows)
    -- states in deduplicate is 10 to 15
    t:state_rows({ 2, 6 }, { 2, 6 })

    t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
    t:check_last_batch({ 10, 5 }) -- 5 items (10 to 14) after deduplicate, emitted with no-data-batch
    -- states in aggregate in [15, 20) and [25, 30); no-data-batch removed [10, 14)
    -- states in deduplicate is 25, no-data-batch removed 10 to 14
    t:state_rows({ 2, 1 }, { 1, 1 })

    t:add(ms, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_last_batch()
    t:state_rows({ 2, 1 }, { 0, 0 }, { 0, 1 })

    t:add(ms, S.ints(40)) -- Advance watermark to 30 seconds
    t:check_last_batch({ 15, 1 }, { 25, 1 })
    -- states in aggregate is [40, 45); no-data-batch removed [15, 20) and [25, 30)
    -- states in deduplicate is 40; no-data-batch removed 25
    t:state_rows({ 1, 1 }, { 1, 1 })
  end)

  local function str_sum(ms)
    return ms:frame():select("_1 AS str", "_2 AS num"):drop_duplicates()
      :group_by("str"):agg { "sum(num) AS s" }
  end
  local function str_s(r) return { r.str, r.s } end

  -- StreamingDeduplicationSuite: test("deduplicate with aggregate - update mode")
  it("deduplicate with aggregate - update mode", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(str_sum(ms), { mode = "update", out = str_s })
    t:add(ms, S.tuples({ "a", 1 }))
    t:check_last_batch({ "a", 1 })
    t:state_rows({ 1, 1 }, { 1, 1 })
    t:add(ms, S.tuples({ "a", 1 })) -- Dropped
    t:check_last_batch()
    t:state_rows({ 1, 1 }, { 0, 0 })
    t:add(ms, S.tuples({ "a", 2 }))
    t:check_last_batch({ "a", 3 })
    t:state_rows({ 1, 2 }, { 1, 1 })
    t:add(ms, S.tuples({ "b", 1 }))
    t:check_last_batch({ "b", 1 })
    t:state_rows({ 2, 3 }, { 1, 1 })
  end)

  -- StreamingDeduplicationSuite: test("deduplicate with aggregate - complete mode")
  it("deduplicate with aggregate - complete mode", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(str_sum(ms), { mode = "complete", out = str_s })
    t:add(ms, S.tuples({ "a", 1 }))
    t:check_last_batch({ "a", 1 })
    t:state_rows({ 1, 1 }, { 1, 1 })
    t:add(ms, S.tuples({ "a", 1 })) -- Dropped
    t:check_last_batch({ "a", 1 })
    t:state_rows({ 1, 1 }, { 0, 0 })
    t:add(ms, S.tuples({ "a", 2 }))
    t:check_last_batch({ "a", 3 })
    t:state_rows({ 1, 2 }, { 1, 1 })
    t:add(ms, S.tuples({ "b", 1 }))
    t:check_last_batch({ "a", 3 }, { "b", 1 })
    t:state_rows({ 2, 3 }, { 1, 1 })
  end)

  -- StreamingDeduplicationSuite: test("deduplicate with file sink")
  it("deduplicate with file sink", function()
    local support = require "spec.support"
    local path, ck = support.tmpname() .. "-out", support.tmpname() .. "-ck"
    local ms = tide.memory_stream("value string")
    local q = ms:frame():drop_duplicates():write_stream("file", { path = path, format = "json", checkpoint = ck })
    local function contents()
      local rows = tide.read("file", { path = path .. "/part-*", format = "json", schema = "value string" }):collect()
      local v = {}
      for i, r in ipairs(rows) do v[i] = r.value end
      table.sort(v)
      return v
    end
    ms:add(strings("a"))
    q:process_all_available()
    assert.same({ "a" }, contents())
    ms:add(strings("a")) -- Dropped
    q:process_all_available()
    assert.same({ "a" }, contents())
    ms:add(strings("b"))
    q:process_all_available()
    assert.same({ "a", "b" }, contents())
    q:stop()
    os.execute("rm -rf '" .. path .. "' '" .. ck .. "'")
  end)

  -- StreamingDeduplicationSuite: test("SPARK-19841: watermarkPredicate should filter based on keys")
  it("SPARK-19841: watermarkPredicate should filter based on keys", function()
    local ms = tide.memory_stream("_1 int, _2 int")
    local f = ms:frame():select("_1 AS time", "_2 AS id")
      :with_column("time", "CAST(time * 1000 AS timestamp)")
      :with_watermark("time", "1 second")
      :drop_duplicates("id", "time") -- Change the column positions
      :select("id")
    local t = S.test_stream(f, { out = function(r) return { r.id } end })
    t:add(ms, S.tuples({ 1, 1 }, { 1, 1 }, { 1, 2 }))
    t:check_answer({ 1 }, { 2 })
    t:add(ms, S.tuples({ 1, 1 }, { 2, 3 }, { 2, 4 }))
    t:check_new_answer({ 3 }, { 4 })
    t:add(ms, S.tuples({ 1, 0 }, { 1, 1 }, { 3, 5 }, { 3, 6 })) -- Drop (1 -> 0, 1 -> 1) due to watermark
    t:check_new_answer({ 5 }, { 6 })
    t:add(ms, S.tuples({ 1, 0 }, { 4, 7 })) -- Drop (1 -> 0) due to watermark
    t:check_new_answer({ 7 })
  end)

  -- StreamingDeduplicationSuite: test("SPARK-21546: dropDuplicates should ignore watermark when it's not a key")
  it("SPARK-21546: dropDuplicates should ignore watermark when it's not a key", function()
    local ms = tide.memory_stream("_1 int, _2 int")
    local f = ms:frame():select("_1 AS id", "_2 AS time")
      :with_column("time", "CAST(time * 1000 AS timestamp)")
      :with_watermark("time", "1 second")
      :drop_duplicates("id")
      :select("id", "time")
    local t = S.test_stream(f, { out = function(r) return { r.id, r.time // 1000 } end })
    t:add(ms, S.tuples({ 1, 1 }, { 1, 2 }, { 2, 2 }))
    t:check_answer({ 1, 1 }, { 2, 2 })
  end)

  -- StreamingDeduplicationSuite: test("test no-data flag")
  for _, flag in ipairs { true, false } do
    it("test no-data flag (no_data_batches = " .. tostring(flag) .. ")", function()
      local ms = tide.memory_stream("value int")
      local t = S.test_stream(dedup_with_watermark(ms), { out = S.event_secs, no_data_batches = flag })
      t:add(ms, S.ints(10, 11, 12, 13, 14, 15))
      t:check_answer({ 10 }, { 11 }, { 12 }, { 13 }, { 14 }, { 15 })
      t:state_rows(6, 6)

      t:add(ms, S.ints(25)) -- Advance watermark to 15 seconds
      t:check_new_answer({ 25 })
      -- State should have been cleaned if flag is set, otherwise should not have been cleaned
      if flag then t:state_rows(1, 1) else t:state_rows(7, 1) end
      -- the last batch output nothing: the no-data batch, or (flag off) the data batch's 25 already checked
      local last = t.q:last_progress().batch_id
      for _, b in ipairs(t.batches) do
        if b.id == last and flag then assert.same({}, b.rows) end
      end
    end)
  end

  -- StreamingDeduplicationSuite: test("SPARK-35880: custom metric numDroppedDuplicateRows in state operator progress")
  it("SPARK-35880: custom metric numDroppedDuplicateRows in state operator progress", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(ms:frame():drop_duplicates("_1"), { out = pair })
    t:add(ms, S.tuples({ "a", 1 }))
    t:check_last_batch({ "a", 1 })
    t:dropped_duplicates(0)

    t:add(ms, S.tuples({ "a", 2 }, { "b", 3 }))
    t:check_last_batch({ "b", 3 })
    t:dropped_duplicates(1)

    t:add(ms, S.tuples({ "a", 5 }, { "b", 2 }, { "c", 9 }))
    t:check_last_batch({ "c", 9 })
    t:dropped_duplicates(2)

    -- with watermark
    local wm = tide.memory_stream("value int")
    t = S.test_stream(dedup_with_watermark(wm), { out = S.event_secs })
    t:add(wm, S.ints(table.unpack(S.repeat_range(5, 10, 15))))
    t:check_answer({ 10 }, { 11 }, { 12 }, { 13 }, { 14 }, { 15 })
    t:dropped_duplicates(24)

    t:add(wm, S.ints(14))
    t:check_new_answer()
    t:dropped_duplicates(1)

    -- Advance watermark to 15 secs, no-data-batch drops rows <= 15
    t:add(wm, S.ints(25))
    t:check_new_answer({ 25 })
    t:dropped_duplicates(0)

    t:add(wm, S.ints(10)) -- Should not emit anything as data less than watermark
    t:check_new_answer()
    t:dropped_duplicates(0)

    t:add(wm, S.ints(26, 26))
    t:check_new_answer({ 26 })
    t:dropped_duplicates(1)
  end)

  -- StreamingDeduplicationSuite: test("SPARK-39650: duplicate with specific keys should allow input to change schema")
  it("SPARK-39650: duplicate with specific keys should allow input to change schema", function()
    local support = require "spec.support"
    local ck = support.tmpname() .. "-ck"
    local got = {}
    local function sink(id, rows) got[id] = rows end

    local in1 = tide.memory_stream("_1 string, _2 int")
    local q = in1:frame():drop_duplicates("_1"):write_stream(sink, { checkpoint = ck })
    in1:add(S.tuples({ "a", 1 }))
    q:process_all_available()
    assert.same({ { _1 = "a", _2 = 1 } }, got[0])
    in1:add(S.tuples({ "a", 2 }, { "b", 3 }))
    q:process_all_available()
    assert.same({ { _1 = "b", _2 = 3 } }, got[1])
    q:stop()

    local in2 = tide.memory_stream("_1 string, _2 int, _3 string")
    -- initialize new memory stream with previously executed batches
    in2:add(S.tuples({ "a", 1, "dummy" }))
    in2:add(S.tuples({ "a", 2, "dummy" }, { "b", 3, "dummy" }))
    q = in2:frame():drop_duplicates("_1"):write_stream(sink, { checkpoint = ck })
    in2:add(S.tuples({ "a", 5, "a" }, { "b", 2, "b" }, { "c", 9, "c" }))
    q:process_all_available()
    assert.same({ { _1 = "c", _2 = 9, _3 = "c" } }, got[q:last_progress().batch_id])
    q:stop()
    os.execute("rm -rf '" .. ck .. "'")
  end)
end)
