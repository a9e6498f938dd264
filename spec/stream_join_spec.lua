-- tide.stream_join: stream-stream joins beyond Spark's suite (spec/
-- spark_streaming_join_spec.lua): the interval literals their conditions
-- use, what the analyzer refuses and why, bad input, the state in the
-- checkpoint and the state metrics.
local tide = require "tide"
local core = require "tide.core"
local support = require "spec.support"

local function refusal(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return tostring(err):gsub("^[^:]*:%d+: ", "")
end

-- impressions and clicks, as in the guide
local function ad_streams()
  local imps = tide.memory_stream("imp_ad string, imp_ts timestamp, campaign string")
  local clicks = tide.memory_stream("click_ad string, click_ts timestamp, user string")
  return imps, clicks
end

local function watermarked(imps, clicks)
  return imps:frame():with_watermark("imp_ts", "10 minutes"), clicks:frame():with_watermark("click_ts", "20 minutes")
end

local RANGE = "click_ad = imp_ad AND click_ts BETWEEN imp_ts AND imp_ts + interval 1 hour"

describe("interval literals", function()
  local s = core.schema("t timestamp, u timestamp, i int")
  local function text(e) return assert(core.expr(e, s)):text() end
  local function err(e) return select(2, core.expr(e, s)) end
  local function eval(e, t)
    local b = core.rows_batch(s, { { t = t, u = 0, i = 1 } })
    local out = core.project(b, { assert(core.expr(e, s)) }, core.schema("x timestamp?"))
    return out:rows()[1].x
  end

  it("read as Spark writes them, in any case, singular or plural, quoted or not", function()
    assert.equal("(t + INTERVAL '1' HOUR)", text("t + interval 1 hour"))
    assert.equal("(t - INTERVAL '10' MINUTE)", text("t - INTERVAL '10' minutes"))
    assert.equal("(t + INTERVAL '90' MINUTE)", text("t + interval 1 hour 30 minutes"))
    assert.equal("(t + INTERVAL '62' MINUTE)", text("t + interval '1 hour 2 minutes'"))
    assert.equal("(t + INTERVAL '1500' MILLISECOND)", text("t + interval 1.5 seconds"))
    assert.equal("(t + INTERVAL '2' WEEK)", text("t + interval 14 days"))
    assert.equal("(INTERVAL '-5' SECOND + t)", text("interval -5 seconds + t"))
  end)

  it("add to and subtract from timestamps, ms exact", function()
    assert.equal(3600000 + 7, eval("t + interval 1 hour", 7))
    assert.equal(1000 - 250, eval("t - interval 250 milliseconds", 1000))
    assert.equal(7 + 60000 + 1000, eval("t + (interval 1 minute + interval 1 second)", 7))
    assert.equal(10, eval("interval 3 milliseconds + t - interval 3 milliseconds", 10))
  end)

  it("print as text that reads back the same", function()
    local t1 = text("t BETWEEN u - interval 30 seconds AND u + interval 3 minutes 30 seconds")
    assert.equal(t1, text(t1))
  end)

  it("are refused anywhere but beside a timestamp, naming the expression", function()
    assert.equal("an interval can only be added to or subtracted from a timestamp: INTERVAL '1' HOUR",
      err("interval 1 hour"))
    assert.equal("an interval can only be added to or subtracted from a timestamp: (i + INTERVAL '1' HOUR)",
      err("i + interval 1 hour"))
    assert.equal("an interval can only be added to or subtracted from a timestamp: (INTERVAL '1' HOUR - t)",
      err("interval 1 hour - t"))
    assert.equal("an interval can only be added to or subtracted from a timestamp: (t < INTERVAL '1' HOUR)",
      err("t < interval 1 hour"))
  end)

  it("refuse units without a fixed length and bad numbers", function()
    assert.equal("at position 16: unknown interval unit 'month' (units: week, day, hour, minute, second, " ..
      "millisecond; months and years are not supported, their length varies)", err("t + interval 1 month"))
    assert.equal("at position 14: interval '0.5' is not a whole number of milliseconds in range",
      err("t + interval 0.5 millisecond"))
    assert.equal("at position 14: expected a number in the interval, got 'x'", err("t + interval 'x' hour"))
    assert.equal("at position 14: expected 'n unit' parts in the quoted interval", err("t + interval '1 hour 2'"))
    assert.matches("expected an interval unit", err("t + interval 1"))
  end)

  it("leave a column named interval alone", function()
    local s2 = core.schema("interval int")
    assert.equal("(interval + 1)", assert(core.expr("interval + 1", s2)):text())
  end)
end)

describe("stream-stream joins", function()
  local dir
  before_each(function() dir = support.tmpname() end)
  after_each(function()
    for _, q in ipairs(tide.queries()) do q:stop() end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("join impressions with clicks within an hour, left outer rows once the watermark passes", function()
    local imps, clicks = ad_streams()
    local i, c = watermarked(imps, clicks)
    local out = {}
    local q = i:join(c, RANGE, "left"):write_stream(function(_, rows)
      for _, r in ipairs(rows) do out[#out + 1] = { r.imp_ad, r.user } end
    end, { checkpoint = dir })
    local T = 1700000000000
    imps:add { { imp_ad = "a", imp_ts = T, campaign = "x" }, { imp_ad = "b", imp_ts = T, campaign = "x" } }
    clicks:add { { click_ad = "a", click_ts = T + 60000, user = "u1" } }
    q:process_all_available()
    assert.same({ { "a", "u1" } }, out)
    -- watermark: min(imps 3h - 10 min, clicks 3h - 20 min) > T + 1h: b will get no click
    imps:add { { imp_ad = "c", imp_ts = T + 3 * 3600000, campaign = "x" } }
    clicks:add { { click_ad = "c", click_ts = T + 3 * 3600000, user = "u2" } }
    q:process_all_available()
    table.sort(out, function(x, y) return x[1] < y[1] end)
    assert.same({ { "a", "u1" }, { "b", nil }, { "c", "u2" } }, out)
    local ops = q:last_progress().state_operators
    assert.equal("join", ops[1].name)
    assert.equal(2, ops[1].num_rows_total) -- c and its click
  end)

  it("keeps its state in the checkpoint: a restart matches rows from before it", function()
    local imps, clicks = ad_streams()
    local i, c = watermarked(imps, clicks)
    local f = i:join(c, RANGE)
    local out = {}
    local function sink(_, rows) for _, r in ipairs(rows) do out[#out + 1] = r.user end end
    local q = f:write_stream(sink, { checkpoint = dir })
    imps:add { { imp_ad = "a", imp_ts = 1000, campaign = "x" } }
    q:process_all_available()
    q:stop()
    local ck = core.checkpoint(dir, { read_only = true })
    local n = 0
    for key in ck:state("join1") do
      n = n + 1
      assert.equal(9, #key)
    end
    ck:close()
    assert.equal(1, n)
    q = f:write_stream(sink, { checkpoint = dir })
    clicks:add { { click_ad = "a", click_ts = 2000, user = "u1" } }
    q:process_all_available()
    assert.same({ "u1" }, out)
  end)

  it("refuses outer joins without a watermark and a range condition, with Spark's reason", function()
    local imps, clicks = ad_streams()
    local msg = "join: a stream-stream left outer join is not supported without a watermark in the join keys, " ..
      "or a watermark on the nullable side and an appropriate range condition (as in Spark): call with_watermark " ..
      "on both sides and bound the left side's event time by the other's, as in \"click_ts BETWEEN imp_ts AND " ..
      "imp_ts + interval 1 hour\""
    local i, c = imps:frame(), clicks:frame()
    assert.equal(msg, refusal(i.join, i, c, RANGE, "left"))
    local wi, wc = watermarked(imps, clicks)
    assert.equal(msg, refusal(wi.join, wi, wc, "click_ad = imp_ad", "left"))
    -- a bound in the wrong direction does not bound the left side's state
    assert.equal(msg, refusal(wi.join, wi, wc, "click_ad = imp_ad AND click_ts >= imp_ts", "left"))
    assert.matches("stream%-stream right outer join is not supported without a watermark",
      refusal(wi.join, wi, wc, "click_ad = imp_ad AND click_ts <= imp_ts", "right"))
    assert.matches("stream%-stream full outer join is not supported",
      refusal(wi.join, wi, wc, "click_ad = imp_ad", "full"))
    assert.matches("stream%-stream left semi join is not supported",
      refusal(wi.join, wi, wc, "click_ad = imp_ad", "left_semi"))
    -- inner joins need neither
    assert.is_table(i:join(c, "click_ad = imp_ad"))
  end)

  it("refuses update and complete mode (as in Spark)", function()
    local imps, clicks = ad_streams()
    local i, c = watermarked(imps, clicks)
    local f = i:join(c, RANGE)
    assert.equal("write_stream(foreach_batch): a join between two streams is supported only in append mode " ..
      "(as in Spark), not in update mode", refusal(f.write_stream, f, function() end, { mode = "update" }))
    local g = f:group_by("campaign"):count()
    assert.matches("supported only in append mode %(as in Spark%), not in complete mode",
      refusal(g.write_stream, g, function() end, { mode = "complete" }))
  end)

  it("refuses a stateful operator after a join with a time range, and a join after an aggregation", function()
    local imps, clicks = ad_streams()
    local i, c = watermarked(imps, clicks)
    local f = i:join(c, RANGE):group_by(tide.window("imp_ts", "1 hour")):count()
    assert.equal("write_stream(foreach_batch): Aggregate [window(imp_ts, 1h)] [count(*) AS count] after " ..
      "StreamingSymmetricHashJoin " ..
      "inner [" .. RANGE .. "] is not supported (as in Spark before 3.4): a join with a time range condition can " ..
      "emit rows older than the watermark, which the later stateful operator would drop as late; run it per " ..
      "batch in a foreach_batch sink, or write the join to a topic and read that in a second query",
      refusal(f.write_stream, f, function() end))
    local d = i:join(c, RANGE):drop_duplicates("user")
    assert.matches("after StreamingSymmetricHashJoin inner", refusal(d.write_stream, d, function() end))
    -- without a range condition a later operator is fine (Spark allows it)
    local ok = i:join(c, "click_ad = imp_ad"):drop_duplicates("user")
      :write_stream(function() end, { checkpoint = dir })
    ok:stop()
    -- a join after an aggregation
    local counted = i:group_by("imp_ad", tide.window("imp_ts", "1 hour")):count()
      :select("imp_ad AS ad", "window_end AS w", "count")
    local j = counted:join(c, "ad = click_ad")
    assert.matches("after a streaming aggregation is not supported %(as in Spark before 3%.4%)",
      refusal(j.write_stream, j, function() end))
  end)

  it("refuses bad arguments, naming what is wrong", function()
    local imps, clicks = ad_streams()
    local i, c = imps:frame(), clicks:frame()
    assert.equal("join: bad argument #3: how must be inner, left, right, full or left_semi, got 'cross'",
      refusal(i.join, i, c, "click_ad = imp_ad", "cross"))
    assert.equal("join: bad argument #3: how must be inner, left, right, full or left_semi, got number",
      refusal(i.join, i, c, "click_ad = imp_ad", 1))
    assert.equal("join: a stream-stream join without an equality predicate is not supported (as in Spark): the " ..
      "condition needs a column of one side = a column of the other, got (click_ts > imp_ts)",
      refusal(i.join, i, c, "click_ts > imp_ts"))
    assert.matches("join: unknown column 'clk_ad'", refusal(i.join, i, c, "clk_ad = imp_ad"))
    assert.equal("join: unknown column 'x' on the left (columns: imp_ad, imp_ts, campaign)",
      refusal(i.join, i, c, { "x" }))
    assert.equal("join: the condition must be bool, got string: imp_ad", refusal(i.join, i, c, "imp_ad"))
    local i2 = i:select("imp_ad AS click_ad", "imp_ts")
    assert.equal("join: column 'click_ad' is on both sides; rename one first (select ... AS ...) so that the " ..
      "condition can name it", refusal(i2.join, i2, c, "click_ad = click_ad"))
    local st = tide.from_rows({ { click_ad = "a" } }, "click_ad string")
    assert.equal("join: a stream joins a static frame as its left side: put the stream on the left " ..
      "(stream:join(static, on, how))", refusal(st.join, st, i2, "click_ad"))
    assert.equal("join: a condition for on is for joins of two streams; with a static side, join on columns " ..
      "named alike", refusal(i2.join, i2, st, "click_ad = click_ad"))
    local wi, wc = watermarked(imps, clicks)
    local f = wi:join(wc, RANGE)
    assert.equal("write_stream(foreach_batch): late_rows: a stream-stream join drops its late rows and counts " ..
      "them, but does not hand them on (its two sides have different columns)",
      refusal(f.write_stream, f, function() end, { late_rows = { topic = "late" } }))
  end)

  it("joins on columns named alike, a full outer join taking the key from the side that has it", function()
    local a = tide.memory_stream("k int, t timestamp, x string")
    local b = tide.memory_stream("k int, t timestamp, y string")
    local fa = a:frame():with_watermark("t", "0 seconds")
    local fb = b:frame():with_watermark("t", "0 seconds")
    -- the event time among the keys: a watermark in the join keys
    local f = fa:join(fb, { "k", "t" }, "full")
    assert.same({ { "k", "int?" }, { "t", "timestamp?" }, { "x", "string?" }, { "y", "string?" } }, f:schema())
    local out = {}
    local q = f:write_stream(function(_, rows)
      for _, r in ipairs(rows) do out[#out + 1] = { r.k, r.t, r.x, r.y } end
    end, { checkpoint = dir })
    a:add { { k = 1, t = 1000, x = "a" } }
    b:add { { k = 2, t = 1000, y = "b" }, { k = 1, t = 1000, y = "c" } }
    q:process_all_available()
    a:add { { k = 9, t = 50000, x = "later" } }
    b:add { { k = 9, t = 50000, y = "later" } }
    q:process_all_available()
    table.sort(out, function(x, y) return x[1] < y[1] end)
    assert.same({ { 1, 1000, "a", "c" }, { 2, 1000, nil, "b" }, { 9, 50000, "later", "later" } }, out)
    -- on a column only: no watermark in the keys, no range: refused for outer joins
    local fb2 = b:frame():select("k", "t AS t2", "y"):with_watermark("t2", "0 seconds")
    assert.matches("full outer join is not supported", refusal(fa.join, fa, fb2, "k", "full"))
  end)
end)
