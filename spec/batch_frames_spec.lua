-- Batches to Lua as frames (issue 21): foreach_batch with as = "frame" and
-- tide.sink{ as = "frame" } get each micro-batch as a static frame over its
-- columnar batches (Spark's foreachBatch DataFrame), rows only on demand;
-- the same rows as the row form; valid during the call only.

local tide = require "tide"

local function run(sink, opts)
  local s = tide.memory_stream("k string, v int")
  local q = s:frame():group_by("k"):agg { n = "count(*)", t = "sum(v)" }:write_stream(sink, opts)
  s:add { { k = "a", v = 1 }, { k = "b", v = 5 }, { k = "a", v = 3 } }
  q:process_all_available()
  s:add { { k = "c", v = 7 }, { k = "a", v = 2 } }
  q:process_all_available()
  q:stop()
end

local function sorted(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = string.format("%s %d %d", r.k, r.n, r.t) end
  table.sort(out)
  return out
end

describe("batches handed to Lua as frames", function()
  it("foreach_batch with as = 'frame' gets a frame per batch holding the rows the row form gets", function()
    local as_rows, as_frames, counts, big = {}, {}, {}, {}
    run("foreach_batch", { mode = "update", fn = function(id, rows) as_rows[id + 1] = sorted(rows) end })
    run("foreach_batch", { mode = "update", as = "frame", fn = function(id, f)
      assert.are.same({ { "k", "string" }, { "n", "int" }, { "t", "int?" } }, f:schema())
      counts[id + 1] = f:count()
      as_frames[id + 1] = sorted(f:collect())
      big[id + 1] = sorted(f:where("t > 5"):collect())
    end })
    assert.are.same({ { "a 2 4", "b 1 5" }, { "a 3 6", "c 1 7" } }, as_rows)
    assert.are.same(as_rows, as_frames)
    assert.are.same({ 2, 2 }, counts)
    assert.are.same({ {}, { "a 3 6", "c 1 7" } }, big)
  end)

  it("a tide.sink with as = 'frame' gets the frame and the mode", function()
    local got = {}
    run(tide.sink { as = "frame", add_batch = function(_, id, f, mode)
      got[#got + 1] = string.format("%d %s %d", id, mode, f:count())
    end }, { mode = "complete" })
    assert.are.same({ "0 complete 2", "1 complete 3" }, got)
  end)

  it("a frame kept past its call raises when it runs: its batches are closed", function()
    local kept
    run("foreach_batch", { mode = "update", as = "frame", fn = function(_, f) kept = f end })
    assert.has_error(function() kept:collect() end)
    local ok, err = pcall(function() return kept:collect() end)
    assert.is_false(ok)
    assert.matches("attempt to use a closed tide.Batch", err, 1, true)
  end)

  it("names a bad 'as'", function()
    assert.has_error(function() tide.sink { as = "table", add_batch = function() end } end,
      "tide.sink: field 'as' must be one of rows, frame, got table")
    local s = tide.memory_stream("k string")
    assert.has_error(function()
      s:frame():write_stream("foreach_batch", { as = "table", fn = function() end })
    end, "write_stream(foreach_batch): option 'as' must be one of rows, frame, got 'table'")
  end)
end)
