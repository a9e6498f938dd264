-- Specs for tide.frame (lua/tide/frame.lua over the bindings core/l_*.c): every
-- operator of API.md s.3 on static frames, its errors (the analyzer raises
-- when the frame is built), NULL handling, windows (SEMANTICS.md s.1 and
-- Spark's DataFrameTimeWindowingSuite), joins, sorting, show and explain,
-- and Lua UDFs with their failures.

local tide = require "tide"
local frame = require "tide.frame"

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local ts = tide.parse_time

-- What show() prints, as a string.
local function shown(f, ...)
  local out = {}
  local write = io.write
  io.write = function(...) -- luacheck: ignore 122
    for _, s in ipairs { ... } do out[#out + 1] = s end
  end
  local ok, err = pcall(f.show, f, ...)
  io.write = write -- luacheck: ignore 122
  if not ok then error(err, 0) end
  return table.concat(out)
end

-- The message of an error raised while running a frame (level 0 errors: no
-- position prefix to strip).
local function run_error(f)
  local ok, err = pcall(f.collect, f)
  assert(not ok, "expected the run to fail")
  return err
end

-- A copy of rows sorted by a canonical text of each row (for results whose
-- order is not specified).
local function canon(v)
  if type(v) ~= "table" then return tostring(v) .. "/" .. (math.type(v) or type(v)) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = k .. "=" .. canon(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

local function sorted(rows)
  local copy = {}
  for i, r in ipairs(rows) do copy[i] = r end
  table.sort(copy, function(a, b) return canon(a) < canon(b) end)
  return copy
end

-- A frame marked streaming, to check that static-only operators refuse it.
-- (There is no streaming source yet; this builds one from frame internals.)
local function streaming(schema)
  local f = frame.from_batches("Stream", tide.from_rows({}, schema):schema(), function()
    return function() return nil end
  end)
  f._node.static = false
  return f
end

local EV_SCHEMA = "ts timestamp?, dev string?, sig int?, p double?"
local EV = {
  { ts = 1000, dev = "a", sig = 1, p = 1.5 },
  { ts = 2000, dev = "b", sig = nil, p = 2.0 },
  { ts = nil, dev = nil, sig = 3, p = nil },
  { ts = 11000, dev = "a", sig = 4, p = 0.25 },
  { ts = -500, dev = nil, sig = nil, p = nil },
}

local function ev(opts) return tide.from_rows(EV, EV_SCHEMA, opts) end

describe("tide.frame", function()

  describe("from_rows", function()
    it("makes a static frame whose collect gives the rows back, NULLs as missing keys", function()
      assert.same(EV, ev():collect())
      assert.same(EV, ev { batch_rows = 2 }:collect())
    end)

    it("infers a schema from the rows when none is given (names sorted)", function()
      assert.same({ { "s", "string" }, { "x", "int" } }, tide.from_rows({ { x = 1, s = "a" } }):schema())
    end)

    it("gives an empty frame for no rows", function()
      assert.same({}, tide.from_rows({}, "x int"):collect())
    end)

    it("names the row and field of a row that breaks the schema, counting across batches", function()
      assert.has_error(function() tide.from_rows({ { x = "a" } }, "x int") end,
        "from_rows: row 1: field 'x': expected int, got string \"a\"")
      local rows = { { x = 1 }, { x = 2 }, { x = "a" } }
      assert.has_error(function() tide.from_rows(rows, "x int", { batch_rows = 2 }) end,
        "from_rows: row 3: field 'x': expected int, got string \"a\"")
      assert.has_error(function() tide.from_rows({ { x = 1, y = 2 } }, "x int") end,
        "from_rows: row 1: unknown field 'y' (fields: x)")
      assert.has_error(function() tide.from_rows({ {} }, "x int") end,
        "from_rows: row 1: missing field 'x' (not nullable)")
    end)

    it("checks its arguments", function()
      assert.has_error(function() tide.from_rows(5) end,
        "from_rows: bad argument #1: expected an array of rows, got number")
      assert.has_error(function() tide.from_rows({}, "x foo") end,
        "from_rows: bad schema: at position 3: unknown type 'foo' (allowed: bool, int, double, string, " ..
          "timestamp, json)")
      assert.has_error(function() tide.from_rows({}, "x int", { batch_rows = 0 }) end,
        "from_rows: option 'batch_rows' must be >= 1, got 0")
      assert.has_error(function() tide.from_rows({}, "x int", { bogus = 1 }) end,
        "from_rows: unknown option 'bogus' (allowed: batch_rows)")
    end)
  end)

  describe("schema, collect, tostring", function()
    it("returns the schema in array form, nullability as a trailing ?", function()
      assert.same({ { "ts", "timestamp?" }, { "dev", "string?" }, { "sig", "int?" }, { "p", "double?" } },
        ev():schema())
    end)

    it("describes itself", function()
      assert.equal("tide frame [ts timestamp?, dev string?, sig int?, p double?]", tostring(ev()))
    end)

    it("blames a call with . instead of :", function()
      local f = ev()
      assert.has_error(function() f.select("dev") end,
        "select: bad self: expected a frame (use f:select(...), not f.select(...))")
      assert.has_error(function() f.collect() end,
        "collect: bad self: expected a frame (use f:collect(...), not f.collect(...))")
    end)

    it("can run the same frame twice with the same result", function()
      local f = ev { batch_rows = 2 }:where("sig IS NOT NULL")
      assert.same(f:collect(), f:collect())
    end)
  end)

  describe("select", function()
    it("projects columns and expressions, NULLs propagating", function()
      assert.same({ { dev = "a", s2 = 2 }, { dev = "b" }, { s2 = 6 }, { dev = "a", s2 = 8 }, {} },
        ev():select("dev", "sig * 2 AS s2"):collect())
      assert.same({ { "dev", "string?" }, { "s2", "int?" } }, ev():select("dev", "sig * 2 AS s2"):schema())
    end)

    it("keeps the order of its arguments and allows a column twice under another name", function()
      assert.same({ { "p", "double?" }, { "dev", "string?" }, { "d2", "string?" } },
        ev():select("p", "dev", "dev AS d2"):schema())
    end)

    it("raises at definition time for an unknown column, naming those that exist", function()
      assert.has_error(function() ev():select("dev", "sigal") end,
        "select: unknown column 'sigal' (columns: ts, dev, sig, p)")
    end)

    it("raises for no arguments, duplicate names and non-strings", function()
      assert.has_error(function() ev():select() end, "select: expected at least one column or expression")
      assert.has_error(function() ev():select("dev", "sig AS dev") end,
        "select: duplicate column 'dev' in the result (use AS to rename one)")
      assert.has_error(function() ev():select(5) end, "select: expected an expression string, got number")
    end)
  end)

  describe("where and filter", function()
    it("keep the rows where the condition is TRUE, dropping FALSE and NULL", function()
      local want = { { ts = 11000, dev = "a", sig = 4, p = 0.25 }, { ts = nil, dev = nil, sig = 3, p = nil } }
      assert.same(sorted(want), sorted(ev():where("sig > 1"):collect()))
      assert.same(ev():where("sig > 1"):collect(), ev():filter("sig > 1"):collect())
    end)

    it("keep the rows for which a Lua function returns a truthy value", function()
      local got = ev { batch_rows = 2 }:filter(function(r) return r.dev == "a" and r.sig end):collect()
      assert.same({ EV[1], EV[4] }, got)
    end)

    it("hand the function rows with NULLs as missing keys", function()
      local seen = {}
      ev():filter(function(r)
        seen[#seen + 1] = r.sig == nil
        return false
      end):collect()
      assert.same({ false, true, false, false, true }, seen)
    end)

    it("hand the function each row whole, no field left over from the row before", function()
      local copies = {}
      ev { batch_rows = 3 }:filter(function(r)
        local c = {}
        for k, v in pairs(r) do c[k] = v end
        copies[#copies + 1] = c
        return true
      end):collect()
      assert.same(EV, copies)
    end)

    it("make the row read-only: adding a field fails the query and says what to use", function()
      local ok, err = pcall(function()
        return ev():filter(function(r) r.extra = 1 return true end):collect()
      end)
      assert.is_false(ok)
      assert.truthy(err:find("filter: the row is read-only (field 'extra'); use map or with_column to change rows",
        1, true), err)
    end)

    it("run through the core binding with its optional arguments left out", function()
      local core = require "tide.core"
      local schema = assert(core.schema("v int"))
      local b = assert(core.rows_batch(schema, { { v = 1 }, { v = 2 }, { v = 3 } }))
      local kept = assert(core.udf_filter(b, function(r) return r.v ~= 2 end))
      assert.equal(2, kept:nrows())
      local mapped = assert(core.udf_map(b, function(r) return { v = r.v * 10 } end, schema))
      assert.same({ 10, 20, 30, n = 3 }, mapped:column("v"))
      b:close(); kept:close(); mapped:close()
    end)

    it("keep the schema", function()
      assert.same(ev():schema(), ev():where("sig > 1"):schema())
    end)

    it("refuse a non-bool condition, a bad expression and a non-string non-function", function()
      assert.has_error(function() ev():where("sig") end, "where: the condition must be a bool expression, sig is int")
      assert.has_error(function() ev():where("sig +") end, "where: at position 6: unexpected end of expression")
      assert.has_error(function() ev():filter(5) end,
        "filter: expected an expression string or a function(row), got number")
      assert.has_error(function() ev():where(5) end, "where: expected an expression string, got number")
      assert.has_error(function() ev():filter("nope = 1") end,
        "where: unknown column 'nope' (columns: ts, dev, sig, p)")
    end)
  end)

  describe("with_column and drop", function()
    it("adds a column at the end", function()
      local f = ev():with_column("s10", "sig * 10")
      assert.same({ { "ts", "timestamp?" }, { "dev", "string?" }, { "sig", "int?" }, { "p", "double?" }, { "s10",
        "int?" } },
        f:schema())
      assert.same({ 10, nil, 30, 40, nil }, (function()
        local out = {}
        for i, r in ipairs(f:collect()) do out[i] = r.s10 end
        return out
      end)())
    end)

    it("replaces a column of the same name in place", function()
      local f = ev():with_column("sig", "coalesce(sig, 0) + 1")
      assert.same({ { "ts", "timestamp?" }, { "dev", "string?" }, { "sig", "int" }, { "p", "double?" } }, f:schema())
      local out = {}
      for i, r in ipairs(f:collect()) do out[i] = r.sig end
      assert.same({ 2, 1, 4, 5, 1 }, out)
    end)

    it("takes a Lua function of the row with the column's type", function()
      local f = ev { batch_rows = 3 }:with_column("label", function(r) return r.dev and (r.dev .. "!") end, "string?")
      assert.same({ "a!", "b!", nil, "a!", nil }, (function()
        local out = {}
        for i, r in ipairs(f:collect()) do out[i] = r.label end
        return out
      end)())
      assert.same({ "label", "string?" }, f:schema()[5])
    end)

    it("replaces a column with a Lua function, changing its type", function()
      local f = ev():with_column("sig", function(r) return tostring(r.sig) end, "string")
      assert.same({ "sig", "string" }, f:schema()[3])
      assert.equal("nil", f:collect()[2].sig)
    end)

    it("fails the run when a with_column function returns a value of the wrong type", function()
      local f = ev():with_column("z", function() return "s" end, "int")
      assert.equal('with_column: row 1 {"ts":"1970-01-01T00:00:01Z","dev":"a","sig":1,"p":1.5}: ' ..
        'with_column returned a row that does not fit its schema: field \'z\': expected int, got string "s"',
        run_error(f))
    end)

    it("raises for a bad name, a bad expression or a function without a type", function()
      assert.has_error(function() ev():with_column(5, "1") end,
        "with_column: bad argument #1: expected a column name, got number")
      assert.has_error(function() ev():with_column("z", "dev + 1") end,
        "with_column: cannot apply '+' to string and int: (dev + 1)")
      assert.has_error(function() ev():with_column("z", function() end) end,
        "with_column: a Lua function needs the column's type as third argument, e.g. " ..
        "f:with_column('z', fn, 'double?')")
      assert.has_error(function() ev():with_column("z", function() end, "foo") end,
        "with_column: field 5 ('z'): unknown type 'foo' (allowed: bool, int, double, string, timestamp, json)")
    end)

    it("drop removes columns", function()
      assert.same({ { "dev", "string?" }, { "p", "double?" } }, ev():drop("ts", "sig"):schema())
      assert.same({ { dev = "a", p = 1.5 }, { dev = "b", p = 2.0 }, {}, { dev = "a", p = 0.25 }, {} },
        ev():drop("ts", "sig"):collect())
    end)

    it("drop refuses unknown columns and dropping every column", function()
      assert.has_error(function() ev():drop("zz") end, "drop: unknown column 'zz' (columns: ts, dev, sig, p)")
      assert.has_error(function() ev():drop(5) end, "drop: unknown column number (columns: ts, dev, sig, p)")
      assert.has_error(function() ev():drop("ts", "dev", "sig", "p") end, "drop: cannot drop every column")
    end)
  end)

  describe("map and flat_map", function()
    it("map turns each row into a row of the declared schema, nil dropping it", function()
      local f = ev { batch_rows = 2 }:map(function(r)
        if r.dev == nil then return nil end
        return { dev = r.dev, twice = (r.sig or 0) * 2 }
      end, "dev string, twice int")
      assert.same({ { "dev", "string" }, { "twice", "int" } }, f:schema())
      assert.same({ { dev = "a", twice = 2 }, { dev = "b", twice = 0 }, { dev = "a", twice = 8 } }, f:collect())
    end)

    it("flat_map emits any number of rows per row", function()
      local f = ev { batch_rows = 2 }:flat_map(function(r, emit)
        for i = 1, (r.sig or 0) do emit { dev = r.dev, i = i } end
      end, "dev string?, i int")
      assert.same({ { dev = "a", i = 1 }, { i = 1 }, { i = 2 }, { i = 3 },
        { dev = "a", i = 1 }, { dev = "a", i = 2 }, { dev = "a", i = 3 }, { dev = "a", i = 4 } }, f:collect())
    end)

    it("fail the run with the row and the traceback when the function raises", function()
      local line = debug.getinfo(1, "l").currentline + 2
      local f = ev():map(function(r)
        if r.sig == 4 then error("boom") end
        return { x = 1 }
      end, "x int")
      local err = run_error(f)
      local head = 'map: row 4 {"ts":"1970-01-01T00:00:11Z","dev":"a","sig":4,"p":0.25}: spec/frame_spec.lua:' ..
        line .. ": boom\nstack traceback:\n"
      assert.equal(head, err:sub(1, #head))
      assert.truthy(err:find("spec/frame_spec.lua:" .. line .. ": in function", 1, true))
    end)

    it("name the row of the whole input, not of its batch, when the function raises", function()
      local f = ev { batch_rows = 2 }:map(function(r)
        if r.sig == 4 then error("boom") end
        return { x = 1 }
      end, "x int")
      local err = run_error(f)
      local want = 'map: row 4 {"ts":"1970-01-01T00:00:11Z","dev":"a","sig":4,"p":0.25}: '
      assert.equal(want, err:sub(1, #want))
    end)

    it("report a raised non-string value", function()
      local f = ev():filter(function(r) if r.dev == nil then error({}) end return true end)
      local err = run_error(f)
      assert.truthy(err:match('^filter: row 3 {"ts":null,"dev":null,"sig":3,"p":null}: table: 0x%x+\nstack ' ..
        'traceback:\n'))
    end)

    it("fail the run naming the row and the field when a returned row breaks the schema", function()
      local r2 = '{"ts":"1970-01-01T00:00:02Z","dev":"b","sig":null,"p":2.0}'
      assert.equal("map: row 2 " .. r2 .. ": map returned a row that does not fit its schema: field 'x': " ..
        'expected int, got string "no"',
        run_error(ev():map(function(r) return { x = r.dev == "b" and "no" or 1 } end, "x int")))
      assert.equal("map: row 2 " .. r2 .. ": map returned a row that does not fit its schema: unknown field 'y' " ..
        "(fields: x)", run_error(ev():map(function(r) return { x = 1, y = r.dev == "b" and 1 or nil } end, "x int")))
      assert.equal("map: row 2 " .. r2 .. ": map returned a row that does not fit its schema: missing field 'x' " ..
        "(not nullable)", run_error(ev():map(function(r) return { x = r.dev ~= "b" and 1 or nil } end, "x int")))
      assert.equal("flat_map: row 2 " .. r2 .. ": flat_map returned a row that does not fit its schema: missing " ..
        "field 'x' (not nullable)",
        run_error(ev():flat_map(function(r, emit) if r.dev == "b" then emit {} end end, "x int")))
    end)

    it("check their arguments when the frame is built", function()
      assert.has_error(function() ev():map(5, "x int") end,
        "map: bad argument #1: expected a function(row), got number")
      assert.has_error(function() ev():map(function() end) end, "map: a schema for the function's rows is required")
      assert.has_error(function() ev():map(function() end, "x foo") end,
        "map: bad schema: at position 3: unknown type 'foo' (allowed: bool, int, double, string, timestamp, json)")
      assert.has_error(function() ev():flat_map(5, "x int") end,
        "flat_map: bad argument #1: expected a function(row, emit), got number")
      assert.has_error(function() ev():flat_map(function() end) end,
        "flat_map: a schema for the function's rows is required")
    end)
  end)

  describe("group_by and agg", function()
    local ALL = { "sum(sig)", "avg(p)", "min(ts)", "max(dev)", "first(sig)", "last(sig)", "count_distinct(sig)",
      "count(sig)", n = "count(*)" }

    it("computes every aggregate, NULL keys forming their own group, groups in first-seen order", function()
      local got = ev():group_by("dev"):agg(ALL):collect()
      assert.same({
        { dev = "a", ["sum(sig)"] = 5, ["avg(p)"] = 0.875, ["min(ts)"] = 1000, ["max(dev)"] = "a", ["first(sig)"] = 1,
          ["last(sig)"] = 4, ["count_distinct(sig)"] = 2, ["count(sig)"] = 2, n = 2 },
        { dev = "b", ["avg(p)"] = 2.0, ["min(ts)"] = 2000, ["max(dev)"] = "b", ["count_distinct(sig)"] = 0,
          ["count(sig)"] = 0, n = 1 },
        { ["sum(sig)"] = 3, ["min(ts)"] = -500, ["first(sig)"] = 3, ["count_distinct(sig)"] = 1, ["count(sig)"] = 1,
          n = 2 },
      }, got)
    end)

    it("types the result: key columns, array items in order, then named items by name; counts not nullable", function()
      assert.same({ { "dev", "string?" }, { "sum(sig)", "int?" }, { "avg(p)", "double?" }, { "min(ts)", "timestamp?" },
        { "max(dev)", "string?" }, { "first(sig)", "int?" }, { "last(sig)", "int?" }, { "count_distinct(sig)", "int" },
        { "count(sig)", "int" }, { "n", "int" } }, ev():group_by("dev"):agg(ALL):schema())
    end)

    it("gives the same result whatever the batches", function()
      assert.same(ev():group_by("dev"):agg(ALL):collect(), ev { batch_rows = 1 }:group_by("dev"):agg(ALL):collect())
      assert.same(ev():group_by("dev"):agg(ALL):collect(), ev { batch_rows = 2 }:group_by("dev"):agg(ALL):collect())
    end)

    it("gives an all-NULL group NULL for sum, avg, min, max, first, last and 0 for the counts", function()
      local f = tide.from_rows({ { k = "x" }, { k = "x" } }, "k string, v int?")
      assert.same({ { k = "x", ["count(v)"] = 0, ["count_distinct(v)"] = 0, ["count(*)"] = 2 } },
        f:group_by("k"):agg { "sum(v)", "avg(v)", "min(v)", "max(v)", "first(v)", "last(v)", "count(v)",
          "count_distinct(v)", "count(*)" }:collect())
    end)

    it("keeps NULLs in first and last (the first and last row's value)", function()
      local f = tide.from_rows({ { k = 1 }, { k = 1, v = 5 }, { k = 1 } }, "k int, v int?", { batch_rows = 1 })
      assert.same({ { k = 1, ["last(v)"] = nil } }, f:group_by("k"):agg { "first(v)", "last(v)" }:collect())
      local g = tide.from_rows({ { k = 1, v = 2 }, { k = 1 }, { k = 1, v = 9 } }, "k int, v int?")
      assert.same({ { k = 1, ["first(v)"] = 2, ["last(v)"] = 9 } }, g:group_by("k"):agg { "first(v)",
        "last(v)" }:collect())
    end)

    it("groups by several keys of any type, each NULL a key value of its own", function()
      local f = tide.from_rows({
        { a = 1, b = "x", c = true, t = 5 }, { a = 1, b = "x", c = true, t = 5 }, { b = "x", c = true, t = 5 },
        { a = 1, c = true, t = 5 }, { a = 1, b = "x", t = 5 }, { a = 1, b = "x", c = true },
        {}, {}, { a = 1, b = "x", c = false, t = 5 },
      }, "a int?, b string?, c bool?, t timestamp?")
      assert.same({
        { a = 1, b = "x", c = true, t = 5, count = 2 }, { b = "x", c = true, t = 5, count = 1 },
        { a = 1, c = true, t = 5, count = 1 }, { a = 1, b = "x", t = 5, count = 1 },
        { a = 1, b = "x", c = true, count = 1 }, { count = 2 }, { a = 1, b = "x", c = false, t = 5, count = 1 },
      }, f:group_by("a", "b", "c", "t"):count():collect())
    end)

    it("groups by doubles by value, -0.0 with 0.0 (Spark normalizes them)", function()
      local f = tide.from_rows({ { d = 1.5 }, { d = 1.5 }, { d = -0.0 }, { d = 0.0 }, {} }, "d double?")
      local got = f:group_by("d"):count():collect()
      assert.equal(3, #got)
      assert.same({ { d = 1.5, count = 2 }, { d = 0.0, count = 2 }, { count = 1 } }, got)
    end)

    it("groups by expressions, named by their text or alias", function()
      assert.same({ { parity = 1, count = 2 }, { count = 2 }, { parity = 0, count = 1 } },
        ev():group_by("sig % 2 AS parity"):count():collect())
      assert.same({ { "(sig > 1)", "bool?" }, { "count", "int" } }, ev():group_by("sig > 1"):count():schema())
    end)

    it("count() counts the rows of each group", function()
      assert.same({ { dev = "a", count = 2 }, { dev = "b", count = 1 }, { count = 2 } },
        ev():group_by("dev"):count():collect())
    end)

    it("counts distinct values, NULL excluded, also as count(DISTINCT x)", function()
      local f = tide.from_rows({ { k = 1, v = "a" }, { k = 1, v = "a" }, { k = 1, v = "b" }, { k = 1 }, { k = 2 } },
        "k int, v string?", { batch_rows = 2 })
      assert.same({ { k = 1, cd = 2, cd2 = 2 }, { k = 2, cd = 0, cd2 = 0 } },
        f:group_by("k"):agg { cd = "count_distinct(v)", cd2 = "count(DISTINCT v)" }:collect())
    end)

    it("wraps int sums on overflow, averages ints as doubles", function()
      local f = tide.from_rows({ { k = 1, v = math.maxinteger }, { k = 1, v = 1 } }, "k int, v int")
      assert.same({ { k = 1, s = math.mininteger, a = (math.maxinteger + 1.0) / 2 } },
        f:group_by("k"):agg { s = "sum(v)", a = "avg(v)" }:collect())
    end)

    it("takes min and max of strings bytewise and of bools with false < true", function()
      local f = tide.from_rows({ { s = "b", b = true }, { s = "B", b = false }, { s = "é" } }, "s string, b bool?")
      assert.same({ { k = 1, ["min(s)"] = "B", ["max(s)"] = "é", ["min(b)"] = false, ["max(b)"] = true } },
        f:group_by("1 AS k"):agg { "min(s)", "max(s)", "min(b)", "max(b)" }:collect())
    end)

    it("sums doubles as doubles", function()
      local got = ev():group_by("dev"):agg { s = "sum(p)" }:collect()
      assert.same({ { dev = "a", s = 1.75 }, { dev = "b", s = 2.0 }, {} }, got)
      assert.equal("float", math.type(got[2].s))
    end)

    it("gives no groups for no rows", function()
      assert.same({}, tide.from_rows({}, "k string, x int"):group_by("k"):count():collect())
    end)

    it("raises at definition time for bad keys and aggregates", function()
      local f = ev()
      assert.same({ { count = 5 } }, f:group_by():count():collect()) -- no key: a global aggregation
      assert.has_error(function() f:group_by(5) end,
        "group_by: key 1 must be a column, an expression, a tide.window or a tide.session_window, got number")
      assert.has_error(function() f:group_by("zz") end, "group_by: unknown column 'zz' (columns: ts, dev, sig, p)")
      local g = f:group_by("dev")
      assert.has_error(function() g:agg {} end,
        "agg: expected at least one aggregate (count, sum, min, max, avg, first, last, count_distinct)")
      assert.has_error(function() g:agg "count(*)" end, "agg: expected a table of aggregate expressions, got string")
      assert.has_error(function() g:agg { "sig + 1" } end,
        "agg: (sig + 1) is not an aggregate (use count, sum, min, max, avg, first, last, count_distinct)")
      assert.has_error(function() g:agg { "sum(dev)" } end, "agg: sum needs a number, got string")
      assert.has_error(function() g:agg { "avg(dev)" } end, "agg: avg needs a number, got string")
      assert.has_error(function() g:agg { "sum(sum(sig))" } end, "agg: aggregate function 'sum' is not allowed here")
      assert.has_error(function() g:agg { "sum(sig) + 1" } end, "agg: aggregate function 'sum' is not allowed here")
      assert.has_error(function() g:agg { "first(sig, sig)" } end, "agg: function 'first' takes 1 argument, got 2")
      assert.has_error(function() g:agg { "sum(zz)" } end, "agg: unknown column 'zz' (columns: ts, dev, sig, p)")
      assert.has_error(function() g:agg { [5] = "count(*)" } end,
        "agg: keys must be names (n = \"count(*)\") or positions in an array")
      assert.has_error(function() g:agg { "count(*)", "count(*)" } end,
        "agg: duplicate column 'count(*)' in the result (use AS to rename one)")
      assert.has_error(function() g:agg { dev = "count(*)" } end,
        "agg: duplicate column 'dev' in the result (use AS to rename one)")
      assert.has_error(function() g.agg {} end, "agg: bad self: expected a grouped frame (f:group_by(...):agg{...})")
      assert.has_error(function() g.count() end, "count: bad self: expected a grouped frame")
    end)

    it("refuses json keys and ordering aggregates of json", function()
      local j = tide.from_rows({ { k = { 1 } } }, "k json")
      assert.has_error(function() j:group_by("k") end, "group_by: cannot group by the json value k")
      assert.has_error(function() j:group_by("1 AS one"):agg { "min(k)" } end,
        "agg: min needs a comparable value, got json")
    end)
  end)

  describe("windows", function()
    -- DataFrameTimeWindowingSuite's data: 19:39:34 (1), 19:39:56 (2), 19:39:27 (4)
    local DTW = {
      { time = ts "2016-03-27 19:39:34", value = 1, id = "a" },
      { time = ts "2016-03-27 19:39:56", value = 2, id = "a" },
      { time = ts "2016-03-27 19:39:27", value = 4, id = "b" },
    }
    local function dtw(opts) return tide.from_rows(DTW, "time timestamp?, value int, id string", opts) end

    -- rows as { "start", "end", x } with times as text (UTC, no zone)
    local function windows(rows, x)
      local out = {}
      for i, r in ipairs(rows) do out[i] = { r.window_start, r.window_end, r[x] } end
      return out
    end
    local function w(a, b, x) return { ts(a), ts(b), x } end

    it("groups by tumbling windows aligned to the epoch (DTW 'tumbling window groupBy')", function()
      local got = dtw():group_by(tide.window("time", "10 seconds")):agg { counts = "count(*)" }
        :order_by("window_start"):collect()
      assert.same({
        w("2016-03-27 19:39:20", "2016-03-27 19:39:30", 1),
        w("2016-03-27 19:39:30", "2016-03-27 19:39:40", 1),
        w("2016-03-27 19:39:50", "2016-03-27 19:40:00", 1),
      }, windows(got, "counts"))
    end)

    it("groups by sliding windows; 19:39:34 is not in [19:39:24, 19:39:34) (DTW 'sliding window grouping')",
      function()
        local got = dtw():group_by(tide.window("time", "10 seconds", "3 seconds", "0 second"))
          :agg { counts = "count(*)" }:order_by("window_start"):collect()
        assert.same({
          w("2016-03-27 19:39:18", "2016-03-27 19:39:28", 1),
          w("2016-03-27 19:39:21", "2016-03-27 19:39:31", 1),
          w("2016-03-27 19:39:24", "2016-03-27 19:39:34", 1),
          w("2016-03-27 19:39:27", "2016-03-27 19:39:37", 2),
          w("2016-03-27 19:39:30", "2016-03-27 19:39:40", 1),
          w("2016-03-27 19:39:33", "2016-03-27 19:39:43", 1),
          w("2016-03-27 19:39:48", "2016-03-27 19:39:58", 1),
          w("2016-03-27 19:39:51", "2016-03-27 19:40:01", 1),
          w("2016-03-27 19:39:54", "2016-03-27 19:40:04", 1),
        }, windows(got, "counts"))
      end)

    it("assigns sliding windows in select: one row per (row, window), by ascending start within a row", function()
      local got = dtw { batch_rows = 1 }:select(tide.window("time", "10 seconds", "3 seconds"), "value"):collect()
      assert.same({
        w("2016-03-27 19:39:27", "2016-03-27 19:39:37", 1), w("2016-03-27 19:39:30", "2016-03-27 19:39:40", 1),
        w("2016-03-27 19:39:33", "2016-03-27 19:39:43", 1),
        w("2016-03-27 19:39:48", "2016-03-27 19:39:58", 2), w("2016-03-27 19:39:51", "2016-03-27 19:40:01", 2),
        w("2016-03-27 19:39:54", "2016-03-27 19:40:04", 2),
        w("2016-03-27 19:39:18", "2016-03-27 19:39:28", 4), w("2016-03-27 19:39:21", "2016-03-27 19:39:31", 4),
        w("2016-03-27 19:39:24", "2016-03-27 19:39:34", 4), w("2016-03-27 19:39:27", "2016-03-27 19:39:37", 4),
      }, windows(got, "value"))
      assert.same({ { "window_start", "timestamp" }, { "window_end", "timestamp" }, { "value", "int" } },
        dtw():select(tide.window("time", "10 seconds", "3 seconds"), "value"):schema())
    end)

    it("places windows that start before the epoch for early times (DTW 'negative timestamps')", function()
      local f = tide.from_rows({ { time = ts "1970-01-01 00:00:02", value = 1 },
        { time = ts "1970-01-01 00:00:12", value = 2 } }, "time timestamp, value int")
      local got = f:select(tide.window("time", "10 seconds", "10 seconds", "5 seconds"), "value")
        :order_by("window_start"):collect()
      assert.same({ w("1969-12-31 23:59:55", "1970-01-01 00:00:05", 1), w("1970-01-01 00:00:05",
        "1970-01-01 00:00:15", 2) },
        windows(got, "value"))
    end)

    it("handles negative event times with Java's % (rem < 0)", function()
      local f = tide.from_rows({ { t = -500 }, { t = -5000 }, { t = -5001 } }, "t timestamp")
      local got = f:select(tide.window("t", 5000, 2500), "t"):collect()
      assert.same({ { -5000, 0, -500 }, { -2500, 2500, -500 }, { -7500, -2500, -5000 }, { -5000, 0, -5000 },
        { -10000, -5000, -5001 }, { -7500, -2500, -5001 } },
        (function()
          local out = {}
          for i, r in ipairs(got) do out[i] = { r.window_start, r.window_end, r.t } end
          return out
        end)())
    end)

    it("aligns windows to the epoch plus the start offset (DTW 'time window in SQL with three expressions')",
      function()
        local got = dtw():select(tide.window("time", "10 seconds", "10 seconds", "5 seconds"), "value")
          :order_by("window_start", "value"):collect()
        assert.same({ w("2016-03-27 19:39:25", "2016-03-27 19:39:35", 1), w("2016-03-27 19:39:25",
          "2016-03-27 19:39:35", 4),
          w("2016-03-27 19:39:55", "2016-03-27 19:40:05", 2) }, windows(got, "value"))
      end)

    it("accepts a negative start offset (SPARK-21590)", function()
      local ok, win = pcall(tide.window, "time", "10 seconds", "10 seconds", "-5 seconds")
      assert.is_true(ok, tostring(win))
      local got = dtw():select(win, "value"):order_by("window_start", "value"):collect()
      assert.same({ w("2016-03-27 19:39:25", "2016-03-27 19:39:35", 1), w("2016-03-27 19:39:25",
        "2016-03-27 19:39:35", 4),
        w("2016-03-27 19:39:55", "2016-03-27 19:40:05", 2) }, windows(got, "value"))
    end)

    it("handles millisecond sliding windows (DTW 'millisecond precision sliding windows')", function()
      local f = tide.from_rows({ { time = ts "2016-03-27 09:00:00.41", value = 3 },
        { time = ts "2016-03-27 09:00:00.62", value = 6 }, { time = ts "2016-03-27 09:00:00.715", value = 8 } },
        "time timestamp, value int")
      local got = f:group_by(tide.window("time", "200 milliseconds", "40 milliseconds", "0 milliseconds"))
        :agg { counts = "count(*)" }:order_by("window_start"):collect()
      local want = {}
      local starts = { 240, 280, 320, 360, 400, 440, 480, 520, 560, 600, 640, 680 }
      local counts = { 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1 }
      local base = ts "2016-03-27 09:00:00"
      for i, s in ipairs(starts) do want[i] = { base + s, base + s + 200, counts[i] } end
      assert.same(want, windows(got, "counts"))
    end)

    it("gives no window to a NULL time (DTW 'null timestamps')", function()
      local f = tide.from_rows({ { time = ts "2016-03-27 09:00:05", value = 1 }, { time = ts "2016-03-27 09:00:32",
        value = 2 },
        { value = 3 }, { value = 4 } }, "time timestamp?, value int")
      local got = f:select(tide.window("time", "10 seconds"), "value"):order_by("window_start"):collect()
      assert.same({ 1, 2 }, { got[1].value, got[2].value })
      assert.equal(2, #got)
    end)

    it("combines a window key with other keys and aggregates", function()
      local got = ev { batch_rows = 2 }:group_by(tide.window("ts", "10 seconds"), "dev")
        :agg { n = "count(*)", s = "sum(sig)" }:collect()
      assert.same({
        { window_start = 0, window_end = 10000, dev = "a", n = 1, s = 1 },
        { window_start = 0, window_end = 10000, dev = "b", n = 1 },
        { window_start = 10000, window_end = 20000, dev = "a", n = 1, s = 4 },
        { window_start = -10000, window_end = 0, n = 1 },
      }, got)
      assert.same({ { "window_start", "timestamp" }, { "window_end", "timestamp" }, { "dev", "string?" }, { "n",
        "int" },
        { "s", "int?" } }, ev():group_by(tide.window("ts", "10 seconds"), "dev"):agg { n = "count(*)", s = "sum(sig)" }
        :schema())
    end)

    it("checks size, slide and start when the window is made", function()
      assert.has_error(function() tide.window("ts", 0) end, "window: window size must be > 0")
      assert.has_error(function() tide.window("ts", "10 s", "20 s") end,
        "window: window slide must be > 0 and <= the size")
      assert.has_error(function() tide.window("ts", "10 s", 0) end, "window: window slide must be > 0 and <= the size")
      assert.has_error(function() tide.window("ts", "10 s", "5 s", "5 s") end,
        "window: window start must be smaller than the slide in absolute value")
      assert.has_error(function() tide.window("ts", "10 s", nil, "10 s") end,
        "window: window start must be smaller than the slide in absolute value")
      assert.has_error(function() tide.window("ts", "ten") end,
        "window size: invalid duration 'ten' (use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)")
      assert.has_error(function() tide.window("ts", "10 s", "x") end,
        "window slide: invalid duration 'x' (use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)")
      assert.has_error(function() tide.window("ts") end,
        "window size: invalid duration nil (use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)")
      assert.has_error(function() tide.window(5, "10 s") end,
        "window: bad argument #1: expected a column name, got number")
    end)

    it("refuses a start offset whose absolute value reaches the slide, negative too", function()
      assert.has_error(function() tide.window("ts", "10 s", "5 s", "-5 s") end,
        "window: window start must be smaller than the slide in absolute value")
    end)

    it("describes itself", function()
      assert.equal("window(ts, 10 min)", tostring(tide.window("ts", "10 minutes")))
      assert.equal("window(ts, 10 min, slide 5 min)", tostring(tide.window("ts", "10 minutes", "5 minutes")))
      assert.equal("window(ts, 10 min, start 1 min)", tostring(tide.window("ts", "10 minutes", nil, "1 minute")))
      assert.equal("window(ts, 1500 ms, slide 500 ms, start 250 ms)", tostring(tide.window("ts", 1500, 500, 250)))
    end)

    it("refuses a column that is not a timestamp, an unknown column and a clash with window_start", function()
      local f = tide.from_rows({ { k = 1, v = "a" } }, "k int, v string")
      assert.has_error(function() f:group_by(tide.window("k", 10)) end,
        "group_by: window(k, 10 ms) needs a timestamp column, 'k' is int")
      assert.has_error(function() f:select(tide.window("k", 10), "v") end,
        "select: window(k, 10 ms) needs a timestamp column, 'k' is int")
      assert.has_error(function() f:group_by(tide.window("zz", 10)) end,
        "group_by: unknown column 'zz' in window(zz, 10 ms) (columns: k, v)")
      assert.has_error(function() f:select(tide.window("zz", 10), "v") end,
        "select: unknown column 'zz' in window(zz, 10 ms) (columns: k, v)")
      local g = tide.from_rows({ { ts = 0, window_start = 1 } }, "ts timestamp, window_start int")
      assert.has_error(function() g:group_by(tide.window("ts", 10)) end,
        "group_by: the input already has a column 'window_start'; windows add window_start and window_end")
    end)

    it("refuses two windows in one group_by or select", function()
      local f = tide.from_rows({ { ts = 0 } }, "ts timestamp")
      assert.has_error(function() f:group_by(tide.window("ts", 10), tide.window("ts", 20)) end,
        "group_by: only one window key (tide.window or tide.session_window)")
      assert.has_error(function() f:select(tide.window("ts", 10), tide.window("ts", 20)) end,
        "select: only one window per select")
    end)
  end)

  describe("join", function()
    local L = { { k = 1, v = "a" }, { k = 2, v = "b" }, { v = "n" }, { k = 3, v = "c" }, { k = 1, v = "a2" } }
    local R = { { k = 1, name = "one" }, { k = 1, name = "uno" }, { name = "null" }, { k = 2, name = "two" } }
    local function left(opts) return tide.from_rows(L, "k int?, v string", opts) end
    local function right(opts) return tide.from_rows(R, "k int?, name string", opts) end

    it("inner: every match, in left order then right order; NULL keys never match", function()
      assert.same({ { k = 1, v = "a", name = "one" }, { k = 1, v = "a", name = "uno" }, { k = 2, v = "b",
        name = "two" },
        { k = 1, v = "a2", name = "one" }, { k = 1, v = "a2", name = "uno" } }, left():join(right(), "k"):collect())
    end)

    it("left: unmatched left rows, NULL keys included, get NULLs on the right", function()
      assert.same({ { k = 1, v = "a", name = "one" }, { k = 1, v = "a", name = "uno" }, { k = 2, v = "b",
        name = "two" },
        { v = "n" }, { k = 3, v = "c" }, { k = 1, v = "a2", name = "one" }, { k = 1, v = "a2", name = "uno" } },
        left():join(right(), "k", "left"):collect())
      assert.same(left():join(right(), "k", "left"):collect(), left():join(right(), { "k" }, "left_outer"):collect())
    end)

    it("has the left columns, then the right ones but the keys, nullable on the right of a left join", function()
      assert.same({ { "k", "int?" }, { "v", "string" }, { "name", "string" } }, left():join(right(), "k"):schema())
      assert.same({ { "k", "int?" }, { "v", "string" }, { "name", "string?" } }, left():join(right(), "k",
        "left"):schema())
    end)

    it("gives the same result whatever the batches of either side", function()
      assert.same(left():join(right(), "k", "left"):collect(),
        left { batch_rows = 2 }:join(right { batch_rows = 1 }, "k", "left"):collect())
    end)

    it("joins on several keys, a NULL in any key never matching", function()
      local a = tide.from_rows({ { k = 1, j = "x", b = 10 }, { k = 1, j = "y", b = 20 }, { k = 1, b = 30 } },
        "k int, j string?, b int")
      local c = tide.from_rows({ { k = 1, j = "x", name = "X" }, { k = 1, name = "N" } },
        "k int, j string?, name string")
      assert.same({ { k = 1, j = "x", b = 10, name = "X" } }, a:join(c, { "k", "j" }):collect())
      assert.same({ { k = 1, j = "x", b = 10, name = "X" }, { k = 1, j = "y", b = 20 }, { k = 1, b = 30 } },
        a:join(c, { "k", "j" }, "left"):collect())
    end)

    it("joins on string, bool and timestamp keys", function()
      local a = tide.from_rows({ { s = "é", b = true, t = 5 } }, "s string, b bool, t timestamp")
      local c = tide.from_rows({ { s = "é", b = true, t = 5, x = 1 }, { s = "e", b = true, t = 5, x = 2 } },
        "s string, b bool, t timestamp, x int")
      assert.same({ { s = "é", b = true, t = 5, x = 1 } }, a:join(c, { "s", "b", "t" }):collect())
    end)

    it("gives no rows against an empty right side (inner) and all left rows (left)", function()
      local empty = tide.from_rows({}, "k int?, name string")
      assert.same({}, left():join(empty, "k"):collect())
      assert.same(L, left():join(empty, "k", "left"):collect())
    end)

    it("raises at definition time for bad arguments, unknown or clashing columns and key types", function()
      local l, r = left(), right()
      assert.has_error(function() l:join(r, "k", "outer") end,
        "join: bad argument #3: how must be inner or left, got 'outer'")
      assert.has_error(function() l:join(r, "x") end, "join: unknown column 'x' on the left (columns: k, v)")
      assert.has_error(function() l:join(r, "v") end, "join: unknown column 'v' on the right (columns: k, name)")
      assert.has_error(function() l:join(l, "k") end,
        "join: column 'v' is on both sides; rename one first (select ... AS ...)")
      assert.has_error(function() l:join(tide.from_rows({}, "k string"), "k") end,
        "join: column 'k' is int on the left and string on the right")
      assert.has_error(function() l:join(5, "k") end, "join: bad argument #1: expected a frame, got number")
      assert.has_error(function() l:join(r) end,
        "join: bad argument #2: expected a column name or an array of column names")
      assert.has_error(function() l:join(r, {}) end,
        "join: bad argument #2: expected a column name or an array of column names")
      local d = tide.from_rows({}, "k double")
      assert.has_error(function() d:join(d, "k") end, "join: cannot join on the double column 'k'")
    end)

    it("refuses a streaming right side for a static left side", function()
      assert.has_error(function() left():join(streaming("k int?, name string"), "k") end,
        "join: a stream joins a static frame as its left side: put the stream on the left " ..
        "(stream:join(static, on, how))")
    end)
  end)

  describe("union", function()
    it("gives the rows of both frames, nullable where either side is", function()
      local a = tide.from_rows({ { k = 1, v = "a" } }, "k int, v string")
      local b = tide.from_rows({ { v = "b" }, { k = 3, v = "c" } }, "k int?, v string")
      local u = a:union(b)
      assert.same({ { k = 1, v = "a" }, { v = "b" }, { k = 3, v = "c" } }, u:collect())
      assert.same({ { "k", "int?" }, { "v", "string" } }, u:schema())
      assert.same({ { k = 1, v = "a" }, { k = 1, v = "a" } }, a:union(a):collect())
    end)

    it("refuses frames with other names, types or order of columns", function()
      local a = tide.from_rows({}, "k int?, v string")
      assert.has_error(function() a:union(tide.from_rows({}, "k int?, name string")) end,
        "union: the frames have different columns: (k int?, v string) and (k int?, name string)")
      assert.has_error(function() a:union(tide.from_rows({}, "v string, k int")) end,
        "union: the frames have different columns: (k int?, v string) and (v string, k int)")
      assert.has_error(function() a:union(tide.from_rows({}, "k double, v string")) end,
        "union: the frames have different columns: (k int?, v string) and (k double, v string)")
      assert.has_error(function() a:union(tide.from_rows({}, "k int")) end,
        "union: the frames have different columns: (k int?, v string) and (k int)")
      assert.has_error(function() a:union(5) end, "union: bad argument #1: expected a frame, got number")
    end)
  end)

  describe("order_by and limit", function()
    local ROWS = { { k = 1, v = "a" }, { k = 2, v = "bb" }, { v = "n" }, { k = 3, v = "ccc" }, { k = 1, v = "a2" } }
    local function f(opts) return tide.from_rows(ROWS, "k int?, v string", opts) end
    local function vals(rows)
      local out = {}
      for i, r in ipairs(rows) do out[i] = r.v end
      return out
    end

    it("sorts ascending with NULLs first by default, stably", function()
      assert.same({ "n", "a", "a2", "bb", "ccc" }, vals(f():order_by("k"):collect()))
      assert.same({ "n", "a", "a2", "bb", "ccc" }, vals(f():order_by("k ASC"):collect()))
    end)

    it("sorts descending with NULLs last by default, stably", function()
      assert.same({ "ccc", "bb", "a", "a2", "n" }, vals(f():order_by("k DESC"):collect()))
    end)

    it("honours NULLS FIRST and NULLS LAST, in any case", function()
      assert.same({ "a", "a2", "bb", "ccc", "n" }, vals(f():order_by("k NULLS LAST"):collect()))
      assert.same({ "a", "a2", "bb", "ccc", "n" }, vals(f():order_by("k asc nulls last"):collect()))
      assert.same({ "n", "ccc", "bb", "a", "a2" }, vals(f():order_by("k desc nulls first"):collect()))
    end)

    it("sorts by several keys and by expressions, keeping the schema", function()
      assert.same({ "a2", "a", "bb", "ccc", "n" }, vals(f():order_by("k NULLS LAST", "v DESC"):collect()))
      assert.same({ "ccc", "a2", "bb", "a", "n" }, vals(f():order_by("length(v) DESC", "v"):collect()))
      assert.same(f():schema(), f():order_by("length(v) DESC"):schema())
      assert.same({ "k", "v" }, (function()
        local r = f():order_by("length(v)"):collect()[1]
        local keys = {}
        for key in pairs(r) do keys[#keys + 1] = key end
        table.sort(keys)
        return keys
      end)())
    end)

    it("sorts across batches", function()
      assert.same(f():order_by("v DESC"):collect(), f { batch_rows = 2 }:order_by("v DESC"):collect())
    end)

    it("puts NaN above every number, as Spark does", function()
      local g = tide.from_rows({ { d = 1.0 }, { d = 0 / 0 }, { d = -1.0 }, {} }, "d double?")
      local got = g:order_by("d"):collect()
      assert.is_nil(got[1].d)
      assert.same({ -1.0, 1.0 }, { got[2].d, got[3].d })
      assert.is_true(got[4].d ~= got[4].d)
    end)

    it("sorts strings bytewise, bools false first, timestamps by time", function()
      local g = tide.from_rows({ { s = "b", b = true, t = 3 }, { s = "B", b = false, t = -1 }, { s = "é", b = true,
        t = 0 } },
        "s string, b bool, t timestamp")
      assert.same({ "B", "b", "é" }, (function()
        local out = {}
        for i, r in ipairs(g:order_by("s"):collect()) do out[i] = r.s end
        return out
      end)())
      assert.same({ -1, 0, 3 }, (function()
        local out = {}
        for i, r in ipairs(g:order_by("b", "t"):collect()) do out[i] = r.t end
        return out
      end)())
    end)

    it("raises for no keys, bad keys and json keys", function()
      assert.has_error(function() f():order_by() end, "order_by: expected at least one key")
      assert.has_error(function() f():order_by("zz") end, "order_by: unknown column 'zz' (columns: k, v)")
      assert.has_error(function() f():order_by(3) end, "order_by: key 1 must be an expression string")
      assert.has_error(function() tide.from_rows({}, "j json"):order_by("j") end,
        "order_by: cannot order by the json value j")
    end)

    it("limit keeps the first n rows, across batches", function()
      assert.same({ ROWS[1], ROWS[2] }, f { batch_rows = 1 }:limit(2):collect())
      assert.same({}, f():limit(0):collect())
      assert.same(ROWS, f():limit(100):collect())
      assert.same({ { k = 1, v = "a" }, { k = 1, v = "a2" }, { k = 2, v = "bb" } },
        f { batch_rows = 2 }:order_by("k NULLS LAST"):limit(3):collect())
    end)

    it("limit refuses anything but an integer >= 0", function()
      assert.has_error(function() f():limit(-1) end, "limit: bad argument #1: expected an integer >= 0, got -1")
      assert.has_error(function() f():limit(1.5) end, "limit: bad argument #1: expected an integer >= 0, got 1.5")
      assert.has_error(function() f():limit() end, "limit: bad argument #1: expected an integer >= 0, got nil")
    end)
  end)

  describe("static-only operators", function()
    for _, op in ipairs { "collect", "show", "batches" } do
      it("refuses " .. op .. " on a streaming frame", function()
        local s = streaming("k int")
        assert.has_error(function() s[op](s) end,
          op .. ": only for static frames (a stream runs with write_stream)")
      end)
    end
    for _, op in ipairs { "order_by", "limit" } do
      it("refuses " .. op .. " on a streaming frame without an aggregation below", function()
        local s = streaming("k int")
        local args = { order_by = "k", limit = 1 }
        assert.has_error(function() s[op](s, args[op]) end,
          op .. ": on a streaming frame, only after an aggregation, in complete mode (as in Spark)")
        local g = s:group_by("k"):count()
        assert.equal("tide frame [k int, count int] (streaming)", tostring(g[op](g, args[op])))
      end)
    end

    it("lets the other operators build on a streaming frame", function()
      local s = streaming("ts timestamp, k int")
      assert.equal("tide frame [k int, k2 int] (streaming)", tostring(s:select("k", "k * 2 AS k2")))
      assert.truthy(s:where("k > 1"):group_by(tide.window("ts", 10), "k"):count())
    end)
  end)

  describe("show", function()
    local SHOW = {
      { ts = ts "2026-11-21T12:00:05Z", device = "sensor-α", signal = 3, price = 1.5, note = "short" },
      { ts = ts "2026-11-21T12:00:05.250Z", price = 2.0, note = "a note that is much too long to show" },
      { device = "bbb", signal = -12, note = "ééééééééééééééééééééé" },
      { ts = 0, device = "ccc", signal = 1, price = 0.1, note = "" },
    }
    local function sf() return tide.from_rows(SHOW,
      "ts timestamp?, device string?, signal int?, price double?, note string") end

    it("prints an aligned table with null, whole ISO-8601 times, truncated cells and the 'only showing' line",
      function()
      assert.equal([[
+------------------------+--------+------+-----+--------------------+
|                      ts|  device|signal|price|                note|
+------------------------+--------+------+-----+--------------------+
|    2026-11-21T12:00:05Z|sensor-α|     3|  1.5|               short|
|2026-11-21T12:00:05.250Z|    null|  null|  2.0|a note that is mu...|
|                    null|     bbb|   -12| null|ééééééééééééééééé...|
+------------------------+--------+------+-----+--------------------+
only showing top 3 rows
]], shown(sf(), 3))
    end)

    it("prints every row (up to 20) without the 'only showing' line", function()
      assert.equal([[
+------------------------+--------+------+-----+--------------------+
|                      ts|  device|signal|price|                note|
+------------------------+--------+------+-----+--------------------+
|    2026-11-21T12:00:05Z|sensor-α|     3|  1.5|               short|
|2026-11-21T12:00:05.250Z|    null|  null|  2.0|a note that is mu...|
|                    null|     bbb|   -12| null|ééééééééééééééééé...|
|    1970-01-01T00:00:00Z|     ccc|     1|  0.1|                    |
+------------------------+--------+------+-----+--------------------+
]], shown(sf()))
      assert.equal(shown(sf()), shown(sf(), 4))
    end)

    it("says 'row' for one row", function()
      assert.equal("only showing top 1 row\n", shown(sf(), 1):match("[^\n]*\n$"))
    end)

    it("prints the header for an empty frame and for show(0)", function()
      assert.equal([[
+------+
|signal|
+------+
+------+
]], shown(sf():select("signal"):limit(0)))
      assert.equal([[
+------+
|signal|
+------+
+------+
only showing top 0 rows
]], shown(sf():select("signal"), 0))
    end)

    it("prints json compactly and whole doubles with .0", function()
      local out = shown(tide.from_rows({ { j = { a = 1 }, d = 3.0 } }, "j json, d double"))
      assert.equal("|{\"a\":1}|3.0|", out:match("\n(|{[^\n]*)\n"))
    end)

    it("pads columns to at least 3 characters, as Spark does", function()
      assert.equal([[
+---+---+
|  k|  v|
+---+---+
|  1|  a|
+---+---+
]], shown(tide.from_rows({ { k = 1, v = "a" } }, "k int, v string")))
    end)

    it("prints whole cells, left-aligned, with truncate = false, as Spark does", function()
      assert.equal([[
+------------------------+------------------------------------+
|ts                      |note                                |
+------------------------+------------------------------------+
|2026-11-21T12:00:05Z    |short                               |
|2026-11-21T12:00:05.250Z|a note that is much too long to show|
+------------------------+------------------------------------+
only showing top 2 rows
]], shown(sf():select("ts", "note"), 2, false))
    end)

    it("refuses a bad row count", function()
      assert.has_error(function() sf():show(-1) end, "show: bad argument #1: expected an integer >= 0")
      assert.has_error(function() sf():show(1.5) end, "show: bad argument #1: expected an integer >= 0")
    end)
  end)

  describe("explain", function()
    it("prints the plan as an indented tree, each node with its output schema", function()
      assert.equal([[
Project [dev, (sig * 2) AS s2]  => dev string?, s2 int?
  +- Filter (sig > 1)  => ts timestamp?, dev string?, sig int?, p double?
    +- Rows (5)  => ts timestamp?, dev string?, sig int?, p double?]],
        ev():where("sig > 1"):select("dev", "sig * 2 AS s2"):explain())
    end)

    it("shows a windowed aggregation with its window among the keys", function()
      assert.equal("Aggregate [window(ts, 10s, slide 5s), dev] [count(*) AS count]  => window_start timestamp, " ..
        "window_end timestamp, dev string?, count int\n" ..
        "  +- Rows (5)  => ts timestamp?, dev string?, sig int?, p double?",
        ev():group_by(tide.window("ts", "10 seconds", "5 seconds"), "dev"):count():explain())
    end)

    it("shows both sides of a join and of a union as children", function()
      local a = tide.from_rows({}, "k int?, v string")
      local b = tide.from_rows({}, "k int?, name string")
      assert.equal([[
Join left on [k]  => k int?, v string, name string?
  +- Rows (0)  => k int?, v string
  +- Rows (0)  => k int?, name string]], a:join(b, "k", "left"):explain())
      assert.equal([[
Union  => k int?, v string
  +- Rows (0)  => k int?, v string
  +- Rows (0)  => k int?, v string]], a:union(a):explain())
    end)

    it("names every operator", function()
      local text = ev():with_column("x", "sig + 1"):drop("p"):filter(function() return true end)
        :map(function(r) return r end, "ts timestamp?, dev string?, sig int?, x int?")
        :order_by("x DESC"):limit(3):explain()
      local labels = {}
      for line in text:gmatch("[^\n]+") do labels[#labels + 1] = line:match("^[ +-]*(.-)  => ") end
      assert.same({ "Limit 3", "Sort [x DESC NULLS LAST]",
        "Map <Lua function> => ts timestamp?, dev string?, sig int?, x int?", "Filter <Lua function>",
        "Drop [p]", "WithColumn x = (sig + 1)", "Rows (5)" }, labels)
    end)
  end)
end)

-- A where right below group_by runs inside the aggregation (only the rows
-- it keeps, only the columns read). These pin that path's results against
-- plain Lua, for a sliding window (rows repeated) and for a computed key
-- (which may read any column).
describe("tide.frame where fused into group_by", function()
  local rows = {}
  for i = 1, 300 do
    rows[i] = { ts = (i * 377) % 60000 - 5000, dev = ({ "a", "B", "c", nil })[i % 4 + 1], sig = i % 23,
      note = "n" .. i }
  end
  local schema = "ts timestamp, dev string?, sig int, note string"

  local function expected(key_of)
    local out = {}
    for _, r in ipairs(rows) do
      if r.sig >= 7 then
        for _, k in ipairs(key_of(r)) do
          local g = out[k] or { n = 0, s = 0 }
          g.n, g.s = g.n + 1, g.s + r.sig
          out[k] = g
        end
      end
    end
    return out
  end

  local function got(f, key_of)
    local out = {}
    for _, r in ipairs(f:collect()) do out[key_of(r)] = { n = r.n, s = r.s } end
    return out
  end

  it("gives the same sums as plain Lua with a sliding window, one batch or many", function()
    local want = expected(function(r)
      local ks = {}
      -- windows of 10 s sliding by 5 s containing r.ts
      local last = r.ts - (r.ts % 5000)
      for start = last, last - 5000, -5000 do
        if start <= r.ts and r.ts < start + 10000 then ks[#ks + 1] = start .. "|" .. tostring(r.dev) end
      end
      return ks
    end)
    for _, per in ipairs { 300, 7 } do
      local f = tide.from_rows(rows, schema, { batch_rows = per })
        :where("sig >= 7")
        :group_by(tide.window("ts", "10 seconds", "5 seconds"), "dev")
        :agg { "count(*) AS n", "sum(sig) AS s" }
      assert.same(want, got(f, function(r) return r.window_start .. "|" .. tostring(r.dev) end))
    end
  end)

  it("gives the same sums as plain Lua with a computed key", function()
    local want = expected(function(r) return { r.dev and r.dev:lower() or "nil" } end)
    for _, per in ipairs { 300, 7 } do
      local f = tide.from_rows(rows, schema, { batch_rows = per })
        :where("sig >= 7")
        :group_by("lower(dev) AS d")
        :agg { "count(*) AS n", "sum(sig) AS s" }
      assert.same(want, got(f, function(r) return r.d or "nil" end))
    end
  end)
end)

describe("tide.frame Lua filter fused into group_by", function()
  local rows = {}
  for i = 1, 50 do rows[i] = { k = ({ "x", "y", "z" })[i % 3 + 1], v = i } end

  it("gives the same counts and sums as plain Lua, one batch or many", function()
    local want = {}
    for _, r in ipairs(rows) do
      if r.v % 2 == 0 then
        local g = want[r.k] or { n = 0, s = 0 }
        g.n, g.s = g.n + 1, g.s + r.v
        want[r.k] = g
      end
    end
    for _, per in ipairs { 50, 4 } do
      local got = {}
      local f = tide.from_rows(rows, "k string, v int", { batch_rows = per })
        :filter(function(r) return r.v % 2 == 0 end)
        :group_by("k"):agg { "count(*) AS n", "sum(v) AS s" }
      for _, r in ipairs(f:collect()) do got[r.k] = { n = r.n, s = r.s } end
      assert.same(want, got)
    end
  end)

  it("names the row of the whole input when the function raises", function()
    local f = tide.from_rows(rows, "k string, v int", { batch_rows = 4 })
      :filter(function(r) if r.v == 11 then error("eleven") end return true end)
      :group_by("k"):count()
    local ok, err = pcall(f.collect, f)
    assert.is_false(ok)
    assert.equal('filter: row 11 {"k":"z","v":11}: ', err:sub(1, #'filter: row 11 {"k":"z","v":11}: '))
    assert.truthy(err:find("eleven", 1, true))
  end)
end)
