-- A small port of Spark's StreamTest DSL (testStream with AddData,
-- CheckAnswer, CheckNewAnswer, CheckLastBatch, StopStream, StartStream) and of
-- StateStoreMetricsTest.assertNumStateRows, so that the spark_*_spec.lua files
-- read like the Scala suites they port.
--
--    local t = S.test_stream(frame, { mode = "append", out = S.window_count })
--    t:add(ms, S.ints(10, 11, 12))
--    t:check_new_answer()
--    t:add(ms, S.ints(25))
--    t:check_new_answer({ 10, 3 })
--
-- What each action means, as in Spark:
-- * The sink is Spark's MemorySink, kept across stop/start: batches are
--   recorded by id, a batch id it has already seen is ignored (Spark:
--   "Skipping already committed batch"), in complete mode it keeps only the
--   last batch; clear() empties it (MemorySink.clear()).
-- * add(ms, rows): one MemoryStream.addData; when the query is running the
--   batch it makes runs at once (process_all_available), so one add is one
--   batch. With the query stopped the rows wait for the next start.
-- * check_answer: everything in the sink; check_last_batch: the rows of the
--   latest batch (a batch without output counts); check_new_answer: the rows
--   of the batches since the last check of any kind. All three first process
--   everything available, including no-data batches, and compare as
--   multisets (Spark's checkAnswer ignores order) unless told sorted.
-- * state_rows(total, updated [, dropped]): StateStoreMetricsTest: total state
--   rows of the last progress, updated and dropped-by-watermark rows summed
--   over the progresses since the last such check. Several operators are
--   given in Spark's order (sink first, Seq(aggregate, dedup) for a dedup
--   feeding an aggregate); tide's progress lists them from the source.
-- * Timestamps: Spark's timestamp_seconds(value) is value * 1000 ms here.
local tide = require "tide"
local util = require "tide.util"
local support = require "spec.support"
-- busted gives specs its assert; a module takes it from luassert.
local assert = require "luassert"

local M = {}

local dirs = {}

--- Stop every query still running and remove the checkpoints of the testers
-- made since the last call (for after_each).
function M.cleanup()
  for _, q in ipairs(tide.queries()) do q:stop() end
  for _, d in ipairs(dirs) do os.execute("rm -rf '" .. d .. "'") end
  dirs = {}
end

-- Rows of a MemoryStream[Int]: { value = v } each.
function M.ints(...)
  local rows = {}
  for i, v in ipairs { ... } do rows[i] = { value = v } end
  return rows
end

-- Rows of a MemoryStream[(A, B, ...)]: { _1 = a, _2 = b, ... } each, from
-- Lua arrays { a, b, ... }.
function M.tuples(...)
  local rows = {}
  for i, t in ipairs { ... } do
    local r = {}
    for j, v in ipairs(t) do r["_" .. j] = v end
    rows[i] = r
  end
  return rows
end

