-- Spark's FlatMapGroupsWithStateSuite
-- (sql/core/src/test/scala/org/apache/spark/sql/streaming/FlatMapGroupsWithStateSuite.scala),
-- ported for `f:group_by(key):process(fn, opts)`: the same inputs, outputs,
-- timeouts and state-row counts. Spark's MemoryStream[String] grouped by
-- itself is a memory stream of "value string" grouped by value; a function
-- returning Iterator((key, x)) returns { { _1 = key, _2 = x } };
-- mapGroupsWithState is a function that returns exactly one row. Spark's
-- StreamManualClock is the query option `clock` (a function giving the
-- processing time), advanced by the spec.
--
-- Not ported (no tide meaning): the InputProcessor and GroupState unit
-- tests (Spark's internal classes: tide's state handle is specced in
-- spec/process_spec.lua), the state format versions and their 2.3.1
-- checkpoints, "SPARK-29438" and "SPARK-38204" (partitioning), "output
-- partitioning is unknown", "StateStore.abort on task failure handling" (its
-- outcome, a failed batch re-run on the committed state, is in
-- process_spec.lua), and the initial-state tests (tide's process has no
-- initial state).
local tide = require "tide"
local S = require "spec.spark_support"

local function pair(r) return { r._1, r._2 } end

-- Rows of a MemoryStream[String].
local function strings(...)
  local rows = {}
  for i, v in ipairs { ... } do rows[i] = { value = v } end
  return rows
end

local OUT = "_1 string?, _2 string"

-- A manual clock: clock.now ms, advanced by clock:advance(ms).
local function manual_clock()
  local c = { now = 0 }
  function c.fn() return c.now end
  function c:advance(ms) self.now = self.now + ms end
  return c
end

