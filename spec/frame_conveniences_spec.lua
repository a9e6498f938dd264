-- The frame conveniences Spark users type first (issue 19): count,
-- distinct, head, columns, print_schema, describe, rename; on static
-- frames, what each does on a stream (an operator, or a refusal that says
-- what to use), and their bad arguments. f:write has its own spec
-- (frame_write_spec.lua).
local tide = require "tide"
local S = require "spec.spark_support"

local function people()
  return tide.from_rows({
    { name = "ann", age = 31, score = 1.5, at = 1000, ok = true },
    { name = "bob", age = 25, score = 2.5, at = 5000, ok = false },
    { name = "cy", age = 40, ok = true },
  }, "name string, age int, score double?, at timestamp?, ok bool")
end

-- What fn prints with io.write, as a string.
local function printed(fn)
  local out, write = {}, io.write
  io.write = function(...) -- luacheck: ignore 122
    for _, s in ipairs { ... } do out[#out + 1] = s end
  end
  local ok, err = pcall(fn)
  io.write = write -- luacheck: ignore 122
  if not ok then error(err, 0) end
  return table.concat(out)
end

local function stream()
  local ms = tide.memory_stream("value int")
  return ms, S.event_time(ms:frame())
end

-- The error message of fn() without its position (the position is the caller's line: checked once per method).
local function err_of(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^[^:]+:%d+: ", ""))
end

describe("frame conveniences", function()
  after_each(S.cleanup)

  describe("count", function()
    it("is the number of rows of a static frame", function()
      assert.equal(3, people():count())
      assert.equal(1, people():where("age > 30 AND name = 'ann'"):count())
      assert.equal(0, tide.from_rows({}, "x int"):count())
      assert.equal("integer", math.type(people():count()))
    end)

    it("refuses a stream, naming the aggregation to use instead", function()
      local _, f = stream()
      local ok, err = pcall(function() local _ = f:count() end)
      assert.is_false(ok)
      assert.matches("^spec/frame_conveniences_spec.lua:%d+: count: a streaming frame has no count to return " ..
        "%(it does not end%): for a running count, write f:group_by%(%):count%(%)", err)
    end)
  end)

  describe("distinct", function()
    it("keeps each distinct row once, in first-seen order", function()
      local f = tide.from_rows({ { a = 1, b = "x" }, { a = 1, b = "y" }, { a = 1, b = "x" }, { a = 2, b = "x" } },
        "a int, b string", { batch_rows = 1 })
      assert.same({ { a = 1, b = "x" }, { a = 1, b = "y" }, { a = 2, b = "x" } }, f:distinct():collect())
      assert.same({ { a = 1 }, { a = 2 } }, f:select("a"):distinct():collect())
    end)

    it("treats NULLs as equal, as Spark's distinct", function()
      local f = tide.from_rows({ { a = 1 }, {}, {}, { a = 1 } }, "a int?")
      assert.same({ { a = 1 }, {} }, f:distinct():collect())
    end)

    it("is a streaming deduplication on a stream, its state evicted by the watermark", function()
      local ms, f = stream()
      f = f:with_watermark("eventTime", "10 seconds"):distinct():select("eventTime")
      local t = S.test_stream(f, { out = S.event_secs })
      t:add(ms, S.ints(10, 11, 10, 12, 11))
      t:check_answer({ 10 }, { 11 }, { 12 })
      t:state_rows(3, 3)
      t:add(ms, S.ints(25)) -- the watermark moves to 15: keys 10..12 forgotten
      t:check_new_answer({ 25 })
      t:state_rows(1, 1)
      t:stop()
      t:start()
      t:add(ms, S.ints(25, 26))
      t:check_new_answer({ 26 })
    end)

    it("refuses a json column, naming it", function()
      local f = tide.from_rows({ { j = { 1 } } }, "j json")
      assert.equal("distinct: cannot compare the json column 'j'", err_of(function() return f:distinct() end))
    end)
  end)

  describe("head", function()
    it("returns the first n rows, or with no n the first row", function()
      assert.same({ { name = "ann", age = 31, score = 1.5, at = 1000, ok = true } }, people():head(1))
      assert.equal(3, #people():head(10))
      assert.same({}, people():head(0))
      assert.equal("bob", people():order_by("age"):head().name)
      assert.is_nil(tide.from_rows({}, "x int"):head())
    end)

    it("refuses bad arguments and streams", function()
      local f = people()
      assert.equal("head: bad argument #1: expected an integer >= 0, got -1", err_of(function() return f:head(-1) end))
      assert.equal("head: bad argument #1: expected an integer >= 0, got 1.5",
        err_of(function() return f:head(1.5) end))
      assert.equal("head: bad argument #1: expected an integer >= 0, got string",
        err_of(function() return f:head("2") end))
      local _, s = stream()
      assert.equal("head: a streaming frame has no rows to return (it does not end): write it to a sink with " ..
        "write_stream (the memory sink's rows are then a static frame, tide.table(name); the console sink prints " ..
        "each batch)", err_of(function() return s:head(2) end))
    end)
  end)

  describe("columns", function()
    it("lists the column names in order, for static frames and streams", function()
      assert.same({ "name", "age", "score", "at", "ok" }, people():columns())
      local _, s = stream()
      assert.same({ "value", "eventTime" }, s:columns())
    end)
  end)

  describe("print_schema", function()
    it("prints Spark's tree with tide's types and nullability", function()
      assert.equal("root\n" ..
        " |-- name: string (nullable = false)\n" ..
        " |-- age: int (nullable = false)\n" ..
        " |-- score: double (nullable = true)\n" ..
        " |-- at: timestamp (nullable = true)\n" ..
        " |-- ok: bool (nullable = false)\n", printed(function() people():print_schema() end))
      local _, s = stream()
      assert.equal("root\n |-- value: int (nullable = false)\n |-- eventTime: timestamp (nullable = false)\n",
        printed(function() s:print_schema() end))
    end)
  end)

  describe("describe", function()
    it("summarises the number and string columns as Spark's describe()", function()
      local d = people():describe()
      assert.same({ { "summary", "string" }, { "name", "string?" }, { "age", "string?" }, { "score", "string?" } },
        d:schema())
      assert.same({
        { summary = "count", name = "3", age = "3", score = "2" },
        { summary = "mean", age = "32.0", score = "2.0" },
        { summary = "stddev", age = "7.54983443527075", score = "0.7071067811865476" },
        { summary = "min", name = "ann", age = "25", score = "1.5" },
        { summary = "max", name = "cy", age = "40", score = "2.5" },
      }, d:collect())
    end)

    it("describes the named columns, timestamps and bools with count, min and max", function()
      assert.same({
        { summary = "count", at = "2", ok = "3" },
        { summary = "mean" },
        { summary = "stddev" },
        { summary = "min", at = "1970-01-01T00:00:01Z", ok = "false" },
        { summary = "max", at = "1970-01-01T00:00:05Z", ok = "true" },
      }, people():describe("at", "ok"):collect())
    end)

    it("gives NULL stddev for one value and NULL mean, min and max for none", function()
      local f = tide.from_rows({ { x = 4 } }, "x int?")
      assert.same({ "1", "4.0", nil, "4", "4" }, (function()
        local r = f:describe():collect()
        return { r[1].x, r[2].x, r[3].x, r[4].x, r[5].x }
      end)())
      local none = tide.from_rows({ {} }, "x double?"):describe():collect()
      assert.same({ { summary = "count", x = "0" }, { summary = "mean" }, { summary = "stddev" },
        { summary = "min" }, { summary = "max" } }, none)
    end)

    it("writes doubles as Spark does (Java's Double.toString)", function()
      local f = tide.from_rows({ { x = 12345678.5 }, { x = 0.0001 }, { x = 1e20 } }, "x double")
      local r = f:describe():collect()
      assert.equal("1.0E20", r[5].x)
      assert.equal("1.0E-4", r[4].x)
      assert.equal("1.23456785E7", tide.from_rows({ { x = 12345678.5 } }, "x double"):describe():collect()[2].x)
      assert.equal("1.0E7", tide.from_rows({ { x = 1e7 } }, "x double"):describe():collect()[2].x)
      assert.equal("0.001", tide.from_rows({ { x = 0.001 } }, "x double"):describe():collect()[2].x)
    end)

    it("refuses bad columns and streams", function()
      local f = people()
      assert.equal("describe: unknown column 'zz' (columns: name, age, score, at, ok)",
        err_of(function() return f:describe("zz") end))
      assert.equal("describe: bad argument #2: expected a column name, got number",
        err_of(function() return f:describe("age", 3) end))
      local j = tide.from_rows({ { j = { 1 } } }, "j json")
      assert.equal("describe: cannot describe the json column 'j' (types: int, double, string, bool, timestamp)",
        err_of(function() return j:describe("j") end))
      local s = tide.from_rows({ { summary = "x" } }, "summary string")
      assert.matches("describe: the result's first column is 'summary'", err_of(function() return s:describe() end))
      local _, st = stream()
      assert.matches("^describe: a streaming frame has no rows to return", err_of(function() return st:describe() end))
    end)
  end)

  describe("rename", function()
    it("renames columns in place, keeping the others", function()
      local f = people():rename { age = "years", name = "who" }
      assert.same({ "who", "years", "score", "at", "ok" }, f:columns())
      assert.same({ who = "cy", years = 40, ok = true }, f:order_by("years DESC"):head())
      assert.matches("^Rename %[age AS years, name AS who%]", f:explain())
      -- names may swap
      assert.same({ "age", "name" }, people():select("name", "age"):rename { name = "age", age = "name" }:columns())
      assert.same(people():collect(), people():rename {}:collect())
    end)

    it("keeps the watermark on a renamed event-time column", function()
      local ms, f = stream()
      f = f:with_watermark("eventTime", "10 seconds"):rename { eventTime = "t" }
        :group_by(tide.window("t", "5 seconds")):count()
      local t = S.test_stream(f, { mode = "append", out = S.window_count })
      t:add(ms, S.ints(10, 11, 12))
      t:check_new_answer()
      t:add(ms, S.ints(25))
      t:check_new_answer({ 10, 3 })
    end)

    it("refuses unknown columns, naming the columns, and bad arguments", function()
      local f = people()
      local ok, err = pcall(function() local _ = f:rename { nope = "x" } end)
      assert.is_false(ok)
      assert.matches("^spec/frame_conveniences_spec.lua:%d+: rename: unknown column 'nope' %(columns: name, age, " ..
        "score, at, ok%)$", err)
      assert.equal('rename: bad argument #1: expected a table of old = "new" names, got string',
        err_of(function() return f:rename("age") end))
      assert.equal('rename: expected old = "new" with column names as strings, got ["age"] = number',
        err_of(function() return f:rename { age = 5 } end))
      assert.equal('rename: expected old = "new" with column names as strings, got [1] = "x"',
        err_of(function() return f:rename { "x" } end))
      assert.equal("rename: two columns would be named 'age' (name and age); rename or drop one of them",
        err_of(function() return f:rename { name = "age" } end))
    end)
  end)
end)