-- Spark's 1 to n flatMap(_ => a to b), as a Lua array.
function M.repeat_range(times, a, b)
  local out = {}
  for _ = 1, times do
    for v = a, b do out[#out + 1] = v end
  end
  return out
end

-- The usual `.withColumn("eventTime", timestamp_seconds($"value"))`.
function M.event_time(f, col)
  return f:with_column("eventTime", "CAST(" .. (col or "value") .. " * 1000 AS timestamp)")
end

-- Output projections to Spark's tuples.
-- select($"window".getField("start").cast("long"), $"count"): seconds.
function M.window_count(r) return { r.window_start // 1000, r.count } end

-- select($"eventTime".cast("long")): seconds.
function M.event_secs(r) return { r.eventTime // 1000 } end

local function canon(rows)
  local keys = {}
  for i, r in ipairs(rows) do keys[i] = util.json_encode(r) end
  table.sort(keys)
  return keys
end

-- The tuples of the rows, through the tester's projection.
local function project(self, rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = self.out(r) end
  return out
end

local function same_answer(expected, got, sorted, what)
  if sorted then
    assert.same(expected, got, what)
  else
    assert.same(canon(expected), canon(got), what)
  end
end

local Tester = {}
Tester.__index = Tester

--- testStream(frame, mode): opts = { mode =, out = function(row) -> tuple,
-- start = false (do not start yet), and write_stream options (trigger,
-- no_data_batches, multiple_watermark_policy) for the first start }.
function M.test_stream(frame, opts)
  opts = opts or {}
  local self = setmetatable({
    frame = frame,
    mode = opts.mode or "append",
    out = opts.out or function(r) return r end,
    dir = support.tmpname() .. "-spark-ck",
    batches = {},   -- MemorySink: { {id =, rows =}, ... } in arrival order
    fetched = -1,   -- lastFetchedMemorySinkLastBatchId
    checked = 0,    -- progresses already looked at by state_rows
  }, Tester)
  dirs[#dirs + 1] = self.dir
  if opts.start ~= false then
    local o = {}
    for k, v in pairs(opts) do
      if k ~= "mode" and k ~= "out" and k ~= "start" then o[k] = v end
    end
    self:start(o)
  end
  return self
end

function Tester:_latest_id()
  local b = self.batches[#self.batches]
  return b and b.id or -1
end

-- MemorySink.addBatch.
function Tester:_add_batch(id, rows)
  if id <= self:_latest_id() then return end
  if self.mode == "complete" then self.batches = {} end
  self.batches[#self.batches + 1] = { id = id, rows = rows }
end

--- StartStream(trigger, additionalConfs): a new query on the same checkpoint.
function Tester:start(o)
  assert(not (self.q and self.q:is_active()), "start: the query is already running")
  local opts = { mode = self.mode, checkpoint = self.dir }
  for k, v in pairs(o or {}) do opts[k] = v end
  self.q = self.frame:write_stream(function(id, rows) self:_add_batch(id, rows) end, opts)
  self.checked = 0
  return self.q
end

--- StopStream.
function Tester:stop()
  self.q:stop()
end

--- MemorySink.clear().
function Tester:clear()
  self.batches = {}
end

--- Run what is available now (Spark's processAllAvailable); a trigger-once
-- query is awaited instead (awaitTermination).
function Tester:process()
  if self.q and self.q:is_active() then self.q:process_all_available() end
end

function Tester:await()
  self.q:await()
end

--- AddData(source, rows...).
function Tester:add(ms, rows)
  ms:add(rows)
  self:process()
end

--- Rows into a source without running anything (MemoryStream.addData
-- outside testStream, or several adds that must land in one batch).
function Tester:add_only(ms, rows)
  ms:add(rows)
  return self
end

--- MultiAddData: the rows of several sources, in one batch.
function Tester:multi_add(...)
  for _, pair in ipairs { ... } do pair[1]:add(pair[2]) end
  self:process()
end

function Tester:_fetch(last_only, since_last)
  self:process()
  local rows = {}
  if last_only then
    -- The latest batch handed to the sink; a later batch that ran without
    -- being recorded (no rows) is the latest and it is empty.
    local b = self.batches[#self.batches]
    local p = self.q:last_progress()
    if b and not (p and p.batch_id > b.id) then rows = b.rows end
  else
    for _, b in ipairs(self.batches) do
      if not since_last or b.id > self.fetched then
        table.move(b.rows, 1, #b.rows, #rows + 1, rows)
      end
    end
  end
  self.fetched = math.max(self:_latest_id(), self.q:last_progress() and self.q:last_progress().batch_id or -1)
  return project(self, rows)
end

--- CheckAnswer(tuples...).
function Tester:check_answer(...)
  same_answer({ ... }, self:_fetch(false, false), false, "CheckAnswer")
end

--- CheckNewAnswer(tuples...).
function Tester:check_new_answer(...)
  same_answer({ ... }, self:_fetch(false, true), false, "CheckNewAnswer")
end

--- CheckLastBatch(tuples...); check_last_batch_sorted for isSorted = true.
function Tester:check_last_batch(...)
  same_answer({ ... }, self:_fetch(true, false), false, "CheckLastBatch")
end

function Tester:check_last_batch_sorted(...)
  same_answer({ ... }, self:_fetch(true, false), true, "CheckLastBatch(isSorted = true)")
end

-- A number or Spark's Seq in Spark's operator order, as an array in tide's.
local function seq(v)
  if type(v) ~= "table" then return { v } end
  local r = {}
  for i = #v, 1, -1 do r[#r + 1] = v[i] end
  return r
end

--- StateStoreMetricsTest.assertNumStateRows(total, updated, droppedByWatermark).
function Tester:state_rows(total, updated, dropped)
  self:process()
  local all = self.q:recent_progress()
  assert(#all > self.checked, "state_rows: no progress since the last check")
  local n = #all[#all].state_operators
  local since = {}
  for i = self.checked + 1, #all do
    if #all[i].state_operators == n then since[#since + 1] = all[i] end
  end
  local t, u, d = {}, {}, {}
  for k = 1, n do
    t[k] = since[#since].state_operators[k].num_rows_total
    u[k], d[k] = 0, 0
    for _, p in ipairs(since) do
      u[k] = u[k] + p.state_operators[k].num_rows_updated
      d[k] = d[k] + p.state_operators[k].num_rows_dropped_by_watermark
    end
  end
  total, updated = seq(total), seq(updated)
  dropped = dropped ~= nil and seq(dropped) or (function()
    local z = {}
    for k = 1, #total do z[k] = 0 end
    return z
  end)()
  assert.same({ total = total, updated = updated, dropped_by_watermark = dropped },
    { total = t, updated = u, dropped_by_watermark = d }, "assertNumStateRows")
  self.checked = #all
end

--- StateStoreMetricsTest.assertStateOperatorCustomMetric("numDroppedDuplicateRows", n):
-- summed since the last check, operator 0 in Spark's order (the last in tide's).
function Tester:dropped_duplicates(expected)
  self:process()
  local all = self.q:recent_progress()
  local n = #all[#all].state_operators
  local sum = 0
  for i = self.checked + 1, #all do
    local ops = all[i].state_operators
    if #ops == n then sum = sum + ops[n].num_dropped_duplicates end
  end
  assert.equal(expected, sum, "numDroppedDuplicateRows")
  self.checked = #all
end

--- EventTimeWatermarkSuite.assertNumStateRows(n): the last progress, operator 0.
function Tester:num_state_rows(expected)
  self:process()
  local ops = self.q:last_progress().state_operators
  assert.equal(expected, ops[#ops].num_rows_total, "numRowsTotal")
end

--- EventTimeWatermarkSuite.assertNumRowsDroppedByWatermark(n): the last
-- progress of a batch that had input.
function Tester:dropped_by_watermark(expected)
  self:process()
  local all, p = self.q:recent_progress(), nil
  for i = #all, 1, -1 do
    if all[i].num_input_rows > 0 then p = all[i] break end
  end
  assert(p, "no batch with input")
  local ops = p.state_operators
  assert.equal(expected, ops[#ops].num_rows_dropped_by_watermark, "numRowsDroppedByWatermark")
end

--- EventTimeWatermarkSuite.assertEventStats(min, max, avg, wtrmark), in
-- seconds, on the last progress of a batch that had input; with no
-- arguments, that its event-time stats are empty (no watermark).
function Tester:event_stats(min, max, avg, wm)
  local all, p = self.q:recent_progress(), nil
  for i = #all, 1, -1 do
    if all[i].num_input_rows > 0 then p = all[i] break end
  end
  assert(p, "no batch with input")
  local e = p.event_time or {}
  if min == nil then
    assert.same({}, e, "event time stats without a watermark")
    return
  end
  -- Spark prints avg as a timestamp of avg.toLong ms.
  assert.same({ min = min * 1000, max = max * 1000, avg = avg * 1000, watermark = wm * 1000 },
    { min = e.min, max = e.max, avg = e.avg and math.floor(e.avg), watermark = e.watermark },
    "assertEventStats")
end

--- EventTimeWatermarkSuite.checkWatermark(input, wm): add 1 to input, run,
-- and compare the last progress's watermark (seconds).
function Tester:check_watermark(ms, wm)
  ms:add(M.ints(1))
  self.q:process_all_available()
  assert.equal(wm * 1000, self.q:last_progress().event_time.watermark, "watermark")
end

return M
