-- Specs for the schema registry through the Lua API (lua/tide/store.lua over
-- core/registry.c and core/store.c): versions, idempotent registration, the
-- seven compatibility modes, refusals that write nothing, defaults, record
-- validation on append, and rows of older versions read back under a newer
-- (or older) one.
--
-- Every test gets a fresh store directory (before_each) that after_each
-- closes and removes.

local tide = require "tide"

local V1 = "ts timestamp, device string, signal int"

-- The keys of a row, sorted, as one string: "offset,partition,signal,ts".
local function keys(row)
  local ks = {}
  for k in pairs(row) do ks[#ks + 1] = k end
  table.sort(ks)
  return table.concat(ks, ",")
end

-- Every row of t:read(opts), without offset and partition.
local function read_all(t, opts)
  local rows = {}
  for r in t:read(opts) do
    r.offset, r.partition = nil, nil
    rows[#rows + 1] = r
  end
  return rows
end

describe("the schema registry", function()
  local dir, db

  before_each(function()
    local p = io.popen("mktemp -d /tmp/tide-registry-spec-XXXXXX")
    dir = p:read("l")
    p:close()
    db = tide.open(dir .. "/data")
  end)

  after_each(function()
    if db then db:close() end
    db = nil
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function create(schema, opts)
    opts = opts or {}
    opts.schema = schema or V1
    return db:create_topic("events", opts)
  end

  describe("versions", function()
    it("registers version 1 when a topic is created with a schema", function()
      create()
      assert.same({ 1 }, db:schema_versions("events"))
      local sc = db:schema("events")
      assert.equal(1, sc.version)
      assert.equal(V1, sc.ddl)
      assert.equal("backward", sc.compatibility)
      assert.same({ { "ts", "timestamp" }, { "device", "string" }, { "signal", "int" } }, sc.fields)
    end)

    it("returns the new version and keeps every earlier one", function()
      create()
      assert.equal(2, db:register_schema("events", V1 .. ", site string?"))
      assert.equal(3, db:register_schema("events", V1 .. ", site string?, note string?"))
      assert.same({ 1, 2, 3 }, db:schema_versions("events"))
      assert.equal(V1, db:schema("events", 1).ddl)
      assert.equal(V1 .. ", site string?", db:schema("events", 2).ddl)
      assert.equal(3, db:schema("events").version)
      assert.equal(3, db:topic("events"):info().schema_version)
    end)

    it("returns the existing version for an identical schema and registers nothing", function()
      create()
      assert.equal(1, db:register_schema("events", V1))
      assert.equal(2, db:register_schema("events", V1 .. ", site string DEFAULT 'hq'"))
      assert.equal(2, db:register_schema("events", V1 .. ", site string DEFAULT 'hq'"))
      -- the array form of the same schema is the same schema
      assert.equal(2, db:register_schema("events",
        { { "ts", "timestamp" }, { "device", "string" }, { "signal", "int" }, { "site", "string", default = "hq" } }))
      -- identical to an older version: that version, and the latest stays
      assert.equal(1, db:register_schema("events", V1))
      assert.same({ 1, 2 }, db:schema_versions("events"))
      assert.equal(2, db:schema("events").version)
    end)

    it("raises for a version that does not exist", function()
      create()
      assert.has_error(function() db:schema("events", 9) end,
        "schema 'events': topic 'events' has no schema version 9 (versions: 1..1)")
      assert.has_error(function() db:schema("events", "1") end,
        "schema: bad argument #2: expected an integer version, got string")
    end)

    it("raises on a topic that does not exist", function()
      create()
      local where = "in store '" .. dir .. "/data'"
      assert.has_error(function() db:register_schema("nope", V1) end, "register_schema: no topic 'nope' " .. where)
      assert.has_error(function() db:check_schema("nope", V1) end, "check_schema: no topic 'nope' " .. where)
      assert.has_error(function() db:set_compatibility("nope", "none") end,
        "set_compatibility: no topic 'nope' " .. where)
      assert.has_error(function() db:schema_versions("nope") end, "no topic 'nope' " .. where .. " (topics: events)")
    end)
  end)

  describe("defaults", function()
    it("takes defaults in the DDL and the array form alike", function()
      create()
      local v = db:register_schema("events", {
        { "ts", "timestamp" }, { "device", "string" }, { "signal", "int", default = 0 },
        { "site", "string", default = "hq" }, { "ratio", "double?", default = 0.5 },
      })
      assert.equal(2, v)
      local sc = db:schema("events")
      assert.equal("ts timestamp, device string, signal int DEFAULT 0, site string DEFAULT 'hq', " ..
        "ratio double? DEFAULT 0.5", sc.ddl)
      assert.equal(0, sc.fields[3].default)
      assert.equal("hq", sc.fields[4].default)
      assert.equal(0.5, sc.fields[5].default)
      assert.equal(2, db:register_schema("events", sc.ddl))
    end)

    it("treats 2.0 and 2 as the same default of a double", function()
      create("ts timestamp, x double DEFAULT 2.0")
      assert.equal(1, db:register_schema("events", { { "ts", "timestamp" }, { "x", "double", default = 2 } }))
      assert.equal("ts timestamp, x double DEFAULT 2", db:schema("events").ddl)
    end)

    it("fills a missing defaulted field on append", function()
      create()
      db:register_schema("events", V1 .. ", site string DEFAULT 'hq'")
      local t = db:topic("events")
      t:append { { ts = 1, device = "a", signal = 1 } }
      assert.same({ { ts = 1, device = "a", signal = 1, site = "hq" } }, read_all(t))
    end)

    it("refuses a default that does not fit its type", function()
      create()
      assert.has_error(function() db:register_schema("events", V1 .. ", site int DEFAULT 'hq'") end,
        "register_schema: bad schema: at position 59: field 'site': DEFAULT must be of type int, got \"hq\"")
      assert.same({ 1 }, db:schema_versions("events"))
    end)
  end)

  describe("compatibility modes", function()
    -- One accepted and one refused change per mode, from V1.
    local cases = {
      { "none", V1:gsub("signal int", "signal string"), V1:gsub("ts timestamp, ", ""),
        "field 'ts' is the topic's time column: it cannot be removed" },
      { "backward", V1 .. ", site string DEFAULT 'hq'", V1 .. ", site string",
        "field 'site' was added without a default and is not nullable, not allowed under backward" },
      { "forward", V1 .. ", site string", "ts timestamp, signal int",
        "field 'device' was removed but has no default and is not nullable, not allowed under forward" },
      { "full", V1 .. ", note string?", V1:gsub("signal int", "signal double"),
        "field 'signal': type changed from int to double, not allowed under full" },
      { "backward_transitive", "ts timestamp, signal double", V1:gsub("signal int", "signal string"),
        "field 'signal': type changed from int to string, not allowed under backward_transitive" },
      { "forward_transitive", V1 .. ", site string", V1:gsub("device string", "device string?"),
        "field 'device' became nullable, not allowed under forward_transitive" },
      { "full_transitive", V1 .. ", site string DEFAULT 'hq'", V1 .. ", site string",
        "field 'site' was added without a default and is not nullable, not allowed under full_transitive" },
    }
    for _, c in ipairs(cases) do
      local mode, good, bad, why = c[1], c[2], c[3], c[4]

      it(mode .. " accepts " .. good, function()
        create(V1, { compatibility = mode })
        assert.is_true(db:check_schema("events", good))
        assert.equal(2, db:register_schema("events", good))
        assert.equal(mode, db:schema("events").compatibility)
      end)

      it(mode .. " refuses " .. bad .. ", saying why", function()
        create(V1, { compatibility = mode })
        local ok, reason = db:check_schema("events", bad)
        assert.is_false(ok)
        assert.equal(why, reason)
        assert.has_error(function() db:register_schema("events", bad) end, "register_schema 'events': " .. why)
        assert.same({ 1 }, db:schema_versions("events"))
      end)
    end

    it("defaults to backward", function()
      assert.equal("backward", create():info().compatibility)
    end)

    it("refuses a type change and a narrowing under backward", function()
      create("ts timestamp, device string, signal double")
      assert.same({ false, "field 'signal': type changed from double to int, not allowed under backward" },
        { db:check_schema("events", V1) })
      assert.same({ false, "field 'device': type changed from string to json, not allowed under backward" },
        { db:check_schema("events", "ts timestamp, device json, signal double") })
    end)

    it("allows removing a field under backward but not under forward without a default", function()
      create()
      assert.is_true(db:check_schema("events", "ts timestamp, signal int"))
      db:set_compatibility("events", "forward")
      assert.same({ false,
        "field 'device' was removed but has no default and is not nullable, not allowed under forward" },
        { db:check_schema("events", "ts timestamp, signal int") })
      db:register_schema("events", "ts timestamp, device string DEFAULT 'x', signal int", { compatibility = "none" })
      db:set_compatibility("events", "forward")
      assert.equal(3, db:register_schema("events", "ts timestamp, signal int"))
    end)

    it("lets a nullable field become NOT NULL only with a default under backward", function()
      create("ts timestamp, device string, signal int?")
      assert.same({ false, "field 'signal' became NOT NULL, not allowed under backward" },
        { db:check_schema("events", V1) })
      assert.equal(2, db:register_schema("events", "ts timestamp, device string, signal int DEFAULT 0"))
      -- and back: nullable again is fine backward (the exact v1 is v1 again)
      assert.equal(1, db:register_schema("events", "ts timestamp, device string, signal int?"))
      assert.same({ 1, 2 }, db:schema_versions("events"))
      assert.equal(3, db:register_schema("events", "ts timestamp, device string, signal int? DEFAULT 1"))
      -- becoming nullable is not forward compatible
      db:set_compatibility("events", "forward")
      assert.same({ false, "field 'device' became nullable, not allowed under forward" },
        { db:check_schema("events", "ts timestamp, device string?, signal int?") })
    end)

    -- v1 has site string?, v2 drops it, v3 brings it back as int?: each step
    -- is fully compatible with the one before, but v3 against v1 is not.
    local T1, T2, T3 = "ts timestamp, device string, site string?", "ts timestamp, device string",
      "ts timestamp, device string, site int?"
    for _, mode in ipairs { "backward", "forward", "full" } do
      it(mode .. " checks only the latest version; " .. mode .. "_transitive checks every one", function()
        create(T1, { compatibility = mode })
        assert.equal(2, db:register_schema("events", T2))
        assert.is_true(db:check_schema("events", T3))
        db:set_compatibility("events", mode .. "_transitive")
        local why = "field 'site': type changed from string to int, not allowed under " .. mode ..
          "_transitive (against version 1)"
        assert.same({ false, why }, { db:check_schema("events", T3) })
        assert.has_error(function() db:register_schema("events", T3) end, "register_schema 'events': " .. why)
        assert.same({ 1, 2 }, db:schema_versions("events"))
        db:set_compatibility("events", mode)
        assert.equal(3, db:register_schema("events", T3))
      end)
    end

    it("sets the mode with set_compatibility and with register_schema's option", function()
      create()
      db:set_compatibility("events", "full_transitive")
      assert.equal("full_transitive", db:topic("events"):info().compatibility)
      assert.equal("full_transitive", db:schema("events").compatibility)
      assert.equal(2, db:register_schema("events", "ts timestamp, signal string", { compatibility = "none" }))
      assert.equal("none", db:schema("events").compatibility)
    end)

    it("raises on a bad mode, listing the modes", function()
      create()
      local modes = "none, backward, forward, full, backward_transitive, forward_transitive, full_transitive"
      assert.has_error(function() db:set_compatibility("events", "bogus") end,
        "set_compatibility: bad mode 'bogus' (allowed: " .. modes .. ")")
      assert.has_error(function() db:set_compatibility("events", nil) end,
        "set_compatibility: bad mode nil (allowed: " .. modes .. ")")
      assert.has_error(function() db:register_schema("events", V1, { compatibility = "sideways" }) end,
        "register_schema: option 'compatibility' must be one of none, backward, forward, full, " ..
        "backward_transitive, forward_transitive, full_transitive, got 'sideways'")
      assert.equal("backward", db:schema("events").compatibility)
    end)
  end)

  describe("refusals", function()
    it("writes nothing on a refused registration, not even its mode", function()
      local t = create()
      assert.has_error(function()
        db:register_schema("events", "ts timestamp, device string, signal string", { compatibility = "full" })
      end, "register_schema 'events': field 'signal': type changed from int to string, not allowed under full")
      assert.same({ 1 }, db:schema_versions("events"))
      assert.equal("backward", t:info().compatibility)
      -- appends still validate against version 1
      t:append { { ts = 1, device = "a", signal = 1 } }
      assert.has_error(function() t:append { { ts = 2, device = "b", signal = "x" } } end,
        "append to 'events': row 1: field 'signal': expected int, got string \"x\"")
      assert.equal(1, t:stats().records)
    end)

    it("check_schema answers without writing", function()
      create()
      assert.same({ false, "field 'signal': type changed from int to string, not allowed under backward" },
        { db:check_schema("events", "ts timestamp, device string, signal string") })
      assert.is_true(db:check_schema("events", V1 .. ", site string?"))
      assert.is_true(db:check_schema("events", V1))
      assert.same({ 1 }, db:schema_versions("events"))
    end)

    it("refuses a DDL that does not parse, with the position", function()
      create()
      local why = "bad schema: at position 37: unknown type 'x' (allowed: bool, int, double, string, timestamp, json)"
      assert.has_error(function() db:register_schema("events", "ts timestamp, device string, signal x") end,
        "register_schema: " .. why)
      assert.has_error(function() db:check_schema("events", "ts timestamp, device string, signal x") end,
        "check_schema: " .. why)
      assert.has_error(function() db:register_schema("events", 42) end,
        "register_schema: bad argument #2: expected a DDL string or an array of fields, got number")
      assert.same({ 1 }, db:schema_versions("events"))
    end)

    it("never lets the time column be removed or retyped", function()
      create(V1, { compatibility = "none" })
      assert.has_error(function() db:register_schema("events", "device string, signal int") end,
        "register_schema 'events': field 'ts' is the topic's time column: it cannot be removed")
      assert.has_error(function() db:register_schema("events", "ts int, device string, signal int") end,
        "register_schema 'events': field 'ts' is the topic's time column: it cannot be changed from timestamp")
      assert.same({ false, "field 'ts' is the topic's time column: it cannot be removed" },
        { db:check_schema("events", "device string") })
      assert.same({ 1 }, db:schema_versions("events"))
    end)
  end)

  describe("validation on append", function()
    local t
    before_each(function() t = create() end)

    it("refuses a value of the wrong type, naming the row, field, type and value", function()
      assert.has_error(function()
        t:append { { ts = 1, device = "a", signal = 1 }, { ts = 2, device = "b", signal = "x" } }
      end,
        "append to 'events': row 2: field 'signal': expected int, got string \"x\"")
      assert.has_error(function() t:append { { ts = 1, device = "a", signal = 1.5 } } end,
        "append to 'events': row 1: field 'signal': expected int, got number 1.5")
      assert.has_error(function() t:append { { ts = 1, device = true, signal = 1 } } end,
        "append to 'events': row 1: field 'device': expected string, got boolean true")
      assert.equal(0, t:stats().records)
    end)

    it("refuses a row without a non-nullable field", function()
      assert.has_error(function() t:append { { ts = 1, device = "a", signal = 1 }, { ts = 2, device = "b" } } end,
        "append to 'events': row 2: missing field 'signal' (not nullable)")
      assert.equal(0, t:stats().records)
    end)

    it("refuses unknown fields by default", function()
      assert.has_error(function() t:append { { ts = 1, device = "a", signal = 1, colour = "red" } } end,
        "append to 'events': row 1: unknown field 'colour' (fields: ts, device, signal)")
    end)

    it("drops unknown fields with unknown_fields = \"ignore\"", function()
      local u = db:create_topic("loose", { schema = V1, unknown_fields = "ignore" })
      u:append { { ts = 1, device = "a", signal = 1, colour = "red" } }
      assert.same({ { ts = 1, device = "a", signal = 1 } }, read_all(u))
    end)

    it("accepts ISO-8601 timestamps and refuses what does not parse", function()
      t:append { { ts = "2026-11-21T12:00:05Z", device = "a", signal = 1 },
        { ts = "2026-11-21 12:00:05.250", device = "b", signal = 2 } }
      local rows = read_all(t)
      assert.equal(1795262405000, rows[1].ts)
      assert.equal(1795262405250, rows[2].ts)
      assert.has_error(function() t:append { { ts = "yesterday", device = "c", signal = 3 } } end,
        "append to 'events': row 1: field 'ts': expected timestamp, got string \"yesterday\"")
      assert.equal(2, t:stats().records)
    end)

    it("validates against the latest version", function()
      db:register_schema("events", "ts timestamp, signal double, note string?")
      t:append { { ts = 1, signal = 2.5 } }
      assert.has_error(function() t:append { { ts = 2, device = "a", signal = 1 } } end,
        "append to 'events': row 1: unknown field 'device' (fields: ts, signal, note)")
    end)

    it("never half-appends JSON lines, and skips bad ones on request", function()
      local text = '{"ts":1,"device":"a","signal":1}\n{"ts":2,"device":"b","signal":"x"}\n' ..
        '{"ts":3,"device":"c","signal":3}\n'
      assert.has_error(function() t:append_json(text) end,
        "append_json 'events': line 2: field 'signal': expected int, got \"x\"")
      assert.equal(0, t:stats().records)
      local r = t:append_json(text, { skip_bad = true })
      assert.equal(2, r.appended)
      assert.equal(1, r.skipped)
      assert.same({ 2 }, r.bad_lines)
      assert.equal(2, t:stats().records)
    end)
  end)

  describe("evolution on read", function()
    -- v1 ts, device, signal int; v2 adds site DEFAULT 'hq' and widens signal;
    -- v3 removes device and adds note string?. One block per version.
    local t
    before_each(function()
      t = create()
      t:append { { ts = 1000, device = "a", signal = 1 }, { ts = 1001, device = "b", signal = 2 } }
      assert.equal(2, db:register_schema("events",
        "ts timestamp, device string, signal double, site string DEFAULT 'hq'"))
      t:append { { ts = 2000, device = "c", signal = 2.5, site = "lab" }, { ts = 2001, device = "d", signal = 3 } }
      assert.equal(3, db:register_schema("events",
        "ts timestamp, signal double, site string DEFAULT 'hq', note string?"))
      t:append { { ts = 3000, signal = 3.5, note = "n" }, { ts = 3001, signal = 4, site = "x" } }
    end)

    local LATEST = {
      { ts = 1000, signal = 1.0, site = "hq" }, { ts = 1001, signal = 2.0, site = "hq" },
      { ts = 2000, signal = 2.5, site = "lab" }, { ts = 2001, signal = 3.0, site = "hq" },
      { ts = 3000, signal = 3.5, site = "hq", note = "n" }, { ts = 3001, signal = 4.0, site = "x" },
    }

    it("reads blocks of three versions back in the latest schema", function()
      local rows = {}
      for r in t:read() do rows[#rows + 1] = r end
      assert.equal(6, #rows)
      for i, r in ipairs(rows) do
        assert.equal(i - 1, r.offset)
        assert.equal("float", math.type(r.signal))
        assert.is_nil(r.device)
      end
      assert.equal("offset,partition,signal,site,ts", keys(rows[1]))
      assert.equal("note,offset,partition,signal,site,ts", keys(rows[5]))
      assert.same(LATEST, read_all(t))
      assert.same(LATEST, read_all(t, { schema_version = 3 }))
    end)

    it("still reads them so after the store is reopened", function()
      db:close()
      db = tide.open(dir .. "/data")
      assert.same(LATEST, read_all(db:topic("events")))
    end)

    it("reads older blocks in an older version, and refuses newer blocks it cannot read", function()
      assert.same({
        { ts = 1000, device = "a", signal = 1.0, site = "hq" }, { ts = 1001, device = "b", signal = 2.0, site = "hq" },
        { ts = 2000, device = "c", signal = 2.5, site = "lab" }, { ts = 2001, device = "d", signal = 3.0, site = "hq" },
      }, read_all(t, { schema_version = 2, to = 4 }))
      assert.same({ { ts = 1000, device = "a", signal = 1 }, { ts = 1001, device = "b", signal = 2 } },
        read_all(t, { schema_version = 1, to = 2 }))
      assert.has_error(function() read_all(t, { schema_version = 2 }) end,
        "read 'events': rows of schema version 3 cannot be read as version 2: field 'device' was removed " ..
        "but has no default and is not nullable")
    end)

    it("raises for a reader version that does not exist", function()
      assert.has_error(function() read_all(t, { schema_version = 4 }) end,
        "read 'events': topic 'events' has no schema version 4 (versions: 1..3)")
    end)
  end)
end)
