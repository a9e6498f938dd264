-- Event time in the engine, beyond the Spark ports (spec/spark_*_spec.lua):
-- the late_rows topic, restarts around no-data batches, damaged state,
-- progress event-time figures, dedup chained before a windowed count, and
-- the analyzer's refusals. Memory streams, real checkpoints, real stores.

local tide = require "tide"
local core = require "tide.core"
local support = require "spec.support"

local function ckdir() return support.tmpname() .. "-ck" end
local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end

local function stop_all()
  for _, q in ipairs(tide.queries()) do q:stop() end
end

-- rows {ts = s * 1000, k = key} for seconds s
local function at(k, ...)
  local rows = {}
  for i, s in ipairs { ... } do rows[i] = { ts = s * 1000, k = k } end
  return rows
end

-- A foreach_batch sink recording "start:count" per batch id.
local function recorder()
  local batches = {}
  local function sink(id, rows)
    local out = {}
    for _, r in ipairs(rows) do out[#out + 1] = string.format("%d:%d", r.window_start // 1000, r.n) end
    table.sort(out)
    batches[id] = table.concat(out, " ")
  end
  return sink, batches
end

local function windowed(ms)
  return ms:frame():with_watermark("ts", "10 seconds")
    :group_by(tide.window("ts", "5 seconds")):agg { "count(*) AS n" }
end

describe("event time", function()
  after_each(stop_all)

  it("sends the rows a window drops as late to the late_rows topic, once per batch", function()
    local dir, ck = support.tmpname(), ckdir()
    local db = tide.open(dir)
    local ms = tide.memory_stream("ts timestamp, k string")
    local record = recorder()
    local fail_next, failed = false, nil
    local function sink(id, rows)
      if fail_next then
        fail_next, failed = false, id
        error("the sink is down")
      end
      record(id, rows)
    end
    local function start()
      return windowed(ms):write_stream(sink, { mode = "append", checkpoint = ck,
        late_rows = { topic = "late", store = db } })
    end
    local q = start()
    ms:add(at("a", 10, 11, 30))   -- watermark 20 after this batch
    q:process_all_available()
    ms:add(at("b", 12, 14, 26))   -- 12 and 14: their window [10,15) ended at or before 20
    fail_next = true
    assert.has_error(function() q:process_all_available() end)
    assert.truthy(q:exception():find("the sink is down", 1, true))
    -- the failed batch runs again: its late rows are not appended twice
    q = start()
    q:process_all_available()
    local p = q:recent_progress()[1]
    assert.equal(failed, p.batch_id)
    assert.equal(3, p.num_input_rows)
    assert.equal(1, p.state_operators[1].num_rows_dropped_by_watermark) -- one (window) group
    q:stop()
    local got = {}
    for r in db:topic("late"):read() do got[#got + 1] = string.format("%s@%d", r.k, r.ts // 1000) end
    assert.same({ "b@12", "b@14" }, got)
    local fields = {}
    for i, x in ipairs(db:topic("late"):info().schema) do fields[i] = x[1] end
    assert.same({ "ts", "k" }, fields)
    db:close()
    rm(dir)
    rm(ck)
  end)

  it("refuses late_rows without a watermark, or without its topic", function()
    local ms = tide.memory_stream("ts timestamp, k string")
    assert.has_error(function()
      ms:frame():group_by("k"):count():write_stream("memory", { name = "x", mode = "update",
        late_rows = { topic = "late" } })
    end, "write_stream(memory): late_rows: no stateful operator of this query has a watermark, so no row can be late")
    assert.has_error(function()
      windowed(ms):write_stream("memory", { name = "x", mode = "append", late_rows = {} })
    end, "write_stream(memory): late_rows: option 'topic' is required (the dead-letter topic's name)")
    assert.has_error(function()
      windowed(ms):write_stream("memory", { name = "x", mode = "append", late_rows = { topik = "x" } })
    end)
  end)

  it("runs the no-data batch it owed after a restart, and emits what an uninterrupted run emits", function()
    local ck = ckdir()
    local ms = tide.memory_stream("ts timestamp, k string")
    local sink, batches = recorder()
    local q = windowed(ms):write_stream(sink, { mode = "append", checkpoint = ck, no_data_batches = false })
    ms:add(at("a", 10, 11, 12, 30))
    q:process_all_available()
    assert.same({ [0] = "" }, batches)
    q:stop()
    -- the same query with no-data batches: the watermark (20) moved after
    -- batch 0, so batch 1 runs without input and emits [10,15)
    q = windowed(ms):write_stream(sink, { mode = "append", checkpoint = ck })
    q:process_all_available()
    assert.equal("10:3", batches[1])
    assert.equal(0, q:last_progress().num_input_rows)
    assert.equal(20000, q:last_progress().event_time.watermark)
    q:stop()
    rm(ck)
  end)

  it("reports the event times of each batch: min, max, avg and the watermark it ran with", function()
    local ms = tide.memory_stream("ts timestamp, k string")
    local q = windowed(ms):write_stream(function() end, { mode = "update" })
    ms:add(at("a", 10, 20, 33))
    q:process_all_available()
    local e = q:recent_progress()[1].event_time
    assert.same({ watermark = 0, min = 10000, max = 33000, avg = 21000 }, e)
    assert.equal(23000, q:watermark())
    ms:add(at("a", 1)) -- late, but counted in the batch's event times
    q:process_all_available()
    local ps = q:recent_progress()
    e = ps[#ps].event_time
    assert.same({ watermark = 23000, min = 1000, max = 1000, avg = 1000 }, e)
    assert.equal(23000, q:watermark(), "the watermark never moves back")
    q:stop()
    -- without with_watermark: no watermark at all
    local q2 = ms:frame():write_stream(function() end)
    q2:process_all_available()
    assert.is_nil(q2:watermark())
    assert.same({}, q2:last_progress().event_time)
    q2:stop()
  end)

  -- The aggregation runs a where (or Lua filter) below the watermark itself
  -- (frame.lua): the watermark must still see only the rows the filter kept.
  for _, how in ipairs { "where", "filter" } do
    it("moves the watermark by the rows a " .. how .. " before with_watermark keeps, not the ones it drops", function()
      local ms = tide.memory_stream("ts timestamp, k string")
      local f = ms:frame()
      f = how == "where" and f:where("k <> 'x'") or f:filter(function(r) return r.k ~= "x" end)
      local out = {}
      local q = f:with_watermark("ts", "10 seconds")
        :group_by(tide.window("ts", "5 seconds")):agg { "count(*) AS n" }
        :write_stream(function(_, rows)
          for _, r in ipairs(rows) do out[#out + 1] = string.format("%d:%d", r.window_start // 1000, r.n) end
        end, { mode = "append" })
      local rows = at("a", 10, 20, 33)
      for _, r in ipairs(at("x", 500, 9, 1)) do rows[#rows + 1] = r end
      ms:add(rows)
      q:process_all_available()
      assert.same({ watermark = 0, min = 10000, max = 33000, avg = 21000 }, q:recent_progress()[1].event_time)
      assert.equal(23000, q:watermark())
      assert.same({ "10:1" }, out) -- the window ending by 23 s; x's 500 s never moved the watermark
      ms:add(at("x", 1000))
      q:process_all_available()
      assert.equal(23000, q:watermark())
      local ps = q:recent_progress()
      assert.same({ watermark = 23000 }, ps[#ps].event_time) -- nothing passed the filter: no min, max, avg
      q:stop()
    end)
  end

  it("drops duplicates before a windowed count (append mode), both with state bounded by the watermark", function()
    local ms = tide.memory_stream("ts timestamp, k string")
    local sink, batches = recorder()
    local q = ms:frame():with_watermark("ts", "10 seconds"):drop_duplicates("k", "ts")
      :group_by(tide.window("ts", "5 seconds")):agg { "count(*) AS n" }
      :write_stream(sink, { mode = "append" })
    ms:add { { ts = 10000, k = "a" }, { ts = 10000, k = "a" }, { ts = 11000, k = "b" }, { ts = 11000, k = "b" } }
    q:process_all_available()
    ms:add { { ts = 11000, k = "b" }, { ts = 31000, k = "c" } }
    q:process_all_available()
    local all = {}
    for id = 0, #batches do all[#all + 1] = batches[id] end
    assert.equal("10:2", table.concat(all, " "):match("10:%d"))
    local ps = q:recent_progress()
    local dups = 0
    for _, p in ipairs(ps) do dups = dups + p.state_operators[1].num_dropped_duplicates end
    assert.equal(3, dups)
    local last = ps[#ps].state_operators
    assert.equal("dedup", last[1].name)
    assert.equal("aggregate", last[2].name)
    assert.equal(1, last[1].num_rows_total) -- only c@31 is above the watermark 21
    assert.equal(1, last[2].num_rows_total) -- the window [30,35)
    q:stop()
  end)

  it("refuses a checkpoint whose state record is damaged, naming the operator", function()
    local ck = ckdir()
    local ms = tide.memory_stream("ts timestamp, k string")
    local q = windowed(ms):write_stream(function() end, { mode = "update", checkpoint = ck })
    ms:add(at("a", 10))
    q:process_all_available()
    q:stop()
    local c = assert(core.checkpoint(ck))
    local key, blob
    for k, v in c:state("agg1") do key, blob = k, v end
    local bad = blob:sub(1, #blob - 1) .. string.char((blob:byte(#blob) + 1) % 256)
    c:commit(select(2, c:latest()) + 1, '{"v":1}', { agg1 = { put = { { key, bad } } } })
    c:close()
    local ok, err = pcall(function()
      return windowed(ms):write_stream(function() end, { mode = "update", checkpoint = ck })
    end)
    assert.is_false(ok)
    assert.truthy(err:find("state of Aggregate [window(ts, 5s)] [count(*) AS n] (agg1): ", 1, true), err)
    rm(ck)
  end)

  it("refuses what Spark's analyzer refuses", function()
    local ms = tide.memory_stream("ts timestamp, k string")
    local f = ms:frame():with_watermark("ts", "10 seconds")
    local agg = f:group_by("k"):count()
    assert.has_error(function() agg:drop_duplicates("k"):write_stream("memory", { name = "x", mode = "update" }) end,
      "write_stream(memory): Deduplicate [k] after a streaming aggregation is not supported (as in Spark before " ..
      "3.4); put it before the aggregation")
    assert.has_error(function() agg:order_by("k"):write_stream("memory", { name = "x", mode = "update" }) end,
      "write_stream(memory): order_by on a streaming frame is supported only after an aggregation in complete " ..
      "mode (as in Spark), not in update mode")
    assert.has_error(function()
      f:drop_duplicates_within_watermark("k"):write_stream("memory", { name = "x" })
      ms:frame():drop_duplicates_within_watermark("k"):write_stream("memory", { name = "y" })
    end, "write_stream(memory): drop_duplicates_within_watermark needs a watermark: call with_watermark(col, delay) " ..
      "before it")
    assert.has_error(function() f:with_watermark("k", 10) end,
      "with_watermark: the event-time column must be a timestamp, 'k' is string")
    assert.has_error(function() f:with_watermark("nope", 10) end,
      "with_watermark: unknown column 'nope' (columns: ts, k)")
    assert.has_error(function() f:with_watermark("ts", -1) end,
      "with_watermark: the delay should not be negative, got -1")
    -- a window over a column without the watermark gives append mode nothing to close
    local g = ms:frame():with_column("t2", "ts"):with_watermark("t2", 0):group_by(tide.window("ts", 5000)):count()
    assert.has_error(function() g:write_stream("memory", { name = "x" }) end)
  end)

  it("keeps ordered complete-mode results with order_by and limit", function()
    local ms = tide.memory_stream("ts timestamp, k string")
    local q = ms:frame():group_by("k"):count():order_by("count DESC"):limit(2)
      :write_stream("memory", { name = "top", mode = "complete" })
    ms:add { { ts = 1, k = "a" }, { ts = 1, k = "b" }, { ts = 1, k = "b" }, { ts = 1, k = "c" }, { ts = 1, k = "c" },
      { ts = 1, k = "c" } }
    q:process_all_available()
    assert.same({ { k = "c", count = 3 }, { k = "b", count = 2 } }, tide.table("top"):collect())
    q:stop()
  end)
end)
