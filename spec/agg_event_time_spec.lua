-- Specs for what event time needs from an aggregation (tide.Agg in
-- core/l_agg.c over core/agg.c) and core.time_stats (core/l_batch.c):
-- late (row, window) pairs left out of agg:push and reported, the first
-- rows of new groups (streaming dedup), aggregations without aggregates,
-- eviction by an aggregate column, lookup/merge/remove by state id (session
-- windows), and the errors of each.

local core = require "tide.core"

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local IN = assert(core.schema("t timestamp?, k string?, v int?, u timestamp?"))
local T, K, V = assert(core.expr("t", IN)), assert(core.expr("k", IN)), assert(core.expr("v", IN))
local U = assert(core.expr("u", IN))

local function batch(rows) return assert(core.rows_batch(IN, rows)) end

-- Rows of a batch as "t/k/v" strings.
local function tkv(b)
  local out = {}
  for i, r in ipairs(b:rows()) do out[i] = string.format("%s/%s/%s", r.t, r.k, r.v) end
  return out
end

-- Rows of a batch as strings of the named columns joined by "/".
local function show(b, ...)
  local names, out = { ... }, {}
  for i, r in ipairs(b:rows()) do
    local parts = {}
    for j, n in ipairs(names) do parts[j] = tostring(r[n]) end
    out[i] = table.concat(parts, "/")
  end
  return out
end

-- count(*) and sum(v) by window (size, slide over t) and k.
local WKEYS = assert(core.schema("window_start timestamp, k string?"))
local function window_agg()
  return assert(core.agg(WKEYS,
    { { kind = "count_star", name = "n" }, { kind = "sum", arg_type = "int", name = "s" } }))
end

-- count(*) by k and t (a raw event-time key).
local RKEYS = assert(core.schema("k string?, t timestamp?"))
local function raw_agg()
  return assert(core.agg(RKEYS, { { kind = "count_star", name = "n" } }))
end

---------------------------------------------------------------------------
-- core.time_stats
---------------------------------------------------------------------------

describe("core.time_stats", function()
  it("gives count, min, max and sum of the non-NULL values of a timestamp or int column", function()
    local b = batch({ { t = 5000, v = -3 }, { v = 7 }, { t = -1000 }, { t = 12000, v = 2 } })
    assert.same({ 3, -1000, 12000, 16000.0 }, { core.time_stats(b, 1) })
    assert.same({ 3, -3, 7, 6.0 }, { core.time_stats(b, 3) })
    assert.equal("float", math.type(select(4, core.time_stats(b, 1))))
  end)

  it("gives 0, nil, nil, 0 when there is no value, and a sum that does not overflow", function()
    assert.same({ 0, nil, nil, 0.0 }, { core.time_stats(batch({ { k = "a" }, {} }), 1) })
    local n, lo, hi, sum = core.time_stats(batch({}), 4)
    assert.same({ 0, nil, nil, 0.0 }, { n, lo, hi, sum })
    local big = batch({ { v = math.maxinteger }, { v = math.maxinteger } })
    assert.equal(2.0 * math.maxinteger, select(4, core.time_stats(big, 3)))
  end)

  it("raises on a column that does not exist or is not a timestamp or int", function()
    local b = batch({ { t = 1 } })
    assert.has_error(function() core.time_stats(b, 0) end,
      "bad argument #2 to 'time_stats' (column 0 does not exist (the batch has 4))")
    assert.has_error(function() core.time_stats(b, 5) end,
      "bad argument #2 to 'time_stats' (column 5 does not exist (the batch has 4))")
    assert.has_error(function() core.time_stats(b, 2) end,
      "bad argument #2 to 'time_stats' (column 2 ('k') is string, expected timestamp or int)")
    assert.has_error(function() core.time_stats(b, "t") end)
  end)
end)

---------------------------------------------------------------------------
-- late rows
---------------------------------------------------------------------------