describe("Spark FlatMapGroupsWithStateSuite", function()
  after_each(S.cleanup)

  -- Function to maintain running count up to 2, and then remove the count;
  -- returns the data and the count if state is defined, otherwise nothing.
  -- FlatMapGroupsWithStateSuite: test("flatMapGroupsWithState - streaming")
  it("flatMapGroupsWithState - streaming", function()
    local ms = tide.memory_stream("value string")
    local f = ms:frame():group_by("value"):process(function(key, values, state)
      assert(state:processing_time() >= 0)
      local count = (state:exists() and state:get() or 0) + #values
      if count == 3 then
        state:remove()
        return {}
      end
      state:set(count)
      return { { _1 = key, _2 = tostring(count) } }
    end, { schema = OUT })
    local t = S.test_stream(f, { mode = "update", out = pair })
    t:add(ms, strings("a"))
    t:check_new_answer({ "a", "1" })
    t:state_rows(1, 1)
    t:add(ms, strings("a", "b"))
    t:check_new_answer({ "a", "2" }, { "b", "1" })
    t:state_rows(2, 2)
    t:stop()
    t:start()
    t:add(ms, strings("a", "b")) -- should remove state for "a" and not return anything for a
    t:check_new_answer({ "b", "2" })
    t:state_rows(1, 1)           -- b updated; a removed (a removal is not an update, as in Spark)
    t:stop()
    t:start()
    t:add(ms, strings("a", "c")) -- should recreate state for "a" and return count as 1
    t:check_new_answer({ "a", "1" }, { "c", "1" })
    t:state_rows(3, 2)
  end)

  -- FlatMapGroupsWithStateSuite: test("flatMapGroupsWithState - streaming + func returns iterator that updates
  -- state lazily"): the state changes value by value within one call.
  it("flatMapGroupsWithState - streaming + func returns iterator that updates state lazily", function()
    local ms = tide.memory_stream("value string")
    local f = ms:frame():group_by("value"):process(function(key, values, state)
      local out = {}
      for _ in ipairs(values) do
        local count = (state:get() or 0) + 1
        if count == 3 then
          state:remove()
        else
          state:set(count)
          out[#out + 1] = { _1 = key, _2 = tostring(count) }
        end
      end
      return out
    end, { schema = OUT })
    local t = S.test_stream(f, { mode = "update", out = pair })
    t:add(ms, strings("a", "a", "b"))
    t:check_new_answer({ "a", "1" }, { "a", "2" }, { "b", "1" })
    t:stop()
    t:start()
    t:add(ms, strings("a", "b"))
    t:check_new_answer({ "b", "2" })
    t:stop()
    t:start()
    t:add(ms, strings("a", "c"))
    t:check_new_answer({ "a", "1" }, { "c", "1" })
  end)

  -- FlatMapGroupsWithStateSuite: test("flatMapGroupsWithState - batch")
  it("flatMapGroupsWithState - batch", function()
    local f = tide.from_rows(S.tuples({ "a" }, { "a" }, { "b" }), "_1 string")
      :group_by("_1"):process(function(key, values, state)
        assert(state:processing_time() > 0)
        assert(state:watermark() == nil)
        if state:exists() then error("state.exists should be false") end
        return { { _1 = key, _2 = tostring(#values) } }
      end, { schema = OUT })
    local got = {}
    for i, r in ipairs(f:collect()) do got[i] = pair(r) end
    assert.same({ { "a", "2" }, { "b", "1" } }, got)
  end)

  -- FlatMapGroupsWithStateSuite: testWithAllStateVersions("flatMapGroupsWithState - streaming with processing
  -- time timeout"): the count as state with a 10-second processing-time timeout; -1 when it times out.
  it("flatMapGroupsWithState - streaming with processing time timeout", function()
    local clock = manual_clock()
    local ms = tide.memory_stream("value string")
    local f = ms:frame():group_by("value"):process(function(key, values, state)
      assert(state:processing_time() >= 0)
      if state:has_timed_out() then
        state:remove()
        return { { _1 = key, _2 = "-1" } }
      end
      local count = (state:get() or 0) + #values
      state:set(count)
      state:set_timeout("10 seconds")
      return { { _1 = key, _2 = tostring(count) } }
    end, { schema = OUT, timeout = "processing" })
    local t = S.test_stream(f, { mode = "update", out = pair, clock = clock.fn })

    clock:advance(1000)
    t:add(ms, strings("a"))
    t:check_new_answer({ "a", "1" })
    t:state_rows(1, 1)

    clock:advance(1000)
    t:add(ms, strings("b"))
    t:check_new_answer({ "b", "1" })
    t:state_rows(2, 1)

    clock:advance(10 * 1000)
    t:add(ms, strings("b"))
    t:check_new_answer({ "a", "-1" }, { "b", "2" })
    t:state_rows(1, 1)

    t:stop()
    t:start { clock = clock.fn }

    clock:advance(11 * 1000)
    t:add(ms, strings("c"))
    t:check_new_answer({ "b", "-1" }, { "c", "1" })
    t:state_rows(1, 1)

    clock:advance(12 * 1000) -- no data: the timeout alone runs a batch
    t:check_new_answer({ "c", "-1" })
    t:state_rows(0, 0)
    assert.equal(35000, t.q:last_progress().timestamp)
  end)

  -- sampleTestFunction: the max event time (seconds) as state, a timer 5 seconds after it; -1 on timeout.
  local function sample_test_function(key, values, state)
    assert(state:processing_time() >= 0)
    assert(state:watermark() >= 0)
    if state:has_timed_out() then
      state:remove()
      return { { _1 = key, _2 = -1 } }
    end
    local max = state:get() or 0
    for _, v in ipairs(values) do max = math.max(max, v.eventTime // 1000) end
    state:set(max)
    state:set_timer((max + 5) * 1000)
    return { { _1 = key, _2 = max } }
  end

  local function event_time_frame(ms)
    return ms:frame():select("_1 AS key", "CAST(_2 * 1000 AS timestamp) AS eventTime")
      :with_watermark("eventTime", "10 seconds")
      :group_by("key"):process(sample_test_function, { schema = "_1 string, _2 int", timeout = "event_time" })
  end

  -- FlatMapGroupsWithStateSuite: testWithAllStateVersions("flatMapGroupsWithState - streaming w/ event time
  -- timeout + watermark")
  it("flatMapGroupsWithState - streaming w/ event time timeout + watermark", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(event_time_frame(ms), { mode = "update", out = pair })
    t:add(ms, S.tuples({ "a", 11 }, { "a", 13 }, { "a", 15 }))
    -- Max event time = 15. Timeout timestamp for "a" = 15 + 5 = 20. Watermark = 15 - 10 = 5.
    t:check_new_answer({ "a", 15 })
    t:add(ms, S.tuples({ "a", 4 }))  -- Add data older than watermark for "a"
    t:check_new_answer()             -- No output as data should get filtered by watermark
    t:add(ms, S.tuples({ "a", 10 })) -- Add data newer than watermark for "a"
    t:check_new_answer({ "a", 15 })  -- Max event time is still the same
    t:add(ms, S.tuples({ "b", 31 })) -- Add data newer than watermark for "b", not "a"
    -- Watermark = 31 - 10 = 21, so "a" should be timed out as timeout timestamp for "a" is 20.
    t:check_new_answer({ "a", -1 }, { "b", 31 })
  end)

  -- FlatMapGroupsWithStateSuite: test("SPARK-35896: metrics in StateOperatorProgress are output correctly")
  it("SPARK-35896: metrics in StateOperatorProgress are output correctly", function()
    local ms = tide.memory_stream("_1 string, _2 int")
    local t = S.test_stream(event_time_frame(ms), { mode = "update", out = pair })
    t:add(ms, S.tuples({ "a", 11 }, { "a", 13 }, { "a", 15 }))
    t:check_new_answer({ "a", 15 })
    t:state_rows(1, 1, 0)
    t:add(ms, S.tuples({ "a", 4 }))
    t:check_new_answer()
    assert.equal("process", t.q:last_progress().state_operators[1].name)
    t:state_rows(1, 0, 1)
    t:add(ms, S.tuples({ "a", 10 }))
    t:check_new_answer({ "a", 15 })
    t:add(ms, S.tuples({ "b", 31 }))
    t:check_new_answer({ "a", -1 }, { "b", 31 })
    t:state_rows(1, 2, 0) -- a's set (batch 2) and b's; a removed
  end)

  -- FlatMapGroupsWithStateSuite: test("mapGroupsWithState - streaming"): one output row per call.
  it("mapGroupsWithState - streaming", function()
    local ms = tide.memory_stream("value string")
    local f = ms:frame():group_by("value"):process(function(key, values, state)
      local count = (state:get() or 0) + #values
      if count == 3 then
        state:remove()
        return { { _1 = key, _2 = "-1" } }
      end
      state:set(count)
      return { { _1 = key, _2 = tostring(count) } }
    end, { schema = OUT })
    local t = S.test_stream(f, { mode = "update", out = pair })
    t:add(ms, strings("a"))
    t:check_new_answer({ "a", "1" })
    t:state_rows(1, 1)
    t:add(ms, strings("a", "b"))
    t:check_new_answer({ "a", "2" }, { "b", "1" })
    t:state_rows(2, 2)
    t:stop()
    t:start()
    t:add(ms, strings("a", "b")) -- should remove state for "a" and return count as -1
    t:check_new_answer({ "a", "-1" }, { "b", "2" })
    t:state_rows(1, 1)
    t:stop()
    t:start()
    t:add(ms, strings("a", "c")) -- should recreate state for "a" and return count as 1
    t:check_new_answer({ "a", "1" }, { "c", "1" })
    t:state_rows(3, 2)
  end)

  -- FlatMapGroupsWithStateSuite: test("mapGroupsWithState - batch"): timeouts set in a static run do no harm.
  it("mapGroupsWithState - batch", function()
    local f = tide.from_rows(S.tuples({ "a" }, { "a" }, { "b" }), "_1 string")
      :group_by("_1"):process(function(key, values, state)
        if state:exists() then error("state.exists should be false") end
        state:set_timeout("1 hour")
        state:set(10)
        return { { _1 = key, _2 = tostring(#values) } }
      end, { schema = OUT, timeout = "processing" })
    local got = {}
    for i, r in ipairs(f:collect()) do got[i] = pair(r) end
    assert.same({ { "a", "2" }, { "b", "1" } }, got)
  end)

  -- FlatMapGroupsWithStateSuite: testWithTimeout(...) "SPARK-20714: watermark does not fail query when timeout
  -- = NoTimeout / ProcessingTimeTimeout"
  for _, timeout in ipairs { "none", "processing" } do
    it("SPARK-20714: watermark does not fail query when timeout = " .. timeout, function()
      local clock = manual_clock()
      local ms = tide.memory_stream("key string, time int")
      local f = ms:frame():select("key", "CAST(time * 1000 AS timestamp) AS timestamp")
        :with_watermark("timestamp", "10 seconds")
        :group_by("key"):process(function(key, values, state)
          if state:has_timed_out() then
            state:remove()
            return { { _1 = key, _2 = "-1" } }
          end
          local count = (state:get() or 0) + #values
          state:set(count)
          if timeout == "processing" then state:set_timeout("10 seconds") end
          return { { _1 = key, _2 = tostring(count) } }
        end, { schema = OUT, timeout = timeout })
      local t = S.test_stream(f, { mode = "update", out = pair, clock = clock.fn })
      clock:advance(1000)
      t:add(ms, { { key = "a", time = 1 } })
      t:check_new_answer({ "a", "1" })
    end)
  end

  -- FlatMapGroupsWithStateSuite: test("disallow complete mode")
  it("disallow complete mode", function()
    local f = tide.memory_stream("value string"):frame():group_by("value")
      :process(function() return {} end, { schema = "value string" })
    local ok, err = pcall(f.write_stream, f, "memory", { name = "fmgws", mode = "complete" })
    assert.is_false(ok)
    assert.matches("complete output mode not supported with process %(as Spark's flatMapGroupsWithState%): " ..
      "use append or update", err)
  end)
end)
