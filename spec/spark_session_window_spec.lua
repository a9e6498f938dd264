-- Spark's StreamingSessionWindowSuite and DataFrameSessionWindowingSuite
-- (apache/spark, sql/core/src/test/scala/org/apache/spark/sql/...), ported
-- with the same inputs, outputs and state-row counts. Spark's times are in
-- seconds; here they are ms (x 1000). Spark's queries split each line into
-- words (explode(split(value, ' ')) AS sessionId); here each word is a row.
-- Not ported: dynamic gap durations (SPARK-36465; a gap here is a fixed
-- duration) and UDAFs.
local tide = require "tide"
local support = require "spec.support"

local session_window = tide.session_window
local S = 1000

-- The rows of Spark's input lines: one row per word, all at time t (s).
local function lines(list, extra)
  local rows = {}
  for _, l in ipairs(list) do
    for w in l[1]:gmatch("%S+") do
      local r = { ts = l[2] * S, id = w }
      if extra then extra(r) end
      rows[#rows + 1] = r
    end
  end
  return rows
end

-- Spark's sessionWindowQuery: (sessionId, start, end, durationMs, numEvents)
-- with the watermark 30 seconds behind; keys: "id" or { "id", "id2" }.
local function session_query(ms, keys)
  local f = ms:frame():with_watermark("ts", "30 seconds")
  local ks = type(keys) == "table" and keys or { "id" }
  local args = {}
  for i, k in ipairs(ks) do args[i] = k end
  args[#args + 1] = session_window("ts", "10 seconds")
  local sel = {}
  for i, k in ipairs(ks) do sel[i] = k end
  for _, c in ipairs { "CAST(window_start AS int) AS start", "CAST(window_end AS int) AS stop",
    "CAST(window_end AS int) - CAST(window_start AS int) AS duration", "num_events" } do
    sel[#sel + 1] = c
  end
  return f:group_by(table.unpack(args)):agg { "count(*) AS num_events" }:select(table.unpack(sel))
end

-- Rows as sorted "id start end duration n" strings (times in seconds).
local function fmt(rows, key_cols)
  local out = {}
  for _, r in ipairs(rows) do
    local t = {}
    for _, k in ipairs(key_cols or { "id" }) do t[#t + 1] = r[k] end
    t[#t + 1] = tostring(r.start // S)
    t[#t + 1] = tostring(r.stop // S)
    t[#t + 1] = tostring(r.duration // S)
    t[#t + 1] = tostring(r.num_events)
    out[#out + 1] = table.concat(t, " ")
  end
  table.sort(out)
  return out
end

local function sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end

local function state_op(q) return q:last_progress().state_operators[1] end

local FIRST = { { "hello world spark streaming", 40 }, { "world hello structured streaming", 41 } }

-- The answers of "complete mode - session window" after each batch.
local COMPLETE = {
  { "hello 40 51 11 2", "world 40 51 11 2", "streaming 40 51 11 2", "spark 40 50 10 1", "structured 41 51 10 1" },
  { "spark 25 35 10 1", "streaming 25 35 10 1", "hello 40 51 11 2", "world 40 51 11 2", "streaming 40 51 11 2",
    "spark 40 50 10 1", "structured 41 51 10 1" },
  { "spark 25 50 25 3", "streaming 25 51 26 4", "hello 40 51 11 2", "world 40 51 11 2", "structured 41 51 10 1" },
  { "spark 25 50 25 3", "streaming 25 51 26 4", "hello 40 51 11 2", "world 40 51 11 2", "structured 41 51 10 1",
    "hello 60 70 10 1", "apache 60 70 10 1", "spark 60 70 10 1" },
  { "spark 25 50 25 3", "streaming 25 51 26 4", "hello 40 51 11 2", "world 40 51 11 2", "structured 41 51 10 1",
    "hello 60 70 10 1", "apache 60 70 10 1", "spark 60 70 10 1", "structured 90 100 10 1",
    "streaming 90 100 10 1" },
}
local COMPLETE_INPUT = { FIRST, { { "spark streaming", 25 } }, { { "spark streaming", 30 } },
  { { "hello apache spark", 60 } }, { { "structured streaming", 90 } } }

describe("Spark StreamingSessionWindowSuite", function()
  local dir, q
  before_each(function() dir = support.tmpname() end)
  after_each(function()
    if q and q:is_active() then q:stop() end
    q = nil
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("complete mode - session window", function()
    local ms = tide.memory_stream("ts timestamp, id string")
    q = session_query(ms):write_stream("memory", { name = "ssw_complete", mode = "complete", checkpoint = dir })
    for i, input in ipairs(COMPLETE_INPUT) do
      ms:add(lines(input))
      q:process_all_available()
      assert.same(sorted(COMPLETE[i]), fmt(tide.table("ssw_complete"):collect()), "batch " .. i)
      assert.equal(#COMPLETE[i], state_op(q).num_rows_total)
      assert.equal(0, state_op(q).num_rows_dropped_by_watermark)
    end
  end)

  it("complete mode - session window - multiple col key", function()
    local ms = tide.memory_stream("ts timestamp, id string, id2 string")
    q = session_query(ms, { "id", "id2" }):write_stream("memory", { name = "ssw_multi", mode = "complete",
      checkpoint = dir })
    local function twice(r) r.id2 = r.id end
    for i, input in ipairs(COMPLETE_INPUT) do
      ms:add(lines(input, twice))
      q:process_all_available()
      local want = {}
      for j, s in ipairs(COMPLETE[i]) do
        local w = s:match("^%S+")
        want[j] = w .. " " .. s
      end
      assert.same(sorted(want), fmt(tide.table("ssw_multi"):collect(), { "id", "id2" }), "batch " .. i)
    end
  end)

  it("complete mode - session window - no key", function()
    local ms = tide.memory_stream("value int")
    local f = ms:frame():with_column("ts", "CAST(value * 1000 AS timestamp)"):with_watermark("ts", "10 seconds")
      :group_by(session_window("ts", "5 seconds")):agg { "count(*) AS count", "sum(value) AS sum" }
    local ok, err = pcall(f.write_stream, f, "memory", { name = "ssw_nokey", mode = "complete", checkpoint = dir })
    assert.is_false(ok)
    assert.matches("global aggregation with a session window is not supported", err, 1, true)
  end)

  it("append mode - session window - no key", function()
    local ms = tide.memory_stream("value int")
    local f = ms:frame():with_column("ts", "CAST(value * 1000 AS timestamp)"):with_watermark("ts", "10 seconds")
      :group_by(session_window("ts", "5 seconds")):agg { "count(*) AS count", "sum(value) AS sum" }
    local ok, err = pcall(f.write_stream, f, "memory", { name = "ssw_nokey", mode = "append", checkpoint = dir })
    assert.is_false(ok)
    assert.matches("global aggregation with a session window is not supported", err, 1, true)
  end)

  it("update mode - session window (with and without a key)", function()
    local ms = tide.memory_stream("ts timestamp, id string")
    local ok, err = pcall(function()
      return session_query(ms):write_stream("memory", { name = "ssw_upd", mode = "update", checkpoint = dir })
    end)
    assert.is_false(ok)
    assert.matches("session windows support append and complete output modes, not update", err, 1, true)
    local f = ms:frame():with_watermark("ts", "10 seconds"):group_by(session_window("ts", "5 seconds")):count()
    ok, err = pcall(f.write_stream, f, "memory", { name = "ssw_upd", mode = "update", checkpoint = dir })
    assert.is_false(ok)
    assert.matches("not update", err, 1, true)
  end)

  -- "append mode - session window": the steps, the watermark each batch
  -- runs with, the state rows after it and the output so far.
  local APPEND = {
    { input = FIRST, rows = 5, out = {} },
    { input = { { "spark streaming", 25 } }, rows = 7, out = {} },
    { input = { { "spark streaming", 0 } }, rows = 7, dropped = 2, out = {} },   -- late: 0 + 10 <= 11
    { input = { { "spark streaming", 30 } }, rows = 5, out = {} },
    { input = { { "hello apache spark", 60 } }, rows = 8, out = {} },
    { input = { { "structured streaming", 90 } }, rows = 5, out = { "spark 25 50 25 3", "streaming 25 51 26 4",
      "hello 40 51 11 2", "world 40 51 11 2", "structured 41 51 10 1" } },
  }

  -- Run the append steps from..to on a query over ms writing to `got`.
  local function append_steps(ms, got, from, to)
    q = session_query(ms):write_stream(function(batch_id, rows) got[batch_id] = rows end,
      { mode = "append", checkpoint = dir })
    for i = from, to do
      local step = APPEND[i]
      ms:add(lines(step.input))
      q:process_all_available()
      local all = {}
      for _, rows in pairs(got) do
        for _, r in ipairs(rows) do all[#all + 1] = r end
      end
      assert.same(sorted(step.out), fmt(all), "step " .. i)
      assert.equal(step.rows, state_op(q).num_rows_total, "state rows after step " .. i)
      if step.dropped then
        assert.equal(step.dropped, state_op(q).num_rows_dropped_by_watermark, "step " .. i)
      end
    end
  end

  it("append mode - session window", function()
    local ms = tide.memory_stream("ts timestamp, id string")
    append_steps(ms, {}, 1, #APPEND)
    assert.equal(60 * S, q:watermark())
  end)

  it("append mode - session window, restarted in the middle on the same checkpoint", function()
    local ms = tide.memory_stream("ts timestamp, id string")
    local got = {}
    append_steps(ms, got, 1, 3)
    q:stop()
    append_steps(ms, got, 4, 5)
    q:stop()
    append_steps(ms, got, 6, 6)
  end)

  it("session window with first/last function", function()
    local ms = tide.memory_stream("ts timestamp, id string")
    local got = {}
    q = ms:frame():with_watermark("ts", "30 seconds"):group_by(session_window("ts", "10 seconds"), "id")
      :agg { "first(ts) AS first_time", "last(ts) AS last_time", "min(ts) AS min_time", "max(ts) AS max_time" }
      :write_stream(function(id, rows) got[id] = rows end, { mode = "append", checkpoint = dir })
    for _, t in ipairs { 41, 42, 40 } do ms:add { { ts = t * S, id = "a" } } end
    q:process_all_available()
    assert.same({}, got[0] or {})
    for _, t in ipairs { 100, 101 } do ms:add { { ts = t * S, id = "b" } } end
    q:process_all_available()
    local all = {}
    for _, rows in pairs(got) do
      for _, r in ipairs(rows) do all[#all + 1] = r end
    end
    -- first/last follow event time here (Spark: "non deterministic")
    assert.same({ { window_start = 40 * S, window_end = 52 * S, id = "a", first_time = 40 * S, last_time = 42 * S,
      min_time = 40 * S, max_time = 42 * S } }, all)
  end)

  it("session window - with more aggregation functions", function()
    local ms = tide.memory_stream("ts timestamp, id string, single int")
    local got = {}
    q = ms:frame():with_watermark("ts", "30 seconds"):group_by(session_window("ts", "10 seconds"), "id")
      :agg { "avg(single) AS mean_time", "sum(single) AS my_sum" }
      :write_stream(function(id, rows) got[id] = rows end, { mode = "append", checkpoint = dir })
    for _, t in ipairs { 41, 42, 40 } do ms:add { { ts = t * S, id = "a", single = t } } end
    for _, t in ipairs { 100, 101 } do ms:add { { ts = t * S, id = "b", single = t } } end
    q:process_all_available()
    local all = {}
    for _, rows in pairs(got) do
      for _, r in ipairs(rows) do all[#all + 1] = r end
    end
    assert.same({ { window_start = 40 * S, window_end = 52 * S, id = "a", mean_time = 41.0, my_sum = 123 } }, all)
  end)
end)

describe("Spark DataFrameSessionWindowingSuite", function()
  -- 2016-03-27 19:39:00 UTC
  local BASE = 1459107540 * S
  local function at(sec) return BASE + sec * S end

  it("simple session window with record at window start", function()
    local r = tide.from_rows({ { time = at(30), value = 1, id = "a" } }, "time timestamp, value int, id string")
      :group_by(session_window("time", "10 seconds")):agg { "count(*) AS counts" }:collect()
    assert.same({ { window_start = at(30), window_end = at(40), counts = 1 } }, r)
  end)

  it("session window groupBy statement", function()
    local r = tide.from_rows({ { time = at(34), value = 1, id = "a" }, { time = at(56), value = 2, id = "a" },
      { time = at(27), value = 4, id = "b" } }, "time timestamp, value int, id string")
      :group_by(session_window("time", "10 seconds")):agg { "count(*) AS counts" }:order_by("window_start")
      :collect()
    assert.same({ 2, 1 }, { r[1].counts, r[2].counts })
  end)

  local five = {
    { time = at(34), value = 1, value2 = 2, id = "a" }, { time = at(39), value = 1, value2 = 2, id = "a" },
    { time = at(56), value = 2, value2 = 4, id = "a" }, { time = at(64), value = 2, value2 = 4, id = "a" },
    { time = at(27), value = 4, value2 = 8, id = "b" },
  }
  local five_schema = "time timestamp, value int, value2 int, id string"

  local function rows_of(frame, cols)
    local out = {}
    for i, r in ipairs(frame:order_by("window_start"):collect()) do
      local t = {}
      for j, c in ipairs(cols) do t[j] = r[c] end
      out[i] = t
    end
    return out
  end

  it("session window groupBy with multiple keys statement", function()
    local g = tide.from_rows(five, five_schema):group_by(session_window("time", "10 seconds"), "id")
      :agg { "count(*) AS counts", "sum(value) AS sum" }
    assert.same({ { at(27), at(37), "b", 1, 4 }, { at(34), at(49), "a", 2, 2 }, { at(56), at(74), "a", 2, 4 } },
      rows_of(g, { "window_start", "window_end", "id", "counts", "sum" }))
  end)

  it("session window groupBy with multiple keys statement - one distinct", function()
    -- Spark's sum_distinct(value): here count_distinct, the distinct aggregate tide has
    local g = tide.from_rows(five, five_schema):group_by(session_window("time", "10 seconds"), "id")
      :agg { "count(*) AS counts", "count_distinct(value) AS nd" }
    assert.same({ { at(27), at(37), "b", 1, 1 }, { at(34), at(49), "a", 2, 1 }, { at(56), at(74), "a", 2, 1 } },
      rows_of(g, { "window_start", "window_end", "id", "counts", "nd" }))
  end)

  it("session window groupBy with multiple keys statement - keys overlapped with sessions", function()
    local g = tide.from_rows({ { time = at(34), value = 1, id = "a" }, { time = at(39), value = 1, id = "b" },
      { time = at(40), value = 2, id = "a" }, { time = at(45), value = 2, id = "b" },
      { time = at(27), value = 4, id = "b" } }, "time timestamp, value int, id string")
      :group_by(session_window("time", "10 seconds"), "id"):agg { "count(*) AS counts", "sum(value) AS sum" }
    assert.same({ { at(27), at(37), "b", 1, 4 }, { at(34), at(50), "a", 2, 3 }, { at(39), at(55), "b", 2, 3 } },
      rows_of(g, { "window_start", "window_end", "id", "counts", "sum" }))
  end)

  it("null timestamps", function()
    local rows = { { time = at(5), value = 1 }, { time = at(32), value = 2 }, { value = 3 }, { value = 4 } }
    local g = tide.from_rows(rows, "time timestamp?, value int"):group_by(session_window("time", "10 seconds"))
      :agg { "sum(value) AS v" }
    assert.same({ { 1 }, { 2 } }, rows_of(g, { "v" })) -- NULL times are dropped
  end)
end)
