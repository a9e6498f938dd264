--- The rate source: rows made up at a steady rate, as Spark's rate source
-- (API.md section 3), for demos, load and tests.
--
--    local r = tide.read_stream("rate", { rows_per_second = 100 })
--    -- schema: timestamp timestamp, value int
--
-- Row i (from 0) has `value` i and `timestamp` start + i * 1000 //
-- rows_per_second, where start is the time (ms since the epoch) the source
-- first started; the rows are made in C, a column at a time (core/rate.c).
-- At time now, floor((now - start) * rows_per_second / 1000) rows are
-- available.
--
-- `num_rows` makes a run finite (tests, the REPL): the source stops after
-- that many rows and says so (`exhausted`), and a query whose sources are
-- all exhausted ends by itself once it has processed them. Under the
-- triggers "available_now" and "once" all num_rows rows are available at
-- once, so that the one run outputs them all.
--
-- Offsets are `{ start = ms, rows = n }`: the start time and the number of
-- rows available when the offset was taken. Rows depend only on the offsets,
-- so the source is replayable: after a restart the same offsets give the
-- same rows, and the source takes its start time back from the first offset
-- the query hands it (latest_offset's previous end, get_batch's or commit's
-- offsets), so the sequence goes on where it stopped.

local core = require "tide.core"

local M = { sources = {} }

local format = string.format

local SCHEMA = "timestamp timestamp, value int"
local CHUNK = 1000000 -- rows per tide.Batch
local schema_obj -- a tide.Schema of SCHEMA, made once

local now_ms = core.time_now or function() return os.time() * 1000 end

M.sources.rate = {
  options = {
    rows_per_second = { type = "integer", min = 1, default = 1 },
    num_rows = { type = "integer", min = 0 },
  },

  schema = function() return SCHEMA end,

  label = function(o) return format("RateSource[rowsPerSecond=%d]", o.rows_per_second) end,

  new = function(o, ctx)
    if not schema_obj then schema_obj = assert(core.schema(SCHEMA)) end
    local rps, limit = o.rows_per_second, o.num_rows
    -- a run that processes what is there and ends: all num_rows are there
    local all_now = limit ~= nil and (ctx.trigger == "available_now" or ctx.trigger == "once")
    -- start is provisional until an offset of a previous run is seen or
    -- this run hands out its first offset; then it is fixed.
    local start, fixed = now_ms(), false
    local last = 0 -- the largest row count handed out (offsets never go back)
    local timer
    local src = { description = format("RateSource[rowsPerSecond=%d]", rps), replayable = true }

    local function adopt(off)
      if off == nil then return end
      local s = type(off) == "table" and math.tointeger(off.start)
      local n = s and math.tointeger(off.rows)
      if not n then error("rate source: bad offset (expected { start = ms, rows = n })", 0) end
      if not fixed then start, fixed = s, true end
      if n > last then last = n end
    end

    local function available()
      if all_now then return limit end
      local n = (now_ms() - start) * rps // 1000
      if n < 0 then n = 0 end
      if limit and n > limit then n = limit end
      return n
    end

    --- `{ start =, rows = }` with the rows available now, or nil before
    -- the first row.
    function src.latest_offset(_, prev)
      adopt(prev)
      fixed = true
      local n = math.max(available(), last)
      last = n
      if n == 0 then return nil end
      return { start = start, rows = n }
    end

    --- Rows after `first` up to `stop` as tide.Batch objects.
    function src.get_batch(_, first, stop)
      adopt(first)
      adopt(stop)
      local s = math.tointeger(stop.start)
      local lo, hi = first and math.tointeger(first.rows) or 0, math.tointeger(stop.rows)
      local out = {}
      local i = lo
      while i < hi do
        local j = math.min(hi, i + CHUNK)
        local b, msg = core.rate_batch(schema_obj, s, rps, i, j)
        if not b then
          for _, x in ipairs(out) do x:close() end
          error("rate source: " .. tostring(msg), 0)
        end
        out[#out + 1] = b
        i = j
      end
      return out
    end

    function src.commit(_, stop) adopt(stop) end

    --- The rows due by now (capped by num_rows) after offset `off`, not
    -- yet made.
    function src.lag(_, off)
      local done = type(off) == "table" and math.tointeger(off.rows) or 0
      return { records = math.max(0, math.max(available(), last) - done) }
    end

    --- True when no row will come after offset `off` (num_rows are out).
    function src.exhausted(_, off)
      if limit == nil then return false end
      local n = type(off) == "table" and math.tointeger(off.rows) or 0
      return n >= limit
    end

    --- Wake the query as rows become available: every 1000 / rows_per_second
    -- ms (at least 10 ms), until num_rows are out.
    function src.watch(_, fn)
      if timer then timer:close() end
      local every = math.max(10, 1000 // rps)
      timer = ctx.loop:timer(every, every, function()
        if limit and last >= limit then
          timer:close()
          return
        end
        fn()
      end)
    end

    function src.stop()
      if timer then timer:close() end
      timer = nil
    end

    return src
  end,
}

return M
