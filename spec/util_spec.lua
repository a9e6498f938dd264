-- Specs for tide.util: durations, sizes, option checking, ISO-8601, messages.

local util = require "tide.util"

local DHINT = "(use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)"
local SHINT = "(use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)"

describe("tide.util", function()
  describe("duration", function()
    it("takes integer milliseconds as they are", function()
      assert.equal(0, util.duration(0))
      assert.equal(1500, util.duration(1500))
      assert.equal("integer", math.type(util.duration(1500)))
    end)

    it("takes a float with an integral value as an integer", function()
      assert.equal(250, util.duration(250.0))
      assert.equal("integer", math.type(util.duration(250.0)))
    end)

    it("reads '<n> <unit>' and '<n><unit>' in every unit spelling", function()
      local cases = {
        ["500 ms"] = 500, ["500ms"] = 500, ["2 s"] = 2000, ["2 sec"] = 2000, ["2 secs"] = 2000,
        ["1 second"] = 1000, ["3 seconds"] = 3000, ["1m"] = 60000, ["1 min"] = 60000,
        ["2 mins"] = 120000, ["1 minute"] = 60000, ["10 minutes"] = 600000, ["1h"] = 3600000,
        ["1 hr"] = 3600000, ["1 hour"] = 3600000, ["2 hours"] = 7200000, ["7d"] = 604800000,
        ["1 day"] = 86400000, ["2 days"] = 172800000, ["1w"] = 604800000, ["1 week"] = 604800000,
        ["2 weeks"] = 1209600000,
      }
      for text, ms in pairs(cases) do assert.equal(ms, util.duration(text), text) end
    end)

    it("ignores the case of the unit and surrounding blanks", function()
      assert.equal(10000, util.duration("10 SECONDS"))
      assert.equal(3600000, util.duration(" 1H "))
    end)

    it("reads decimals and rounds to the nearest millisecond", function()
      assert.equal(1500, util.duration("1.5s"))
      assert.equal(500, util.duration("0.5 s"))
      assert.equal(1, util.duration("0.6 ms"))
    end)

    it("reads a bare string of digits as milliseconds", function()
      assert.equal(60000, util.duration("60000"))
    end)

    it("rejects bad input with the documented message", function()
      for _, bad in ipairs { "7x", "ten minutes", "-5 s", "", "1 s s" } do
        assert.has_error(function() util.duration(bad, "trigger") end,
          "trigger: invalid duration '" .. bad .. "' " .. DHINT)
      end
      assert.has_error(function() util.duration(-1, "trigger") end,
        "trigger: invalid duration '-1' " .. DHINT)
      assert.has_error(function() util.duration(1.5, "trigger") end,
        "trigger: invalid duration '1.5' " .. DHINT)
      assert.has_error(function() util.duration({}, "trigger") end,
        "trigger: invalid duration of type table " .. DHINT)
      assert.has_error(function() util.duration(nil) end, "invalid duration nil " .. DHINT)
    end)

    it("blames the caller of the API function by default", function()
      local function api(v)
        local ms = util.duration(v, "api")
        return ms
      end
      local ok, err = pcall(function() local _ = api("bad") end)   -- this line is the call site
      assert.is_false(ok)
      local line = debug.getinfo(1, "l").currentline - 2
      assert.equal("spec/util_spec.lua:" .. line .. ": api: invalid duration 'bad' " .. DHINT,
        (err:gsub("^.-(spec/util_spec%.lua)", "%1")))
    end)

    it("takes the error level as a parameter", function()
      local ok, err = pcall(util.duration, "bad", "x", 0)
      assert.is_false(ok)
      assert.equal("x: invalid duration 'bad' " .. DHINT, err)
    end)
  end)

  describe("format_duration", function()
    it("prints the largest exact unit", function()
      assert.equal("6d", util.format_duration(6 * 86400000))
      assert.equal("1w", util.format_duration(604800000))
      assert.equal("2d", util.format_duration(172800000))
      assert.equal("90 min", util.format_duration(5400000))
      assert.equal("1500 ms", util.format_duration(1500))
      assert.equal("3s", util.format_duration(3000))
      assert.equal("0 ms", util.format_duration(0))
    end)

    it("prints text that duration reads back", function()
      for _, ms in ipairs { 1, 999, 1000, 61000, 5400000, 86400000, 1209600000 } do
        assert.equal(ms, util.duration(util.format_duration(ms)))
      end
    end)
  end)

  describe("size", function()
    it("takes integer bytes as they are", function()
      assert.equal(0, util.size(0))
      assert.equal(4096, util.size(4096))
      assert.equal(4096, util.size(4096.0))
      assert.equal("integer", math.type(util.size(4096.0)))
    end)

    it("reads KB, MB, GB and TB as powers of 1024, like KiB .. TiB", function()
      assert.equal(64 * 1024 * 1024, util.size("64MB"))
      assert.equal(64 * 1024 * 1024, util.size("64MiB"))
      assert.equal(1024 ^ 3 // 1, util.size("1GiB"))
      assert.equal(1024 ^ 3 // 1, util.size("1 gb"))
      assert.equal(512 * 1024, util.size("512 KB"))
      assert.equal(2 * 1024 ^ 4 // 1, util.size("2TB"))
      assert.equal(100, util.size("100b"))
      assert.equal(100, util.size("100"))
      assert.equal(8 * 1024, util.size("8k"))
      assert.equal(1536, util.size("1.5KiB"))
    end)

    it("rejects bad input with the documented message", function()
      for _, bad in ipairs { "64XB", "lots", "-1MB", "" } do
        assert.has_error(function() util.size(bad, "segment_bytes") end,
          "segment_bytes: invalid size '" .. bad .. "' " .. SHINT)
      end
      assert.has_error(function() util.size(-3, "segment_bytes") end,
        "segment_bytes: invalid size '-3' " .. SHINT)
      assert.has_error(function() util.size(true, "segment_bytes") end,
        "segment_bytes: invalid size of type boolean " .. SHINT)
    end)
  end)

  describe("format_size", function()
    it("prints exact binary units, one decimal otherwise", function()
      assert.equal("512 B", util.format_size(512))
      assert.equal("64 MiB", util.format_size(64 * 1024 * 1024))
      assert.equal("1.5 KiB", util.format_size(1536))
      assert.equal("1 GiB", util.format_size(1024 ^ 3 // 1))
      assert.equal("2048 TiB", util.format_size(2048 * 1024 ^ 4 // 1))
    end)
  end)

  describe("check_options", function()
    local spec = {
      sync = "boolean",
      name = "string",
      partitions = { type = "integer", min = 1, max = 1024 },
      ratio = "number",
      retention = "duration",
      segment_bytes = "size",
      mode = { type = "string", values = { "append", "update", "complete" } },
      fn = "function",
      extra = "any",
      level = { type = "integer", default = 3 },
    }

    it("returns an empty table, with defaults, for nil options", function()
      assert.same({ level = 3 }, util.check_options(nil, spec, "f"))
    end)

    it("returns a new table with converted values", function()
      local opts = { sync = false, retention = "7d", segment_bytes = "64MB", partitions = 4.0, mode = "update" }
      local out = util.check_options(opts, spec, "f")
      assert.are_not.equal(opts, out)
      assert.same({ sync = false, retention = 604800000, segment_bytes = 67108864, partitions = 4,
                    mode = "update", level = 3 }, out)
      assert.equal("integer", math.type(out.partitions))
      assert.equal("7d", opts.retention)
    end)

    it("keeps values of type any as they are", function()
      local t = {}
      assert.equal(t, util.check_options({ extra = t }, spec, "f").extra)
    end)

    it("rejects unknown keys, listing the allowed ones sorted", function()
      assert.has_error(function() util.check_options({ foo = 1 }, { b = "any", a = "any", c = "any" }, "f") end,
        "f: unknown option 'foo' (allowed: a, b, c)")
    end)

    it("rejects a value of the wrong type", function()
      assert.has_error(function() util.check_options({ sync = "yes" }, spec, "f") end,
        "f: option 'sync' must be a boolean, got string")
      assert.has_error(function() util.check_options({ fn = 1 }, spec, "f") end,
        "f: option 'fn' must be a function, got number")
      assert.has_error(function() util.check_options({ partitions = 1.5 }, spec, "f") end,
        "f: option 'partitions' must be an integer, got number 1.5")
      assert.has_error(function() util.check_options({ partitions = "2" }, spec, "f") end,
        "f: option 'partitions' must be an integer, got string")
    end)

    it("rejects a string outside the allowed values", function()
      assert.has_error(function() util.check_options({ mode = "x" }, spec, "write_stream") end,
        "write_stream: option 'mode' must be one of append, update, complete, got 'x'")
    end)

    it("rejects numbers outside min and max", function()
      assert.has_error(function() util.check_options({ partitions = 0 }, spec, "f") end,
        "f: option 'partitions' must be >= 1, got 0")
      assert.has_error(function() util.check_options({ partitions = 2000 }, spec, "f") end,
        "f: option 'partitions' must be <= 1024, got 2000")
    end)

    it("names the option in duration and size errors", function()
      assert.has_error(function() util.check_options({ retention = "7x" }, spec, "create_topic") end,
        "create_topic: option 'retention': invalid duration '7x' " .. DHINT)
      assert.has_error(function() util.check_options({ segment_bytes = "big" }, spec, "create_topic") end,
        "create_topic: option 'segment_bytes': invalid size 'big' " .. SHINT)
    end)

    it("rejects options that are not a table", function()
      assert.has_error(function() util.check_options("x", spec, "f") end, "f: options must be a table, got string")
    end)

    it("blames the caller of the API function", function()
      local function api(opts)
        local checked = util.check_options(opts, spec, "api")
        return checked
      end
      local _, err = pcall(function() local _ = api { sync = 1 } end)
      local line = debug.getinfo(1, "l").currentline - 1
      assert.matches("util_spec%.lua:" .. line .. ": api: option 'sync'", err)
      _, err = pcall(function() local _ = api { retention = "soon" } end)
      line = debug.getinfo(1, "l").currentline - 1
      assert.matches("util_spec%.lua:" .. line .. ": api: option 'retention': invalid duration", err)
    end)
  end)

  describe("iso8601", function()
    it("formats the epoch", function()
      assert.equal("1970-01-01T00:00:00Z", util.iso8601(0))
    end)

    it("adds milliseconds only when they are not zero", function()
      assert.equal("2026-11-21T12:00:05Z", util.iso8601(1795262405000))
      assert.equal("2026-11-21T12:00:05.250Z", util.iso8601(1795262405250))
      assert.equal("2026-11-21T12:00:05.007Z", util.iso8601(1795262405007))
    end)

    it("handles leap years and centuries", function()
      assert.equal("2024-02-29T00:00:00Z", util.iso8601(1709164800000))
      assert.equal("2024-03-01T00:00:00Z", util.iso8601(1709164800000 + 86400000))
      assert.equal("2000-02-29T23:59:59.999Z", util.iso8601(951868799999))
      assert.equal("2100-03-01T00:00:00Z", util.iso8601(4107542400000))  -- 2100 is not a leap year
      assert.equal("1999-12-31T23:59:59Z", util.iso8601(946684799000))
    end)

    it("formats negative values as times before 1970", function()
      assert.equal("1969-12-31T23:59:59.999Z", util.iso8601(-1))
      assert.equal("1969-12-31T23:59:59Z", util.iso8601(-1000))
      assert.equal("1900-01-01T00:00:00Z", util.iso8601(-2208988800000))
      assert.equal("1600-02-29T12:00:00Z", util.iso8601(-11670955200000))
    end)

    it("agrees with os.date for a range of times", function()
      for ms = -4e12 // 1, 4e12 // 1, 123456789012 do
        local want = os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000)
        assert.equal(want, util.iso8601(ms - ms % 1000):sub(1, 19))
      end
    end)

    it("accepts an integral float", function()
      assert.equal("1970-01-01T00:00:01Z", util.iso8601(1000.0))
    end)

    it("rejects a non-integer", function()
      assert.has_error(function() util.iso8601("x") end, "bad argument #1 to 'iso8601' (integer expected, got string)")
    end)
  end)

  describe("strip_position", function()
    it("removes Lua position prefixes", function()
      assert.equal("no topic 'x'", util.strip_position("lua/tide/store.lua:12: no topic 'x'"))
      assert.equal("boom", util.strip_position('[string "chunk"]:3: boom'))
      assert.equal("boom", util.strip_position("/a/b.lua:1: c.lua:2: boom"))
      assert.equal("boom", util.strip_position("[C]: boom"))
    end)

    it("keeps messages without a prefix, and the first line only", function()
      assert.equal("line 3: field 'signal': expected int", util.strip_position("line 3: field 'signal': expected int"))
      assert.equal("boom", util.strip_position("x.lua:1: boom\nstack traceback:\n..."))
      assert.equal("nil", util.strip_position(nil))
    end)
  end)

  describe("json_encode and json_decode", function()
    it("write canonical text: keys sorted, integers and exact floats", function()
      assert.equal('{"a":[1,2.5,3.0],"b":{},"c":"q\\"\\n\\u0001","d":true}',
        util.json_encode { b = { x = nil }, a = { 1, 2.5, 3.0 }, d = true, c = 'q"\n\1' })
      assert.equal("0.30000000000000004", util.json_encode(0.1 + 0.2))
      assert.equal("{}", util.json_encode {})
      assert.equal("[]", util.json_encode(setmetatable({}, { __jsontype = "array" })))
      assert.equal('{"1":"a"}', util.json_encode(setmetatable({ "a" }, { __jsontype = "object" })))
      assert.equal(util.json_encode { p = { 3, 1 }, q = "z" }, util.json_encode { q = "z", p = { 3, 1 } })
    end)

    it("refuse what JSON cannot hold", function()
      assert.has_error(function() util.json_encode(0 / 0) end, "json: not a finite number")
      assert.has_error(function() util.json_encode { f = print } end, "json: cannot encode a function")
      assert.has_error(function() util.json_encode { [{}] = 1 } end,
        "json: object keys must be strings or numbers, got table")
    end)

    it("decode with integral numbers as integers and null as nil", function()
      local v = util.json_decode('{"a":[1,2.5],"b":null,"c":{"d":7}}')
      assert.same({ a = { 1, 2.5 }, c = { d = 7 } }, v)
      assert.equal("integer", math.type(v.a[1]))
      assert.same({ nil, "Expected value but found T_END at character 1" }, { util.json_decode("") })
    end)
  end)
  describe("text_table", function()
    it("pads plain columns to the widest cell, counting UTF-8 characters, and leaves the last one unpadded", function()
      local lines = util.text_table({ "name", "n" }, { { "é€", "7" }, { "abcdef", "12" } },
        { right = function(c) return c == 2 end })
      assert.same({ "name     n", "é€       7", "abcdef  12" }, lines)
    end)

    it("draws rules and bars with a minimum width when bordered", function()
      local lines = util.text_table({ "a" }, { { "x" } }, { border = true, min_width = 3 })
      assert.same({ "+---+", "|a  |", "+---+", "|x  |", "+---+" }, lines)
    end)
  end)
end)