describe("agg:push with late rows", function()
  it("returns true and the counts even without a late argument", function()
    local a = raw_agg()
    local ok, info = a:push(batch({ { t = 1, k = "a" }, { t = 1, k = "a" } }), { K, T }, { false })
    assert.is_true(ok)
    assert.same({ pushed = 2, late_pairs = 0, late_groups = 0 }, info)
  end)

  it("drops rows at or below the bound by a raw event-time column (inclusive; NULL never late)", function()
    local a = raw_agg()
    local b = batch({ { t = 10, k = "a", v = 1 }, { t = 11, k = "a", v = 2 }, { k = "a", v = 3 },
      { t = 10, k = "a", v = 4 }, { t = 9, k = "b", v = 5 }, { t = 12, k = "b", v = 6 } })
    local ok, info = a:push(b, { K, T }, { false }, nil, nil, 0, { col = 1, bound = 10 })
    assert.is_true(ok)
    assert.equal(3, info.pushed)
    assert.equal(3, info.late_pairs)
    assert.equal(2, info.late_groups) -- (a, 10) twice, (b, 9)
    assert.same({ "10/a/1", "10/a/4", "9/b/5" }, tkv(info.lost))
    assert.same(b:schema(), info.lost:schema())
    assert.is_nil(info.new)
    assert.same({ "a/11/1", "a/nil/1", "b/12/1" }, show(a:result(), "k", "t", "n"))
  end)

  it("refuses a window key that names neither end of the window", function()
    local a = window_agg()
    local b = batch({ { t = 1000, k = "a", v = 1 } })
    local w = { col = 1, size = 10000, slide = 5000, start = 0 }
    local ok, err = pcall(a.push, a, b, { "window_begin", K }, { false, V }, w)
    assert.is_false(ok)
    assert.equal("agg:push: key 1: expected 'window_start', 'window_end' or an expression, got 'window_begin'", err)
  end)

  it("judges each (row, window) pair by its window's end with a window on the late column", function()
    local a = window_agg()
    -- size 10 s, slide 5 s; bound 10 s: windows ending at or before 10 s are closed
    local b = batch({ { t = 1000, k = "a", v = 1 }, { t = 5000, k = "a", v = 2 }, { t = 12000, k = "b", v = 3 },
      { k = "a", v = 4 }, { t = 9000, k = "b", v = 5 } })
    local w = { col = 1, size = 10000, slide = 5000, start = 0 }
    local ok, info = a:push(b, { "window_start", K }, { false, V }, w, nil, 0, { col = 1, bound = 10000 })
    assert.is_true(ok)
    assert.equal(4, info.pushed)
    assert.equal(4, info.late_pairs) -- 1 s in [-5, 5) and [0, 10); 5 s and 9 s in [0, 10)
    assert.equal(3, info.late_groups) -- (-5, a), (0, a), (0, b)
    assert.same({ "1000/a/1" }, tkv(info.lost)) -- 5 s and 9 s still count in [5, 15)
    assert.same({ "5000/a/1/2", "5000/b/2/8", "10000/b/1/3" }, show(a:result(), "window_start", "k", "n", "s"))
    -- one below the boundary: only [-5, 5) is closed
    local a2 = window_agg()
    local _, info2 = a2:push(b, { "window_start", K }, { false, V }, w, nil, 0, { col = 1, bound = 9999 })
    assert.same({ 7, 1, 1 }, { info2.pushed, info2.late_pairs, info2.late_groups })
    assert.is_nil(info2.lost)
  end)

  it("uses tumbling windows' ends too", function()
    local a = window_agg()
    local b = batch({ { t = 1000, k = "a", v = 1 }, { t = 10000, k = "a", v = 2 }, { t = 9999, k = "b", v = 3 } })
    local w = { col = 1, size = 10000, slide = 10000, start = 0 }
    local _, info = a:push(b, { "window_start", K }, { false, V }, w, nil, 0, { col = 1, bound = 10000 })
    assert.same({ 1, 2, 2 }, { info.pushed, info.late_pairs, info.late_groups })
    assert.same({ "1000/a/1", "9999/b/3" }, tkv(info.lost))
    assert.same({ "10000/a/1" }, show(a:result(), "window_start", "k", "n"))
  end)

  it("judges by the row's own time when the window is on another column", function()
    local a = window_agg()
    -- windows over u, lateness by t
    local b = batch({ { t = 5, u = 1000, k = "a", v = 1 }, { t = 50, u = 1000, k = "a", v = 2 },
      { u = 2000, k = "b", v = 3 }, { t = 1, k = "c", v = 4 } })
    local w = { col = 4, size = 10000, slide = 5000, start = 0 }
    local _, info = a:push(b, { "window_start", K }, { false, V }, w, nil, 0, { col = 1, bound = 10 })
    -- row 1: two late pairs; row 2, 3: two pairs each; row 4: no window (NULL u), so neither pushed nor lost
    assert.same({ 4, 2, 2 }, { info.pushed, info.late_pairs, info.late_groups })
    assert.same({ "5/a/1" }, tkv(info.lost))
  end)

  it("does not consider the rows a fused filter rejects", function()
    local b = batch({ { t = 1, k = "a", v = 1 }, { t = 2, k = "b", v = -1 }, { t = 20, k = "a", v = 3 },
      { t = 3, k = "c", v = 4 } })
    local where = assert(core.expr("v > 0", IN))
    for _, filter in ipairs({ where, function(r) return r.v > 0 end }) do
      local a = raw_agg()
      local ok, info = a:push(b, { K, T }, { false }, nil, filter, 0, { col = 1, bound = 10 }, true)
      assert.is_true(ok)
      assert.same({ 1, 2, 2 }, { info.pushed, info.late_pairs, info.late_groups })
      assert.same({ "1/a/1", "3/c/4" }, tkv(info.lost))
      assert.same({ "20/a/3" }, tkv(info.new))
    end
    -- a filter that keeps every row
    local a = raw_agg()
    local _, info = a:push(b, { K, T }, { false }, nil, function() return true end, 0, { col = 1, bound = 2 })
    assert.same({ "1/a/1", "2/b/-1" }, tkv(info.lost))
  end)

  it("reports the event times of the rows a fused filter keeps, late ones included, with time_col", function()
    local b = batch({ { t = 1, k = "a", v = 1 }, { t = 50, k = "b", v = -1 }, { t = 20, k = "a", v = 3 },
      { k = "n", v = 5 }, { t = 3, k = "c", v = 4 }, { t = 2, k = "d", v = -2 } })
    local where = assert(core.expr("v > 0", IN))
    for _, filter in ipairs({ where, function(r) return r.v > 0 end }) do
      local a = raw_agg()
      local _, info = a:push(b, { K, T }, { false }, nil, filter, 0, { col = 1, bound = 10 }, nil, 1)
      assert.same({ 3, 1, 20, 24.0 }, { info.time_count, info.time_min, info.time_max, info.time_sum })
      assert.equal(2, info.pushed) -- 20/a and the NULL-time row; 1 and 3 are late
    end
    local a = raw_agg()
    local _, info = a:push(b, { K, T }, { false }, nil, where, 0, nil, nil, 4) -- u: all NULL
    assert.same({ 0, 0.0 }, { info.time_count, info.time_sum })
    assert.is_nil(info.time_min)
    _, info = a:push(b, { K, T }, { false })
    assert.is_nil(info.time_count) -- only asked for
    assert.has_error(function() a:push(b, { K, T }, { false }, nil, nil, 0, nil, nil, 2) end,
      "bad argument #9 to 'push' (column 2 ('k') is string, expected timestamp or int)")
    assert.has_error(function() a:push(b, { K, T }, { false }, nil, nil, 0, nil, nil, 5) end,
      "bad argument #9 to 'push' (column 5 does not exist (the batch has 4 columns))")
  end)

  it("with a filter and sliding windows maps the pairs back to the input rows", function()
    local a = window_agg()
    local b = batch({ { t = 1000, k = "x", v = -1 }, { t = 1000, k = "a", v = 1 }, { t = 7000, k = "b", v = 2 },
      { t = 12000, k = "a", v = 3 } })
    local w = { col = 1, size = 10000, slide = 5000, start = 0 }
    local pos = assert(core.expr("v > 0", IN))
    local _, info = a:push(b, { "window_start", K }, { false, V }, w, pos, 0, { col = 1, bound = 10000 }, true)
    assert.same({ 3, 3, 3 }, { info.pushed, info.late_pairs, info.late_groups })
    assert.same({ "1000/a/1" }, tkv(info.lost))
    assert.same({ "7000/b/2", "12000/a/3" }, tkv(info.new))
  end)

  it("raises on a bad late argument", function()
    local a, b = raw_agg(), batch({ { t = 1, k = "a" } })
    local function push(late) return a:push(b, { K, T }, { false }, nil, nil, 0, late) end
    assert.has_error(function() push({ col = 5, bound = 1 }) end,
      "bad argument #7 to 'push' (late.col 5 does not exist (the batch has 4 columns))")
    assert.has_error(function() push({ col = 0, bound = 1 }) end,
      "bad argument #7 to 'push' (late.col 0 does not exist (the batch has 4 columns))")
    assert.has_error(function() push({ col = 2, bound = 1 }) end,
      "bad argument #7 to 'push' (late.col 2 ('k') is string, expected timestamp or int)")
    assert.has_error(function() push({ col = 1, bound = 1.5 }) end,
      "bad argument #7 to 'push' (late.bound must be an integer (milliseconds))")
    assert.has_error(function() push({ col = "t", bound = 1 }) end,
      "bad argument #7 to 'push' (late.col must be an integer (a 1-based column))")
    assert.has_error(function() push(true) end)
    assert.equal(0, a:groups())
  end)
end)

