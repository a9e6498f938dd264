-- Specs for tide.schema (lua/tide/schema.lua): schema inference from JSON
-- lines (tide.infer_schema) and the JSON form of a schema (to_json /
-- from_json) that `tide schema get` prints and `tide schema put` reads.

local tide = require "tide"
local schema = require "tide.schema"

describe("tide.schema", function()
  local dir

  before_each(function()
    local p = io.popen("mktemp -d /tmp/tide-schema-spec-XXXXXX")
    dir = p:read("l")
    p:close()
  end)

  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  -- Write text to a file in the temp directory; returns its path.
  local function sample(text, name)
    local path = dir .. "/" .. (name or "sample.jsonl")
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end

  describe("infer_schema", function()
    it("infers the types of a file's JSON lines, in the order of the JSON text", function()
      local path = sample('{"zeta": 1, "alpha": "x", "ok": true, "ratio": 0.5, "meta": {"k": 1}, "tags": [1]}\n' ..
        '{"alpha": "y", "zeta": 2, "ok": false, "ratio": 1.5, "meta": {}, "tags": []}\n')
      assert.equal("zeta int, alpha string, ok bool, ratio double, meta json, tags json", tide.infer_schema(path))
    end)

    it("adds fields in the order they first appear", function()
      local path = sample('{"b": 1, "a": 2}\n{"c": 3, "b": 4, "a": 5}\n{"a": 6, "d": 7}\n')
      assert.equal("b int?, a int, c int?, d int?", tide.infer_schema(path))
    end)

    it("widens int and double to double", function()
      assert.equal("x double", tide.infer_schema(sample('{"x": 1}\n{"x": 2.5}\n{"x": 3}\n')))
      assert.equal("x double", tide.infer_schema { { x = 2.5 }, { x = 1 } })
    end)

    it("makes a field of mixed types a string, or json when an object or array is involved", function()
      assert.equal("a string, b string, c json, d json",
        tide.infer_schema(sample('{"a": 1, "b": true, "c": {"k": 1}, "d": 1}\n' ..
          '{"a": "x", "b": 2.5, "c": "x", "d": [1]}\n')))
    end)

    it("makes a field nullable when a row lacks it or has it null", function()
      local path = sample('{"a": 1, "b": "x", "c": null}\n{"a": 2, "c": true}\n{"a": null, "b": "y", "c": false}\n')
      assert.equal("a int?, b string?, c bool?", tide.infer_schema(path))
    end)

    it("makes a field that is only ever null a nullable string", function()
      assert.equal("a int, n string?", tide.infer_schema(sample('{"a": 1, "n": null}\n{"a": 2, "n": null}\n')))
    end)

    it("infers timestamps from epoch ms in fields named like a time", function()
      local path = sample('{"ts": 1795262405000, "time": 1795262405000, "timestamp": 1795262405000, ' ..
        '"created_at": 1795262405000, "event_time": 1795262405000, "sent_ts": 1795262405000, ' ..
        '"count": 1795262405000}\n')
      assert.equal("ts timestamp, time timestamp, timestamp timestamp, created_at timestamp, " ..
        "event_time timestamp, sent_ts timestamp, count int", tide.infer_schema(path))
    end)

    it("does not make small integers in a time-named field timestamps", function()
      assert.equal("ts int, updated_at int", tide.infer_schema(sample('{"ts": 5, "updated_at": 1795262405000}\n' ..
        '{"ts": 6, "updated_at": 7}\n')))
    end)

    it("infers timestamps from ISO-8601 strings in any field", function()
      local path = sample('{"when": "2026-11-21T12:00:05Z", "at": "2026-11-21 12:00:05.250", "day": "2026-11-21", ' ..
        '"clock": "12:00:05"}\n')
      assert.equal("when timestamp, at timestamp, day timestamp, clock string", tide.infer_schema(path))
      assert.equal("s string", tide.infer_schema { { s = "2026-11-21T12:00:05Z" }, { s = "soon" } })
    end)

    it("skips blank lines", function()
      assert.equal("a int", tide.infer_schema(sample('\n{"a": 1}\n\n   \n{"a": 2}\n')))
    end)

    it("infers from an array of rows, ordering a row's fields by name", function()
      assert.equal("b int, a string?, c bool?, ts timestamp?",
        tide.infer_schema { { b = 1 }, { ts = 1795262405000, a = "x", b = 2, c = true } })
    end)

    it("names the line of a malformed sample", function()
      local path = sample('{"a": 1}\n\n{"a": 2\n')
      assert.has_error(function() tide.infer_schema(path) end,
        "infer_schema: " .. path .. " line 3: invalid JSON at column 9: expected ',' or '}'")
      path = sample('{"a": 1}\n[1, 2]\n', "array.jsonl")
      assert.has_error(function() tide.infer_schema(path) end,
        "infer_schema: " .. path .. " line 2 is not a JSON object")
    end)

    it("raises on bad arguments, missing files and empty samples", function()
      assert.has_error(function() tide.infer_schema(42) end,
        "infer_schema: bad argument #1: expected a file name or an array of rows, got number")
      assert.has_error(function() tide.infer_schema(dir .. "/none.jsonl") end,
        "infer_schema: " .. dir .. "/none.jsonl: No such file or directory")
      assert.has_error(function() tide.infer_schema(sample("\n\n")) end, "infer_schema: no rows to infer from")
      assert.has_error(function() tide.infer_schema {} end, "infer_schema: no rows to infer from")
      assert.has_error(function() tide.infer_schema { { a = 1 }, "x" } end, "infer_schema: row 2 is not a JSON object")
    end)

    it("gives a DDL that a topic takes, and that reads the sample back", function()
      local path = sample('{"ts": 1795262405000, "device": "a", "signal": 1}\n' ..
        '{"ts": "2026-11-21T12:00:06Z", "device": "b", "signal": 2.5}\n')
      -- mixed epoch ms and ISO text is not a timestamp: a string
      assert.equal("ts string, device string, signal double", tide.infer_schema(path))
      path = sample('{"ts": 1795262405000, "device": "a", "signal": 1}\n' ..
        '{"ts": 1795262406000, "device": "b", "signal": null}\n')
      local ddl = tide.infer_schema(path)
      assert.equal("ts timestamp, device string, signal int?", ddl)
      local db = tide.open(dir .. "/data")
      local t = db:create_topic("events", { schema = ddl })
      assert.equal(2, t:produce(path).appended)
      local rows = {}
      for r in t:read() do rows[#rows + 1] = r end
      assert.same({ offset = 1, partition = 0, ts = 1795262406000, device = "b" }, rows[2])
      db:close()
    end)
  end)

  describe("infer_schema of CSV", function()
    it("names the columns from the header and infers each column's type", function()
      local path = sample('ts,device,signal,ok,ratio,note,seen_at\n' ..
        '2026-11-21T12:00:05Z,a,3,true,0.5,"x, ""y""",1795262405000\n' ..
        '2026-11-21T12:00:06.250Z,b,,FALSE,1,,1795262406000\n', "s.csv")
      assert.equal("ts timestamp, device string, signal int?, ok bool, ratio double, note string?, seen_at timestamp",
        tide.infer_schema(path, { header = true }))
    end)

    it("names the columns _c0, _c1, ... without a header, as Spark does", function()
      local path = sample("1,x\n2,y\n", "s.csv")
      assert.equal("_c0 int, _c1 string", tide.infer_schema(path))
      assert.equal("_c0 int, _c1 string", tide.infer_schema(path, { format = "csv", header = false }))
    end)

    it("takes the separator, quotes the names that are not identifiers, and mixes types as JSON does", function()
      local path = sample('avg(x);n\n1;a\n2.5;7\ntrue;8\n', "data.txt")
      assert.equal("`avg(x)` string, n string", tide.infer_schema(path, { format = "csv", header = true, sep = ";" }))
      path = sample("v\n1\n2.5\n", "w.csv")
      assert.equal("v double", tide.infer_schema(path, { header = true }))
    end)

    it("gives a DDL with which tide.read reads the file back", function()
      local path = sample('ts,device,signal\n2026-11-21T12:00:05Z,a,3\n2026-11-21T12:00:06Z,b,\n', "e.csv")
      local ddl = tide.infer_schema(path, { header = true })
      local rows = tide.read("file", { path = path, format = "csv", header = true, schema = ddl }):collect()
      assert.same({ { ts = 1795262405000, device = "a", signal = 3 }, { ts = 1795262406000, device = "b" } }, rows)
    end)

    it("raises on bad options, a header without records and a bad record", function()
      local path = sample("a,b\n", "h.csv")
      assert.has_error(function() tide.infer_schema(path, { header = true }) end,
        "infer_schema: " .. path .. " holds no records after its header")
      assert.has_error(function() tide.infer_schema(path, { format = "xml" }) end,
        "infer_schema: option 'format' must be json or csv, got 'xml'")
      assert.has_error(function() tide.infer_schema(path, { headers = true }) end,
        "infer_schema: unknown option 'headers' (allowed: format, header, multi_line, sep)")
      assert.has_error(function() tide.infer_schema({ { a = 1 } }, { format = "csv" }) end,
        "infer_schema: bad argument #1: CSV is inferred from a file name, got table")
      path = sample("a,b\n1,2\n3\n", "bad.csv")
      assert.has_error(function() tide.infer_schema(path, { header = true }) end,
        "infer_schema: " .. path .. " line 3: 1 field, the schema has 2")
      path = sample("a,a\n1,2\n", "dup.csv")
      assert.has_error(function() tide.infer_schema(path, { header = true }) end,
        "infer_schema: " .. path .. " line 1: the header names 'a' twice")
    end)
  end)

  describe("the JSON form", function()
    local FIELDS = {
      { "ts", "timestamp" }, { "device", "string", default = "x" }, { "signal", "int?", default = 0 },
      { "ratio", "double", default = 0.5 }, { "meta", "json?", default = { k = { 1, 2 } } }, { "ok", "bool" },
    }

    it("writes a schema as one line of JSON", function()
      assert.equal('{"version":2,"compatibility":"full","fields":[' ..
        '{"name":"ts","type":"timestamp","nullable":false},' ..
        '{"name":"device","type":"string","nullable":false,"default":"x"},' ..
        '{"name":"signal","type":"int","nullable":true,"default":0}]}',
        schema.to_json({ FIELDS[1], FIELDS[2], FIELDS[3] }, { version = 2, compatibility = "full" }))
      assert.equal('{"fields":[{"name":"ok","type":"bool","nullable":false}]}', schema.to_json { { "ok", "bool" } })
    end)

    it("reads back what it writes", function()
      local back = schema.from_json(schema.to_json(FIELDS, { version = 1, compatibility = "backward" }))
      assert.same(FIELDS, back)
      assert.equal("integer", math.type(back[3].default))
      assert.equal("integer", math.type(back[5].default.k[1]))
    end)

    it("reads nullable and default as optional, and a null default as none", function()
      assert.same({ { "a", "int" }, { "b", "string?" }, { "c", "double", default = 2 } },
        schema.from_json('{"fields":[{"name":"a","type":"int"},{"name":"b","type":"string","nullable":true,' ..
          '"default":null},{"name":"c","type":"double","default":2.0}]}'))
    end)

    it("round-trips a registered schema to the same version", function()
      local db = tide.open(dir .. "/data")
      db:create_topic("events", { schema = FIELDS })
      local sc = db:schema("events")
      local text = schema.to_json(sc.fields, sc)
      assert.equal(1, db:register_schema("events", assert(schema.from_json(text))))
      assert.same({ 1 }, db:schema_versions("events"))
      db:close()
    end)

    it("says what is wrong with a bad JSON form", function()
      local cases = {
        { "{", "not JSON: Expected object key string but found T_END at character 2" },
        { "[1]", 'expected an object with a "fields" array' },
        { '{"fields": 1}', 'expected an object with a "fields" array' },
        { '{"fields": []}', '"fields" is empty' },
        { '{"fields": [], "name": "x"}', 'unknown key "name" (allowed: fields, version, compatibility)' },
        { '{"fields": [1]}', "field 1: expected an object" },
        { '{"fields": [{"type": "int"}]}', 'field 1: "name" must be a string' },
        { '{"fields": [{"name": "a"}]}', 'field \'a\': "type" must be a string' },
        { '{"fields": [{"name": "a", "type": "int", "nullable": "yes"}]}',
          'field \'a\': "nullable" must be true or false' },
        { '{"fields": [{"name": "a", "type": "int", "size": 4}]}',
          'field 1: unknown key "size" (allowed: name, type, nullable, default)' },
      }
      for _, c in ipairs(cases) do
        local fields, why = schema.from_json(c[1])
        assert.is_nil(fields)
        assert.equal(c[2], why)
      end
    end)

    it("raises on a default that cannot be written as JSON", function()
      assert.has_error(function() schema.to_json { { "a", "json", default = print } } end,
        "field 'a': default cannot be written as JSON: json: cannot encode a function")
    end)
  end)
end)
