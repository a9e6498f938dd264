-- Specs for the memory sink and tide.table (connectors/memory.lua): the
-- sink keeps batches (copies of what the engine hands it), per batch id.

local core = require "tide.core"
local tide = require "tide"
local memory = require "tide.connectors.memory"

local sink_d = memory.sinks.memory

describe("the memory sink", function()
  local schema, sink
  before_each(function()
    schema = core.schema("k string, n int")
    sink = sink_d.new({}, { query_name = "mem_spec" })
  end)
  after_each(function() memory.drop_table("mem_spec") end)

  local function batch(rows) return assert(core.rows_batch(schema, rows)) end

  local function collect() return tide.table("mem_spec"):collect() end

  it("keeps copies of its batches: the engine may close what it handed over", function()
    local b = batch { { k = "a", n = 1 }, { k = "b", n = 2 } }
    sink:add_batch(0, { b }, "append", schema)
    b:close()
    assert.same({ { k = "a", n = 1 }, { k = "b", n = 2 } }, collect())
  end)

  it("holds each batch id once: a re-run batch replaces its rows, in batch id order", function()
    sink:add_batch(1, { batch { { k = "b", n = 2 } } }, "append", schema)
    sink:add_batch(0, { batch { { k = "a", n = 1 } }, batch { { k = "a2", n = 1 } } }, "append", schema)
    sink:add_batch(1, { batch { { k = "B", n = 20 } } }, "append", schema)
    assert.same({ { k = "a", n = 1 }, { k = "a2", n = 1 }, { k = "B", n = 20 } }, collect())
  end)

  it("is the last batch in complete mode", function()
    sink:add_batch(0, { batch { { k = "a", n = 1 } } }, "complete", schema)
    sink:add_batch(1, { batch { { k = "a", n = 2 }, { k = "b", n = 1 } } }, "complete", schema)
    assert.same({ { k = "a", n = 2 }, { k = "b", n = 1 } }, collect())
  end)

  it("is read as a view: a frame runs over what the table holds when it runs, and can run again", function()
    sink:add_batch(0, { batch { { k = "a", n = 1 } } }, "append", schema)
    local f = tide.table("mem_spec")
    sink:add_batch(0, { batch { { k = "x", n = 9 } } }, "append", schema) -- replaces (and closes) the first
    sink:add_batch(1, { batch { { k = "y", n = 8 } } }, "append", schema)
    assert.same({ { k = "x", n = 9 }, { k = "y", n = 8 } }, f:collect())
    assert.same({ { k = "x", n = 9 }, { k = "y", n = 8 } }, f:collect())
    assert.same({ { k = "y", n = 8 } }, f:where("n < 9"):collect())
  end)

  it("names the tables there are when one is missing", function()
    sink:add_batch(0, {}, "append", schema)
    local ok, err = pcall(tide.table, "nope")
    assert.is_false(ok)
    -- other specs of the same run may hold tables too
    assert.matches(": table: no memory table 'nope' %(tables: [%w_, ]*mem_spec[%w_, ]*%)$", err)
  end)
end)