---------------------------------------------------------------------------
-- new groups: streaming dedup
---------------------------------------------------------------------------

describe("agg:push with want_new", function()
  local DKEYS = assert(core.schema("k string?"))

  it("gives the first row of each key not seen before, duplicates in one batch included, with no aggregate", function()
    local a = assert(core.agg(DKEYS, {}))
    local _, info = a:push(batch({ { t = 1, k = "a", v = 1 }, { t = 2, k = "b", v = 2 }, { t = 3, k = "a", v = 3 },
      { t = 4, v = 4 }, { t = 5, v = 5 } }), { K }, {}, nil, nil, 0, nil, true)
    assert.same({ "1/a/1", "2/b/2", "4/nil/4" }, tkv(info.new))
    assert.equal(5, info.pushed)
    local _, info2 = a:push(batch({ { t = 6, k = "b", v = 6 }, { t = 7, k = "c", v = 7 } }), { K }, {}, nil, nil, 0,
      nil, true)
    assert.same({ "7/c/7" }, tkv(info2.new))
    local _, info3 = a:push(batch({ { t = 8, k = "c" } }), { K }, {}, nil, nil, 0, nil, true)
    assert.equal(0, info3.new:nrows())
    assert.same(IN:fields(), info3.new:schema())
    assert.same({ "a", "b", "nil", "c" }, show(a:result(), "k"))
  end)

  it("never gives a late row, and keeps first(t) for dropDuplicatesWithinWatermark", function()
    local a = assert(core.agg(DKEYS, { { kind = "first", arg_type = "timestamp", name = "first_t" } }))
    local _, info = a:push(batch({ { t = 5, k = "a" }, { t = 20, k = "a" }, { t = 30, k = "b" }, { t = 40, k = "b" } }),
      { K }, { T }, nil, nil, 0, { col = 1, bound = 10 }, true)
    assert.same({ "20/a/nil", "30/b/nil" }, tkv(info.new))
    assert.same({ "5/a/nil" }, tkv(info.lost))
    assert.same({ "a/20", "b/30" }, show(a:result(), "k", "first_t"))
    -- expiry: the groups whose first_t is at or below a bound go
    local gone, sids = a:evict("first_t", 20)
    assert.same({ "a/20" }, show(gone, "k", "first_t"))
    assert.same({ 1 }, sids)
    local _, again = a:push(batch({ { t = 50, k = "a" }, { t = 60, k = "b" } }), { K }, { T }, nil, nil, 0, nil, true)
    assert.same({ "50/a/nil" }, tkv(again.new))
  end)

  it("counts a row once when it creates several windows' groups", function()
    local a = window_agg()
    local w = { col = 1, size = 10000, slide = 5000, start = 0 }
    local _, info = a:push(batch({ { t = 1000, k = "a", v = 1 }, { t = 2000, k = "a", v = 2 },
      { t = 6000, k = "a", v = 3 } }), { "window_start", K }, { false, V }, w, nil, 0, nil, true)
    assert.same({ "1000/a/1", "6000/a/3" }, tkv(info.new))
    assert.equal(6, info.pushed)
  end)

  it("works for an aggregation without aggregates through changes, records, eviction and removal", function()
    local a = raw_agg()
    local z = assert(core.agg(RKEYS, {}))
    assert.same(RKEYS:fields(), z:result():schema())
    local b = batch({ { t = 1, k = "a" }, { t = 2, k = "a" }, { t = 1, k = "a" }, { t = 3 } })
    assert(a:push(b, { K, T }, { false }))
    assert(z:push(b, { K, T }, {}, nil, nil, 0, { col = 1, bound = 1 }, true))
    local rows, sids, recs = z:changes()
    assert.same({ "a/2", "nil/3" }, show(rows, "k", "t"))
    assert.same({ 1, 2 }, sids)
    local copy = assert(core.agg(RKEYS, {}))
    for i, sid in ipairs(sids) do assert(copy:restore(sid, recs[i])) end
    assert.same({ "a/2", "nil/3" }, show(copy:result(), "k", "t"))
    local gone, gsids = copy:evict("t", 2)
    assert.same({ "a/2" }, show(gone, "k", "t"))
    assert.same({ 1 }, gsids)
    local removed, rsids = copy:remove({ 2 })
    assert.same({ "nil/3" }, show(removed, "k", "t"))
    assert.same({ 2 }, rsids)
    assert.equal(0, copy:groups())
    -- a removed group's record may come back (a restart before the commit)
    assert(copy:restore(1, recs[1]))
    assert.same({ 1, false }, copy:lookup(assert(core.rows_batch(RKEYS, { { k = "a", t = 2 }, { k = "a", t = 1 } }))))
    -- a record of an aggregation with aggregates is another plan
    local _, _, arecs = a:changes()
    local ok, msg, ename = copy:restore(9, arecs[1])
    assert.is_nil(ok)
    assert.equal("ESCHEMA", ename, msg)
  end)
end)

