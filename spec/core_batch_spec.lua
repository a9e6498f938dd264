-- Specs for the batch bindings of tide.core (core/l_batch.c, l_schema.c):
-- json values as Lua values (the core scanner reads them), JSON lines in
-- and out of batches, and core.schema, the one schema constructor, with
-- its failure triple.

local core = require "tide.core"

-- The Lua value of one json column value written as `text`.
local function json_value(text)
  local b = assert(core.json_batch("j json?", '{"j":' .. text .. "}"))
  return b:row(1).j
end

describe("json values in Lua", function()
  it("turns objects into tables without their null members, arrays into sequences with holes", function()
    local v = json_value('{"a":1,"b":null,"c":[1,null,3],"h":{"i":[]}}')
    assert.same({ a = 1, c = { 1, nil, 3 }, h = { i = {} } }, v)
    assert.is_nil(rawget(v, "b"))
    assert.is_true(v.c[1] == 1 and v.c[2] == nil and v.c[3] == 3)
    assert.same({ true, false }, json_value("[true,false,null]"))
  end)

  it("decodes escapes, \\u escapes and surrogate pairs to UTF-8", function()
    assert.equal('x"y\u{e9}\u{1F600}/\n\t\\', json_value([["x\"y\u00e9\ud83d\ude00\/\n\t\\"]]))
    assert.same({ ["k\n"] = "v\u{e9}" }, json_value([[{"k\n":"v\u00e9"}]]))
    assert.equal("plain", json_value('"plain"'))
  end)

  it("keeps integers within int64 as integers, and the rest as floats", function()
    assert.equal(math.mininteger, json_value("-9223372036854775808"))
    assert.equal("integer", math.type(json_value("9223372036854775807")))
    assert.equal("integer", math.type(json_value("-0")))
    local big = json_value("12345678901234567890")
    assert.equal("float", math.type(big))
    assert.equal(1.2345678901234567e19, big)
    assert.equal(1500.0, json_value("1.5e3"))
    assert.equal("float", math.type(json_value("2.0")))
    assert.equal(0.1, json_value("0.1"))
  end)

  it("gives nil for a NULL json column, and reads many values of one batch", function()
    local b = assert(core.json_batch("j json?", '{"j":null}\n{"j":{"s":"a\\\\b"}}\n{}\n{"j":[[[1]]]}'))
    assert.equal(4, b:nrows())
    assert.is_nil(b:row(1).j)
    assert.same({ s = "a\\b" }, b:row(2).j)
    assert.is_nil(b:row(3).j)
    assert.same({ { { 1 } } }, b:row(4).j)
  end)
end)

describe("JSON lines", function()
  it("round-trips through batch_json", function()
    local text = '{"t":1500,"k":"a\\"b","j":{"x":[1,2]}}\n{"t":-1,"k":null,"j":null}\n'
    local b = assert(core.json_batch("t timestamp, k string?, j json?", text))
    assert.equal(text, core.batch_json(b))
    assert.equal('{"t":"1970-01-01T00:00:01.500Z","k":"a\\"b","j":{"x":[1,2]}}\n',
      core.batch_json(core.slice(b, 0, 1), { iso8601 = true }))
  end)

  it("returns nil, the line and the reason, and the error's name", function()
    local b, msg, name = core.json_batch("n int", '{"n":1}\n\n{"n":"x"}')
    assert.is_nil(b)
    assert.equal('line 3: field \'n\': expected int, got "x"', msg)
    assert.equal("ESCHEMA", name)
  end)
end)

describe("core.schema", function()
  it("builds a schema from DDL or the array form, with its fields and canonical DDL", function()
    local s = assert(core.schema({ { "ts", "timestamp" }, { name = "n", type = "int", nullable = true, default = 0 } }))
    assert.equal(2, s:len())
    assert.equal("ts timestamp, n int? DEFAULT 0", s:ddl())
    assert.same({ { "ts", "timestamp" }, { "n", "int?", default = 0 } }, s:fields())
    assert.equal(s:ddl(), assert(core.schema(s:ddl())):ddl())
  end)

  it("returns nil, the reason and the error's name for a bad schema", function()
    local s, msg, name = core.schema("a int, b nosuchtype")
    assert.is_nil(s)
    assert.matches("nosuchtype", msg)
    assert.equal("EPARSE", name)
    s, msg, name = core.schema({ { "a", "blob" } })
    assert.is_nil(s)
    assert.equal("field 1 ('a'): unknown type 'blob' (allowed: bool, int, double, string, timestamp, json)", msg)
    assert.equal("EINVAL", name)
    s, msg = core.schema({})
    assert.is_nil(s)
    assert.equal("schema: no fields", msg)
  end)
end)
