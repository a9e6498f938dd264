-- Specs for the console sink (connectors/console.lua): the exact text it
-- prints per batch.

local core = require "tide.core"
local runtime = require "tide.runtime"
local util = require "tide.util"

local d = runtime.connector("sink", "console")

local function opts(o) return util.check_options(o, d.options, "write_stream(console)") end

local RULE = string.rep("-", 43)

local function batch(schema, rows) return assert(core.rows_batch(schema, rows)) end

describe("the console sink", function()
  local printed, out

  before_each(function()
    printed = {}
    out = function(text) printed[#printed + 1] = text end
  end)

  it("prints the batch id and the batch as a table, as Spark's console sink", function()
    local sink = d.new(opts { out = out }, {})
    assert.is_false(sink.needs_checkpoint)
    assert.equal("ConsoleSink", sink.description)
    local s = core.schema("word string, n int")
    sink:add_batch(3, { batch(s, { { word = "a", n = 2 }, { word = "bcd", n = 10 } }) }, "append", s)
    assert.equal(table.concat({
      RULE,
      "Batch: 3",
      RULE,
      "+----+---+",
      "|word|  n|",
      "+----+---+",
      "|   a|  2|",
      "| bcd| 10|",
      "+----+---+",
      "",
      "",
    }, "\n"), table.concat(printed))
  end)

  it("shows the first num_rows rows across the batches and says so", function()
    local sink = d.new(opts { out = out, num_rows = 3 }, {})
    local s = core.schema("v int")
    sink:add_batch(0, { batch(s, { { v = 1 }, { v = 2 } }), batch(s, { { v = 3 }, { v = 4 } }) }, "update", s)
    assert.equal(table.concat({
      RULE, "Batch: 0", RULE,
      "+---+", "|  v|", "+---+", "|  1|", "|  2|", "|  3|", "+---+",
      "only showing top 3 rows", "", "",
    }, "\n"), table.concat(printed))
  end)

  it("cuts long cells unless truncate is false", function()
    local s = core.schema("text string, ts timestamp")
    local row = { text = "a rather long line of text", ts = 1000 }
    d.new(opts { out = out }, {}):add_batch(1, { batch(s, { row }) }, "append", s)
    assert.equal(table.concat({
      RULE, "Batch: 1", RULE,
      "+--------------------+--------------------+",
      "|                text|                  ts|",
      "+--------------------+--------------------+",
      "|a rather long lin...|1970-01-01T00:00:01Z|",
      "+--------------------+--------------------+",
      "", "",
    }, "\n"), table.concat(printed))
    printed = {}
    d.new(opts { out = out, truncate = false }, {}):add_batch(1, { batch(s, { row }) }, "append", s)
    assert.equal(table.concat({
      RULE, "Batch: 1", RULE,
      "+--------------------------+--------------------+",
      "|text                      |ts                  |",
      "+--------------------------+--------------------+",
      "|a rather long line of text|1970-01-01T00:00:01Z|",
      "+--------------------------+--------------------+",
      "", "",
    }, "\n"), table.concat(printed))
  end)

  it("prints an empty batch as a table without rows, and a re-run batch again", function()
    local sink = d.new(opts { out = out }, {})
    local s = core.schema("value string")
    sink:add_batch(7, {}, "append", s)
    sink:add_batch(7, {}, "append", s)
    local one = table.concat({ RULE, "Batch: 7", RULE, "+-----+", "|value|", "+-----+", "+-----+", "", "" }, "\n")
    assert.equal(one .. one, table.concat(printed))
  end)

  it("writes to a file given as out, and to io.stdout by default", function()
    local f = assert(io.tmpfile())
    local s = core.schema("v int")
    d.new(opts { out = f }, {}):add_batch(0, { batch(s, { { v = 5 } }) }, "append", s)
    f:seek("set")
    local text = f:read("a")
    f:close()
    assert.equal(table.concat({ RULE, "Batch: 0", RULE, "+---+", "|  v|", "+---+", "|  5|", "+---+", "", "" }, "\n"),
      text)
    local real = io.stdout
    io.stdout = { write = function(_, t) printed[#printed + 1] = t end }   -- luacheck: ignore
    local ok, err = pcall(function()
      d.new(opts {}, {}):add_batch(0, { batch(s, { { v = 5 } }) }, "append", s)
    end)
    io.stdout = real   -- luacheck: ignore
    assert(ok, err)
    assert.equal(text, table.concat(printed))
  end)

  it("refuses bad options", function()
    assert.has_error(function() opts { rows = 1 } end,
      "write_stream(console): unknown option 'rows' (allowed: num_rows, out, truncate)")
    assert.has_error(function() opts { num_rows = -1 } end,
      "write_stream(console): option 'num_rows' must be >= 0, got -1")
    assert.has_error(function() opts { truncate = "yes" } end,
      "write_stream(console): option 'truncate' must be a boolean, got string")
    assert.has_error(function() d.new(opts { out = 42 }, {}) end,
      "option 'out' must be a function(text) or a file, got number")
  end)
end)
