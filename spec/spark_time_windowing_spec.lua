-- Spark's DataFrameTimeWindowingSuite
-- (sql/core/src/test/scala/org/apache/spark/sql/DataFrameTimeWindowingSuite.scala):
-- window assignment on static frames (SEMANTICS.md s.1). Spark runs each
-- scenario on string and LocalDateTime columns; tide has one timestamp type
-- (ms, UTC), so each runs once. Spark's window struct is tide's window_start
-- and window_end columns; `cast("string")` is S_fmt below.
--
-- Not ported (no tide meaning): "SPARK-36091: Support TimestampNTZ type in
-- expression TimeWindow" (Spark's two timestamp types), "No need to filter
-- windows when windowDuration is multiple of slideDuration" (an optimizer plan
-- check) and "SPARK-38227: 'start' and 'end' fields should be nullable" (the
-- nullability of Spark's window struct). The "time window in SQL ..."
-- scenarios have no SQL in tide: they run the same windows through
-- tide.window (Spark's 10000000 is a slide of 10 000 000 µs = 10 seconds).
local tide = require "tide"
local S = require "spec.spark_support"

-- "2016-03-27 19:39:30[.fff]" (UTC) -> ms since the epoch.
local function ts(s)
  local y, mo, d, h, mi, sec, frac = s:match("^(%d+)-(%d+)-(%d+)[ T](%d+):(%d+):(%d+)%.?(%d*)$")
  assert(y, s)
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (proleptic Gregorian)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  local ms = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 + tonumber(sec) * 1000
  if frac ~= "" then ms = ms + tonumber((frac .. "00"):sub(1, 3)) end
  return ms
end

-- ms -> Spark's timestamp-to-string cast ("2016-03-27 09:00:00.4").
local function fmt(ms)
  local s = os.date("!%Y-%m-%d %H:%M:%S", ms // 1000)
  local f = ms % 1000
  if f ~= 0 then s = s .. (string.format(".%03d", f):gsub("0+$", "")) end
  return s
end

local function rows(spec, ...)
  local names = { ... }
  local out = {}
  for i, t in ipairs(spec) do
    local r = {}
    for j, n in ipairs(names) do
      local v = t[j]
      if n == "time" and v ~= nil then v = ts(v) end
      r[n] = v
    end
    out[i] = r
  end
  return out
end

local function same_multiset(expected, got)
  local function key(t) return require("tide.util").json_encode(t) end
  local a, b = {}, {}
  for i, t in ipairs(expected) do a[i] = key(t) end
  for i, t in ipairs(got) do b[i] = key(t) end
  table.sort(a)
  table.sort(b)
  assert.same(a, b)
end

local three = {
  { "2016-03-27 19:39:34", 1, "a" }, { "2016-03-27 19:39:56", 2, "a" }, { "2016-03-27 19:39:27", 4, "b" },
}
local function three_df()
  return tide.from_rows(rows(three, "time", "value", "id"), "time timestamp, value int, id string")
end

local function start_end_counts(f)
  local out = {}
  for i, r in ipairs(f:collect()) do out[i] = { fmt(r.window_start), fmt(r.window_end), r.counts } end
  return out
end

local function start_end_value(f)
  local out = {}
  for i, r in ipairs(f:collect()) do out[i] = { fmt(r.window_start), fmt(r.window_end), r.value } end
  return out
end

local function column(f, name)
  local out = {}
  for i, r in ipairs(f:collect()) do out[i] = { r[name] } end
  return out
end

describe("Spark DataFrameTimeWindowingSuite", function()
  after_each(S.cleanup)

  -- DataFrameTimeWindowingSuite: test("simple tumbling window with record at window start")
  it("simple tumbling window with record at window start", function()
    local df = tide.from_rows(rows({ { "2016-03-27 19:39:30", 1, "a" } }, "time", "value", "id"),
      "time timestamp, value int, id string")
    assert.same({ { "2016-03-27 19:39:30", "2016-03-27 19:39:40", 1 } },
      start_end_counts(df:group_by(tide.window("time", "10 seconds")):agg { "count(*) AS counts" }
        :order_by("window_start")))
  end)

  -- DataFrameTimeWindowingSuite: test("SPARK-21590: tumbling window using negative start time")
  it("SPARK-21590: tumbling window using negative start time", function()
    local df = tide.from_rows(rows({ { "2016-03-27 19:39:30", 1, "a" }, { "2016-03-27 19:39:25", 2, "a" } },
      "time", "value", "id"), "time timestamp, value int, id string")
    assert.same({ { "2016-03-27 19:39:25", "2016-03-27 19:39:35", 2 } },
      start_end_counts(df:group_by(tide.window("time", "10 seconds", "10 seconds", "-5 seconds"))
        :agg { "count(*) AS counts" }:order_by("window_start")))
  end)

  -- DataFrameTimeWindowingSuite: test("tumbling window groupBy statement")
  it("tumbling window groupBy statement", function()
    same_multiset({ { 1 }, { 1 }, { 1 } },
      column(three_df():group_by(tide.window("time", "10 seconds")):agg { "count(*) AS counts" }
        :order_by("window_start"), "counts"))
  end)

  -- DataFrameTimeWindowingSuite: test("tumbling window groupBy statement with startTime")
  it("tumbling window groupBy statement with startTime", function()
    same_multiset({ { 1 }, { 1 }, { 1 } },
      column(three_df():group_by(tide.window("time", "10 seconds", "10 seconds", "5 seconds"), "id")
        :agg { "count(*) AS counts" }:order_by("window_start"), "counts"))
  end)

  -- DataFrameTimeWindowingSuite: test("SPARK-21590: tumbling window groupBy statement with negative startTime")
  it("SPARK-21590: tumbling window groupBy statement with negative startTime", function()
    same_multiset({ { 1 }, { 1 }, { 1 } },
      column(three_df():group_by(tide.window("time", "10 seconds", "10 seconds", "-5 seconds"), "id")
        :agg { "count(*) AS counts" }:order_by("window_start"), "counts"))
  end)

  -- DataFrameTimeWindowingSuite: test("tumbling window with multi-column projection")
  it("tumbling window with multi-column projection", function()
    same_multiset({
      { "2016-03-27 19:39:20", "2016-03-27 19:39:30", 4 },
      { "2016-03-27 19:39:30", "2016-03-27 19:39:40", 1 },
      { "2016-03-27 19:39:50", "2016-03-27 19:40:00", 2 },
    }, start_end_value(three_df():select(tide.window("time", "10 seconds"), "value"):order_by("window_start")))
  end)

  -- DataFrameTimeWindowingSuite: test("sliding window grouping")
  it("sliding window grouping", function()
    -- 2016-03-27 19:39:27 UTC -> 4 bins
    -- 2016-03-27 19:39:34 UTC -> 3 bins
    -- 2016-03-27 19:39:56 UTC -> 3 bins
    assert.same({
      { "2016-03-27 19:39:18", "2016-03-27 19:39:28", 1 },
      { "2016-03-27 19:39:21", "2016-03-27 19:39:31", 1 },
      { "2016-03-27 19:39:24", "2016-03-27 19:39:34", 1 },
      { "2016-03-27 19:39:27", "2016-03-27 19:39:37", 2 },
      { "2016-03-27 19:39:30", "2016-03-27 19:39:40", 1 },
      { "2016-03-27 19:39:33", "2016-03-27 19:39:43", 1 },
      { "2016-03-27 19:39:48", "2016-03-27 19:39:58", 1 },
      { "2016-03-27 19:39:51", "2016-03-27 19:40:01", 1 },
      { "2016-03-27 19:39:54", "2016-03-27 19:40:04", 1 },
    }, start_end_counts(three_df():group_by(tide.window("time", "10 seconds", "3 seconds", "0 seconds"))
      :agg { "count(*) AS counts" }:order_by("window_start")))
  end)

  -- DataFrameTimeWindowingSuite: test("sliding window projection")
  it("sliding window projection", function()
    assert.same({ { 4 }, { 4 }, { 4 }, { 4 }, { 1 }, { 1 }, { 1 }, { 2 }, { 2 }, { 2 } },
      column(three_df():select(tide.window("time", "10 seconds", "3 seconds", "0 seconds"), "value")
        :order_by("window_start", "value DESC"), "value"))
  end)

  -- DataFrameTimeWindowingSuite: test("windowing combined with explode expression")
  it("windowing combined with explode expression", function()
    local df = tide.from_rows({
      { time = ts("2016-03-27 19:39:34"), value = 1, ids = { "a", "b" } },
      { time = ts("2016-03-27 19:39:56"), value = 2, ids = { "a", "c", "d" } },
    }, "time timestamp, value int, ids json")
    local exploded = df:select(tide.window("time", "10 seconds"), "value", "ids")
      :flat_map(function(r, emit)
        for _, id in ipairs(r.ids) do
          emit { window_start = r.window_start, window_end = r.window_end, value = r.value, id = id }
        end
      end, "window_start timestamp, window_end timestamp, value int, id string")
    -- first window exploded to two rows for "a", and "b", second window exploded to 3 rows
    same_multiset({ { 1 }, { 1 }, { 2 }, { 2 }, { 2 } }, column(exploded:order_by("window_start"), "value"))
  end)

  local nulls = { { "2016-03-27 09:00:05", 1 }, { "2016-03-27 09:00:32", 2 }, { nil, 3 }, { nil, 4 } }

  -- DataFrameTimeWindowingSuite: test("null timestamps")
  it("null timestamps", function()
    local df = tide.from_rows(rows(nulls, "time", "value"), "time timestamp?, value int")
    -- null columns are dropped
    assert.same({ { 1 }, { 2 } },
      column(df:select(tide.window("time", "10 seconds"), "value"):order_by("window_start"), "value"))
  end)

  -- DataFrameTimeWindowingSuite: test("time window joins")
  it("time window joins", function()
    local df = tide.from_rows(rows(nulls, "time", "value"), "time timestamp?, value int")
    local df2 = tide.from_rows(
      rows({ { "2016-03-27 09:00:02", 3 }, { "2016-03-27 09:00:35", 6 } }, "time", "othervalue"),
      "time timestamp, othervalue int")
    local joined = df:select(tide.window("time", "10 seconds"), "value")
      :join(df2:select(tide.window("time", "10 seconds"), "othervalue"), { "window_start", "window_end" }, "inner")
      :group_by("window_start", "window_end"):agg { "sum(value) AS v", "sum(othervalue) AS o" }
      :order_by("window_start")
    local totals = {}
    for i, r in ipairs(joined:collect()) do totals[i] = { r.v + r.o } end
    assert.same({ { 4 }, { 8 } }, totals)
  end)

  -- DataFrameTimeWindowingSuite: test("negative timestamps")
  it("negative timestamps", function()
    local df = tide.from_rows(rows({ { "1970-01-01 00:00:02", 1 }, { "1970-01-01 00:00:12", 2 } }, "time", "value"),
      "time timestamp, value int")
    assert.same({
      { "1969-12-31 23:59:55", "1970-01-01 00:00:05", 1 },
      { "1970-01-01 00:00:05", "1970-01-01 00:00:15", 2 },
    }, start_end_value(df:select(tide.window("time", "10 seconds", "10 seconds", "5 seconds"), "value")
      :order_by("window_start")))
  end)

  -- DataFrameTimeWindowingSuite: test("multiple time windows in a single operator throws nice exception")
  it("multiple time windows in a single operator throws nice exception", function()
    local df = tide.from_rows(rows({ { "2016-03-27 09:00:02", 3 }, { "2016-03-27 09:00:35", 6 } }, "time", "value"),
      "time timestamp, value int")
    local ok, err = pcall(function()
      return df:select(tide.window("time", "10 seconds"), tide.window("time", "15 seconds")):collect()
    end)
    assert.is_false(ok)
    assert.matches("window", err)
  end)

  -- DataFrameTimeWindowingSuite: test("aliased windows")
  it("aliased windows", function()
    local df = tide.from_rows({
      { time = ts("2016-03-27 19:39:34"), value = 1 }, { time = ts("2016-03-27 19:39:56"), value = 2 },
    }, "time timestamp, value int")
    -- Spark names the window struct "time_window"; tide's window columns are
    -- window_start and window_end.
    assert.same({ { 1 }, { 2 } },
      column(df:select(tide.window("time", "10 seconds"), "value"):order_by("window_start"), "value"))
  end)

  -- DataFrameTimeWindowingSuite: test("millisecond precision sliding windows")
  it("millisecond precision sliding windows", function()
    local df = tide.from_rows(rows({ { "2016-03-27 09:00:00.41", 3 }, { "2016-03-27 09:00:00.62", 6 },
      { "2016-03-27 09:00:00.715", 8 } }, "time", "value"), "time timestamp, value int")
    assert.same({
      { "2016-03-27 09:00:00.24", "2016-03-27 09:00:00.44", 1 },
      { "2016-03-27 09:00:00.28", "2016-03-27 09:00:00.48", 1 },
      { "2016-03-27 09:00:00.32", "2016-03-27 09:00:00.52", 1 },
      { "2016-03-27 09:00:00.36", "2016-03-27 09:00:00.56", 1 },
      { "2016-03-27 09:00:00.4", "2016-03-27 09:00:00.6", 1 },
      { "2016-03-27 09:00:00.44", "2016-03-27 09:00:00.64", 1 },
      { "2016-03-27 09:00:00.48", "2016-03-27 09:00:00.68", 1 },
      { "2016-03-27 09:00:00.52", "2016-03-27 09:00:00.72", 2 },
      { "2016-03-27 09:00:00.56", "2016-03-27 09:00:00.76", 2 },
      { "2016-03-27 09:00:00.6", "2016-03-27 09:00:00.8", 2 },
      { "2016-03-27 09:00:00.64", "2016-03-27 09:00:00.84", 1 },
      { "2016-03-27 09:00:00.68", "2016-03-27 09:00:00.88", 1 },
    }, start_end_counts(df:group_by(tide.window("time", "200 ms", "40 ms", "0 ms"))
      :agg { "count(*) AS counts" }:order_by("window_start")))
  end)

  local function temp_table()
    return tide.from_rows(rows({ { "2016-03-27 19:39:34", 1 }, { "2016-03-27 19:39:56", 2 },
      { "2016-03-27 19:39:27", 4 } }, "time", "value"), "time timestamp, value int")
  end

  -- DataFrameTimeWindowingSuite: test("time window in SQL with single string expression")
  it("time window in SQL with single string expression", function()
    same_multiset({
      { "2016-03-27 19:39:20", "2016-03-27 19:39:30", 4 },
      { "2016-03-27 19:39:30", "2016-03-27 19:39:40", 1 },
      { "2016-03-27 19:39:50", "2016-03-27 19:40:00", 2 },
    }, start_end_value(temp_table():select(tide.window("time", "10 seconds"), "value")))
  end)

  -- DataFrameTimeWindowingSuite: test("time window in SQL with two expressions")
  it("time window in SQL with two expressions", function()
    same_multiset({
      { "2016-03-27 19:39:20", "2016-03-27 19:39:30", 4 },
      { "2016-03-27 19:39:30", "2016-03-27 19:39:40", 1 },
      { "2016-03-27 19:39:50", "2016-03-27 19:40:00", 2 },
    }, start_end_value(temp_table():select(tide.window("time", "10 seconds", 10000), "value")))
  end)

  -- DataFrameTimeWindowingSuite: test("time window in SQL with three expressions")
  it("time window in SQL with three expressions", function()
    same_multiset({
      { "2016-03-27 19:39:25", "2016-03-27 19:39:35", 1 },
      { "2016-03-27 19:39:25", "2016-03-27 19:39:35", 4 },
      { "2016-03-27 19:39:55", "2016-03-27 19:40:05", 2 },
    }, start_end_value(temp_table():select(tide.window("time", "10 seconds", 10000, "5 seconds"), "value")))
  end)

  -- DataFrameTimeWindowingSuite: test("SPARK-21590: time window in SQL with three expressions including negative
  -- start time")
  it("SPARK-21590: time window in SQL with three expressions including negative start time", function()
    same_multiset({
      { "2016-03-27 19:39:25", "2016-03-27 19:39:35", 1 },
      { "2016-03-27 19:39:25", "2016-03-27 19:39:35", 4 },
      { "2016-03-27 19:39:55", "2016-03-27 19:40:05", 2 },
    }, start_end_value(temp_table():select(tide.window("time", "10 seconds", 10000, "-5 seconds"), "value")))
  end)
end)