---------------------------------------------------------------------------
-- evict by an aggregate
---------------------------------------------------------------------------

describe("agg:evict by an aggregate column", function()
  local SKEYS = assert(core.schema("k string?"))
  local function agg()
    return assert(core.agg(SKEYS, { { kind = "max", arg_type = "timestamp", name = "last_seen" },
      { kind = "count_star", name = "n" }, { kind = "avg", arg_type = "int", name = "mean" },
      { kind = "first", arg_type = "timestamp", name = "first_t" } }))
  end
  local rows = { { t = 5, k = "a", v = 1 }, { t = 15, k = "b", v = 1 }, { k = "c", v = 1 }, { t = 8, k = "a", v = 1 },
    { k = "d" }, { t = 3, k = "d" } }

  it("removes the groups whose value there is not NULL and <= bound, by index or name", function()
    local a = agg()
    assert(a:push(batch(rows), { K }, { T, false, V, T }))
    local gone, sids = a:evict(2, 8) -- last_seen
    assert.same({ "a/8", "d/3" }, show(gone, "k", "last_seen"))
    assert.same({ 1, 4 }, sids)
    assert.same({ "b", "c" }, show(a:result(), "k"))
    local g2, s2 = a:evict("n", 1)
    assert.same({ "b", "c" }, show(g2, "k"))
    assert.same({ 2, 3 }, s2)
  end)

  it("keeps a group whose first value is NULL", function()
    local a = agg()
    assert(a:push(batch(rows), { K }, { T, false, V, T }))
    local gone = a:evict("first_t", math.maxinteger)
    assert.same({ "a", "b" }, show(gone, "k")) -- c has no t; d's first t is NULL
    assert.same({ "c/nil/nil", "d/3/nil" }, show(a:result(), "k", "last_seen", "first_t"))
  end)

  it("raises on a column of another type or out of range", function()
    local a = agg()
    assert.has_error(function() a:evict(4, 0) end,
      "bad argument #1 to 'evict' (column 'mean' is double, expected int or timestamp)")
    assert.has_error(function() a:evict("k", 0) end,
      "bad argument #1 to 'evict' (column 'k' is string, expected int or timestamp)")
    assert.has_error(function() a:evict(6, 0) end, "bad argument #1 to 'evict' (column 6 does not exist (5 columns))")
    assert.has_error(function() a:evict("last_seen", "x") end)
  end)
end)

