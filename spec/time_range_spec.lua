-- The valid timestamp range (0000-01-01 .. 9999-12-31, docs/guide.md) and
-- the arithmetic around it (issue 18 items 1, 3, 11, 12): out-of-range times
-- are refused at ingest, watermarks saturate and stay integers across a
-- restart, windows never wrap, a failing window expansion raises, and
-- durations that would overflow are refused.

local tide = require "tide"
local core = require "tide.core"
local util = require "tide.util"
local support = require "spec.support"

local MIN64, MAX64 = math.mininteger, math.maxinteger
local TS_MIN, TS_MAX = -62167219200000, 253402300799999
local RANGE = " (outside the valid timestamp range 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z)"

local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end
local function stop_all() for _, q in ipairs(tide.queries()) do q:stop() end end

describe("the valid timestamp range", function()
  local schema = assert(core.schema("ts timestamp"))

  it("is the one util names", function()
    assert.equal(TS_MIN, util.TS_MIN)
    assert.equal(TS_MAX, util.TS_MAX)
  end)

  it("takes its bounds and refuses what lies past them from Lua rows", function()
    local b = assert(core.rows_batch(schema, { { ts = TS_MIN }, { ts = TS_MAX } }))
    assert.equal(2, b:nrows())
    b:close()
    for _, v in ipairs { MIN64, MAX64, TS_MIN - 1, TS_MAX + 1 } do
      local ok, msg = core.rows_batch(schema, { { ts = v } })
      assert.is_nil(ok)
      assert.equal(string.format("row 1: field 'ts': expected timestamp, got number %d%s", v, RANGE), msg)
    end
  end)

  it("refuses them in JSON lines, as numbers and as ISO-8601 text", function()
    local text = '{"ts":-62167219200000}\n{"ts":"9999-12-31T23:59:59.999Z"}\n'
    local b = assert(core.decode("json", schema, text, true, {}))
    assert.equal(2, b:nrows())
    b:close()
    for _, v in ipairs { "-9223372036854775808", "253402300800000", "-62167219200001", '"9999-12-31T23:59:59-01:00"',
      "-9.2e18" } do
      local ok, msg = core.decode("json", schema, '{"ts":' .. v .. '}\n', true, {})
      assert.is_nil(ok)
      assert.equal(string.format("line 1: field 'ts': expected timestamp, got %s%s", v, RANGE), msg)
    end
  end)

  it("refuses them in CSV", function()
    for _, v in ipairs { "-9223372036854775808", "253402300800000", "0000-01-01T00:00:00+00:01" } do
      local ok, msg = core.decode("csv", schema, v .. "\n", true, {})
      assert.is_nil(ok)
      assert.equal(string.format('line 1: field \'ts\': expected timestamp, got "%s"%s', v, RANGE), msg)
    end
    local b = assert(core.decode("csv", schema, "-62167219200000\n253402300799999\n", true, {}))
    assert.equal(2, b:nrows())
    b:close()
  end)

  it("refuses them when computed: a CAST or a sum outside the range raises, naming the value", function()
    local f = tide.from_rows({ { n = TS_MAX, d = 1.5 }, { n = MIN64, d = 1e300 } }, "n int, d double")
    local R = " is outside the valid timestamp range 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z"
    assert.has_error(function() f:select("CAST(n AS timestamp) AS t"):collect() end,
      "select: CAST(n AS timestamp): " .. MIN64 .. R)
    assert.has_error(function() f:select("CAST(d AS timestamp) AS t"):collect() end,
      "select: CAST(d AS timestamp): 1e+300" .. R)
    assert.has_error(function() f:select("CAST(" .. MAX64 .. " AS timestamp)") end,
      "select: CAST(" .. MAX64 .. " AS timestamp): " .. MAX64 .. R)
    -- the range's ends are timestamps, and print as ISO-8601 that reads back
    local ends = tide.from_rows({ { n = TS_MIN }, { n = TS_MAX } }, "n int")
      :select("CAST(n AS timestamp) AS t", "CAST(CAST(CAST(n AS timestamp) AS string) AS timestamp) AS back"):collect()
    assert.same({ { t = TS_MIN, back = TS_MIN }, { t = TS_MAX, back = TS_MAX } }, ends)
    -- and so does every int64 (a window's end can pass 9999-12-31), in the
    -- expanded year form the Lua and the C formatters share
    for _, v in ipairs { TS_MIN, TS_MAX, TS_MIN - 1, TS_MAX + 1, MIN64, MAX64, 0, -1 } do
      assert.equal(util.iso8601(v), core.ts_format(v))
      assert.equal(v, core.ts_parse(core.ts_format(v)))
    end
    assert.equal("+010000-01-01T00:00:00Z", core.ts_format(TS_MAX + 1))
    assert.equal("-000001-12-31T23:59:59.999Z", core.ts_format(TS_MIN - 1))
    assert.has_error(function() f:select("CAST('+010000-01-01' AS timestamp)") end)
    -- timestamp arithmetic too: past either end, or wrapping around int64
    local ts = tide.from_rows({ { t = 1000 }, { t = TS_MAX } }, "t timestamp")
    assert.has_error(function() ts:select("t + interval 1 millisecond AS u"):collect() end,
      "select: (t + INTERVAL '1' MILLISECOND): " .. (TS_MAX + 1) .. R)
    assert.has_error(function() ts:select("t + interval '" .. MAX64 .. "' millisecond AS u"):collect() end,
      "select: (t + INTERVAL '" .. MAX64 .. "' MILLISECOND): a sum past int64" .. R)
    assert.has_error(function()
      tide.from_rows({ { t = TS_MIN } }, "t timestamp"):select("t - interval 1 millisecond AS u"):collect()
    end, "select: (t - INTERVAL '1' MILLISECOND): " .. (TS_MIN - 1) .. R)
    assert.same({ { u = 1000 - 86400000 }, { u = TS_MAX - 86400000 } },
      ts:select("t - interval 1 day AS u"):collect())
    -- NaN and infinities stay NULL, as before
    assert.same({ {} }, tide.from_rows({ { d = 0 / 0 } }, "d double"):select("CAST(d AS timestamp) AS t"):collect())
  end)
end)

describe("a watermark", function()
  local ck
  before_each(function() ck = support.tmpname() .. "-ck" end)
  after_each(function() stop_all() rm(ck) end)

  -- A computed event time cannot leave the range: a CAST outside it fails
  -- the batch (naming the value) before a watermark or a window sees it.
  it("refuses a computed time near INT64_MIN, naming it, and keeps the watermark", function()
    local ms, out = tide.memory_stream("v int, k string"), {}
    local q = ms:frame():select("CAST(v AS timestamp) AS ts", "k"):with_watermark("ts", "10 seconds")
      :group_by(tide.window("ts", "5 seconds"), "k"):agg { "count(*) AS n" }
      :write_stream(function(_, rows) for _, r in ipairs(rows) do out[#out + 1] = r.k end end,
        { checkpoint = ck, mode = "append" })
    ms:add { { v = 1000, k = "a" } }
    q:process_all_available()
    assert.equal(0, q:watermark())
    ms:add { { v = MIN64, k = "sentinel" } }
    local ok, msg = pcall(q.process_all_available, q)
    assert.is_false(ok)
    assert.truthy(tostring(msg):find("failed: batch 1: select: CAST(v AS timestamp): -9223372036854775808 " ..
      "is outside the valid timestamp range 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z", 1, true), msg)
    assert.equal(0, q:watermark())
  end)

  it("stays an integer in the valid range across a restart", function()
    local ms, out = tide.memory_stream("ts timestamp, k string"), {}
    local function start()
      return ms:frame():with_watermark("ts", "10 seconds"):drop_duplicates("k", "ts")
        :write_stream(function(_, rows) for _, r in ipairs(rows) do out[#out + 1] = r.k end end,
          { checkpoint = ck })
    end
    local q = start()
    ms:add { { ts = TS_MAX, k = "last" }, { ts = 1000, k = "a" } }
    q:process_all_available()
    assert.equal(TS_MAX - 10000, q:watermark())
    q:stop()
    q = start()
    assert.equal("integer", math.type(q:watermark()))
    assert.equal(TS_MAX - 10000, q:watermark())
    q:stop()
  end)

  it("saturates at the range's ends", function()
    local ms, out = tide.memory_stream("t timestamp, k string"), {}
    local q = ms:frame():with_watermark("t", "10 seconds"):drop_duplicates("k", "t")
      :write_stream(function(_, rows) for _, r in ipairs(rows) do out[#out + 1] = r.k end end, { checkpoint = ck })
    ms:add { { t = TS_MIN, k = "x" } }
    q:process_all_available()
    assert.equal(0, q:watermark())
    ms:add { { t = TS_MAX, k = "y" } }
    q:process_all_available()
    assert.equal(TS_MAX - 10000, q:watermark())
    ms:add { { t = 5, k = "z" } }
    q:process_all_available()
    assert.equal(TS_MAX - 10000, q:watermark())
    assert.same({ "y" }, out) -- x and z are late (x: below batch 0's watermark 0)
  end)

  it("saturates at the range's high end over a window bound past it", function()
    local ms = tide.memory_stream("t timestamp")
    local q = ms:frame():select(tide.window("t", "10 s"), "t"):with_watermark("window_end", "1 ms")
      :write_stream(function() end, { checkpoint = ck })
    ms:add { { t = TS_MAX } } -- its window ends at +010000-01-01T00:00:00Z
    q:process_all_available()
    assert.equal(TS_MAX - 1, q:watermark()) -- the end taken as TS_MAX, less the 1 ms delay
  end)
end)

describe("windows", function()
  local ck
  before_each(function() ck = support.tmpname() .. "-ck" end)
  after_each(function() stop_all() rm(ck) end)

  it("refuse a size / slide ratio beyond 10000 when defined", function()
    assert.has_error(function() tide.window("ts", "1 d", "1 ms") end,
      "window: window(ts, 1d, slide 1 ms) puts each row into 86400000 windows, at most 10000 are allowed: " ..
      "use a larger slide")
    assert.equal(10000, tide.window("ts", "10 s", "1 ms").size // tide.window("ts", "10 s", "1 ms").slide)
  end)

  -- the one time outside the range a plan can make: a window's end past
  -- 9999-12-31T23:59:59.999Z, windowed again
  local function windowed_twice(f)
    return f:select(tide.window("ts", "10 s"), "ts"):select("window_end AS e"):select(tide.window("e", "10 s"), "e")
  end

  it("make a windowed select raise when expansion fails, as group_by does, in a static run", function()
    local f = windowed_twice(tide.from_rows({ { ts = 1 }, { ts = TS_MAX } }, "ts timestamp"))
    assert.has_error(function() f:collect() end,
      "Window window(e, 10s): row 2: time 253402300800000" .. RANGE)
  end)

  it("make a windowed select fail a streaming batch instead of committing it empty", function()
    local ms, got = tide.memory_stream("ts timestamp"), {}
    local q = windowed_twice(ms:frame())
      :write_stream(function(id, rows) got[#got + 1] = id .. ":" .. #rows end, { checkpoint = ck })
    ms:add { { ts = 1 }, { ts = TS_MAX } }
    assert.has_error(function() q:process_all_available() end)
    assert.same({}, got)
    local c = core.checkpoint(ck, { read_only = true })
    local _, com = c:latest()
    c:close()
    assert.is_nil(com)
  end)

  it("put the range's last instant in a window that ends after it starts", function()
    local rows = tide.from_rows({ { ts = TS_MAX }, { ts = TS_MIN } }, "ts timestamp")
      :select(tide.window("ts", "7 d", "1 d"), "ts"):collect()
    assert.equal(14, #rows)
    for _, r in ipairs(rows) do
      assert.is_true(r.window_start <= r.ts and r.ts < r.window_end, tostring(r.ts))
    end
  end)
end)

describe("durations and sizes", function()
  it("refuse what would overflow instead of wrapping", function()
    assert.has_error(function() util.duration("213503982335 d", "retention") end,
      "retention: duration '213503982335 d' is too long (at most 315569519999999 ms, about 10000 years)")
    assert.has_error(function() util.duration("106751991167301 d", "x") end)
    assert.has_error(function() util.duration(MAX64, "x") end,
      "x: duration '" .. MAX64 .. "' is too long (at most 315569519999999 ms, about 10000 years)")
    assert.equal(315569519999999, util.duration("315569519999999 ms"))
    assert.has_error(function() tide.window("ts", "213503982335 d") end)
    assert.has_error(function() util.size("9007199254740993 TB", "max") end,
      "max: invalid size '9007199254740993 TB' (use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)")
    assert.equal(2 ^ 40 * 3, util.size("3 TB"))
  end)

  it("refuse an overflowing --retention at the CLI", function()
    local dir = support.tmpname()
    local code, _, err = support.run_cmd(string.format("%s/bin/tide topic create t --data %s --schema 'v int' " ..
      "--retention '213503982335 d'", support.ROOT, dir))
    rm(dir)
    assert.equal(2, code)
    assert.truthy(err:find("duration '213503982335 d' is too long", 1, true), err)
  end)
end)