---------------------------------------------------------------------------
-- lookup, merge, remove
---------------------------------------------------------------------------

describe("agg:lookup, agg:merge and agg:remove", function()
  local SKEYS = assert(core.schema("k string?, s timestamp"))
  local KS = { K, T }
  local SPECS = {
    { kind = "count_star", name = "n" }, { kind = "sum", arg_type = "int", name = "sum" },
    { kind = "avg", arg_type = "int", name = "avg" }, { kind = "min", arg_type = "int", name = "min" },
    { kind = "max", arg_type = "timestamp", name = "max_u" }, { kind = "first", arg_type = "int", name = "first" },
    { kind = "last", arg_type = "int", name = "last" }, { kind = "count_distinct", arg_type = "int", name = "nd" },
    { kind = "last", arg_type = "string", name = "last_k" },
  }
  local ARGS = { false, V, V, V, U, V, V, V, K }
  local COLS = { "k", "s", "n", "sum", "avg", "min", "max_u", "first", "last", "nd", "last_k" }
  local function agg() return assert(core.agg(SKEYS, SPECS)) end
  local function keys(list) return assert(core.rows_batch(SKEYS, list)) end

  it("looks up the state ids of keys, false for none, following evictions and removals", function()
    local a = agg()
    assert(a:push(batch({ { k = "a", t = 0 }, { k = "b", t = 10 }, { t = 20 }, { k = "c", t = 30 } }), KS, ARGS))
    local probe = keys({ { k = "b", s = 10 }, { k = "b", s = 11 }, { s = 20 }, { k = "c", s = 30 },
      { k = "a", s = 0 } })
    assert.same({ 2, false, 3, 4, 1 }, a:lookup(probe))
    a:evict("s", 0)
    assert.same({ 2, false, 3, 4, false }, a:lookup(probe))
    a:remove({ 3 })
    assert.same({ 2, false, false, 4, false }, a:lookup(probe))
    assert.same({}, a:lookup(keys({})))
  end)

  it("merges every kind of state as if dst had seen src's rows after its own", function()
    local a, ref = agg(), agg()
    local first = { { k = "x", t = 0, v = 5, u = 100 }, { k = "x", t = 0 }, { k = "x", t = 0, v = 2 } }
    local second = { { k = "y", t = 9, v = 7, u = 50 }, { k = "y", t = 9, v = 2 }, { k = "y", t = 9 } }
    assert(a:push(batch(first), KS, ARGS))
    assert(a:push(batch(second), KS, ARGS))
    a:clear_changes()
    assert.is_true(a:merge(1, 2))
    for _, r in ipairs(second) do r.k, r.t = "x", 0 end
    assert(ref:push(batch(first), KS, ARGS))
    assert(ref:push(batch(second), KS, ARGS))
    local got, want = show(a:result(), table.unpack(COLS)), show(ref:result(), table.unpack(COLS))
    -- the same but for last_k: src's last k is "y", ref's (re-keyed) "x"
    assert.equal(want[1]:gsub("/x$", "/y"), got[1])
    assert.same("y/9/3/9/4.5/2/50/7/nil/2/y", got[2]) -- src unchanged
    local rows, sids = a:changes()
    assert.same({ got[1] }, show(rows, table.unpack(COLS)))
    assert.same({ 1 }, sids)
  end)

  it("takes src's first and last only when dst has none", function()
    local a = agg()
    assert(a:push(batch({ { k = "e", t = 1 } }), KS, ARGS)) -- no v at all: first/last NULL, seen
    assert(a:push(batch({ { k = "f", t = 1, v = 3 } }), KS, ARGS))
    assert(a:merge(1, 2))
    assert.same({ "e/nil/3/1" }, { show(a:result(), "k", "first", "last", "nd")[1] })
  end)

  it("removes groups by state id, returning their rows and ids in first-seen order", function()
    local a = agg()
    assert(a:push(batch({ { k = "a", t = 0 }, { k = "b", t = 0 }, { k = "c", t = 0 }, { k = "d", t = 0 } }), KS, ARGS))
    local rows, sids = a:remove({ 4, 2, 4 })
    assert.same({ "b", "d" }, show(rows, "k"))
    assert.same({ 2, 4 }, sids)
    assert.same({ "a", "c" }, show(a:result(), "k"))
    local none, nsids = a:remove({})
    assert.equal(0, none:nrows())
    assert.same({}, nsids)
  end)

  it("raises on unknown or bad state ids, changing nothing", function()
    local a = agg()
    assert(a:push(batch({ { k = "a", t = 0, v = 1 }, { k = "b", t = 0, v = 2 } }), KS, ARGS))
    assert.has_error(function() a:merge(1, 3) end, "agg:merge: src: no group has state id 3")
    assert.has_error(function() a:merge(0, 1) end, "agg:merge: dst: no group has state id 0")
    assert.has_error(function() a:merge(1, 1) end, "agg:merge: dst and src are the same group (state id 1)")
    assert.has_error(function() a:merge("1", 2) end, "agg:merge: dst must be a state id (an integer), got string")
    assert.has_error(function() a:remove({ 1, 7 }) end, "agg:remove: sids[2]: no group has state id 7")
    assert.has_error(function() a:remove({ 1.5 }) end,
      "agg:remove: sids[1] must be a state id (an integer), got number")
    assert.has_error(function() a:remove(1) end)
    assert.same({ "a/1", "b/2" }, show(a:result(), "k", "sum"))
    a:evict("s", 0)
    assert.has_error(function() a:merge(1, 2) end, "agg:merge: dst: no group has state id 1")
  end)

  it("raises on a key batch of another shape", function()
    local a = agg()
    assert.has_error(function() a:lookup(batch({})) end,
      "bad argument #1 to 'lookup' (key batch has 4 columns, expected 2)")
    local swapped = assert(core.rows_batch(assert(core.schema("s timestamp, k string?")), { { s = 0, k = "a" } }))
    assert.has_error(function() a:lookup(swapped) end,
      "bad argument #1 to 'lookup' (key column 0: expected string, got timestamp)")
  end)
end)
