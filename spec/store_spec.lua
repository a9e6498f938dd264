-- Specs for tide.store (lua/tide/store.lua over core/l_store.c and
-- core/store.c): stores, topics, appends, reads, segments, retention, the
-- cold tier, and several processes on one store.
--
-- Every test gets a fresh store directory (before_each) that after_each
-- closes and removes. Child processes run `lua5.4` on a script written to a
-- temporary file, with package paths pointing at this checkout.

local tide = require "tide"
local support = require "support"
local CHILD_PRELUDE = support.CHILD_PRELUDE
local tmpname = support.tmpname
local write_file = support.write_file
local file_size = support.file_size
local exists = support.exists
local sleep_ms = support.sleep_ms
local seg_name = support.seg_name
local hot_path = support.hot_path
local cold_path = support.cold_path

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- Names of the entries of directory `dir`, sorted ({} when it is missing).
local function ls(dir)
  local p = io.popen("ls -1 '" .. dir .. "' 2>/dev/null")
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

-- Flip (bitwise not) n bytes of the file at offset off.
local function flip(path, off, n)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", off)
  local b = f:read(n or 1)
  local out = {}
  for i = 1, #b do out[i] = string.char(255 - b:byte(i)) end
  f:seek("set", off)
  f:write(table.concat(out))
  f:close()
end

local function collect(t, opts)
  local out = {}
  for rec in t:read(opts) do out[#out + 1] = rec end
  return out
end

local function field(recs, name)
  local out = {}
  for i, r in ipairs(recs) do out[i] = r[name] end
  return out
end

-- Run a child Lua script (prelude + body) with arguments; returns its
-- output and exit status.
local function run_child(body, ...)
  local script = tmpname() .. ".lua"
  write_file(script, CHILD_PRELUDE .. body)
  local args = {}
  for i, a in ipairs { ... } do args[i] = "'" .. tostring(a) .. "'" end
  local p = io.popen("lua5.4 " .. script .. " " .. table.concat(args, " ") .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  os.remove(script)
  return out, ok, code
end

-- The message of the error that f raises, position prefix included.
local function raw_error(f, ...)
  local ok, msg = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(msg)
end

---------------------------------------------------------------------------
-- Specs
---------------------------------------------------------------------------

describe("tide.store", function()
  local dir, db

  before_each(function()
    dir = tmpname()
    db = tide.open(dir)
  end)

  after_each(function()
    if db then db:close() end
    db = nil
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function reopen(opts)
    db:close()
    db = tide.open(dir, opts)
    return db
  end

  describe("open and close", function()
    it("creates the directory with its catalog, topics and cold tier", function()
      assert.same({ "catalog", "cold", "topics" }, ls(dir))
      assert.equal(dir, db:path())
      assert.equal("tide store '" .. dir .. "'", tostring(db))
    end)

    it("creates missing parent directories", function()
      local deep = dir .. "/a/b/c"
      local db2 = tide.open(deep)
      assert.same({ "catalog", "cold", "topics" }, ls(deep))
      db2:close()
    end)

    it("closes idempotently", function()
      db:close()
      db:close()
      assert.equal("tide store '" .. dir .. "' (closed)", tostring(db))
    end)

    it("raises 'attempt to use a closed tide store' for every call on a closed store", function()
      db:close()
      local closed = "attempt to use a closed tide store"
      assert.has_error(function() db:topics() end, closed)
      assert.has_error(function() db:topic("x") end, closed)
      assert.has_error(function() db:has_topic("x") end, closed)
      assert.has_error(function() db:create_topic("x") end, closed)
      assert.has_error(function() db:delete_topic("x") end, closed)
      assert.has_error(function() db:path() end, closed)
    end)

    it("raises for a topic handle whose store is closed", function()
      local t = db:create_topic("ev")
      db:close()
      local closed = "attempt to use topic 'ev' of a closed store"
      assert.has_error(function() t:info() end, closed)
      assert.has_error(function() t:append { { value = 1 } } end, closed)
      assert.has_error(function() t:read {} end, closed)
      assert.has_error(function() t:segments() end, closed)
      assert.has_error(function() t:offsets() end, closed)
      assert.has_error(function() t:enforce_retention() end, closed)
      assert.has_error(function() t:offload {} end, closed)
    end)

    it("refuses to open a directory already open in this process, however it is spelled", function()
      local msg = "tide.open: store '%s' is already open in this process (close it first, or use that handle)"
      assert.has_error(function() tide.open(dir) end, msg:format(dir))
      assert.has_error(function() tide.open(dir .. "/") end, msg:format(dir .. "/"))
      assert.has_error(function() tide.open(dir .. "/./") end, msg:format(dir .. "/./"))
      assert.has_error(function() tide.open(dir .. "/topics/..") end, msg:format(dir .. "/topics/.."))
    end)

    it("opens a directory again once it was closed", function()
      db:close()
      local db2 = tide.open(dir)
      assert.same({}, db2:topics())
      db2:close()
    end)

    it("rejects bad arguments and options with pinned messages", function()
      assert.has_error(function() tide.open(5) end, "tide.open: bad argument #1: expected a directory name, got number")
      assert.has_error(function() tide.open("") end,
        "tide.open: bad argument #1: expected a directory name, got string")
      assert.has_error(function() tide.open(dir .. "x", { bogus = 1 }) end,
        "tide.open: unknown option 'bogus' (allowed: cold_dir, map_size, sync)")
      assert.has_error(function() tide.open(dir .. "x", { sync = "yes" }) end,
        "tide.open: option 'sync' must be a boolean, got string")
      assert.has_error(function() tide.open(dir .. "x", { map_size = "huge" }) end,
        "tide.open: option 'map_size': invalid size 'huge' (use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)")
      assert.has_error(function() tide.open(dir .. "x", "sync") end, "tide.open: options must be a table, got string")
    end)

    it("returns a clear error when the directory cannot be created", function()
      write_file(dir .. "/afile", "x")
      local msg = raw_error(tide.open, dir .. "/afile/store")
      assert.matches("tide.open: store '" .. dir:gsub("%p", "%%%0") .. "/afile/store': cannot create store directory",
        msg)
      assert.matches("Not a directory", msg, 1, true)
    end)

    it("sees every topic, option and record after a reopen", function()
      local t = db:create_topic("ev", { schema = "ts timestamp, device string, signal int?", partitions = 2,
        retention = "7d", segment_bytes = "2KB", compatibility = "full", unknown_fields = "ignore" })
      t:append({ { ts = 1, device = "a", signal = 1 }, { ts = 2, device = "b" } }, { key = "device" })
      db:create_topic("other")
      local before = collect(t)
      reopen()
      assert.same({ "ev", "other" }, db:topics())
      local info = db:topic("ev"):info()
      assert.equal(2, info.partitions)
      assert.equal(7 * 86400000, info.retention_ms)
      assert.equal(2048, info.segment_bytes)
      assert.equal("full", info.compatibility)
      assert.equal("ignore", info.unknown_fields)
      assert.equal("ts timestamp, device string, signal int?", info.ddl)
      assert.same(before, collect(db:topic("ev")))
      assert.equal(2, #before)
    end)

    it("reopens with the sync option off and keeps what was written", function()
      reopen { sync = false }
      db:create_topic("ev"):append { { value = { a = 1 } } }
      reopen()
      assert.same({ a = 1 }, collect(db:topic("ev"))[1].value)
    end)
  end)

  describe("create_topic", function()
    it("makes a schemaless topic hold one 'value json' column", function()
      local t = db:create_topic("raw")
      local info = t:info()
      assert.equal("value json", info.ddl)
      assert.is_true(info.schemaless)
      assert.is_nil(info.time_column)
      assert.equal(1, info.partitions)
      assert.equal(64 * 1024 * 1024, info.segment_bytes)
      assert.is_nil(info.retention_ms)
      assert.is_nil(info.retention_bytes)
      assert.is_nil(info.segment_ms)
      assert.equal("backward", info.compatibility)
      assert.equal("reject", info.unknown_fields)
      assert.equal(1, info.schema_version)
      t:append { { value = { nested = { 1, 2 } } }, { value = "text" }, { value = 3 } }
      local recs = collect(t)
      assert.same({ nested = { 1, 2 } }, recs[1].value)
      assert.equal("text", recs[2].value)
      assert.equal(3, recs[3].value)
    end)

    it("makes a topic with a schema and reports its options in info()", function()
      local t = db:create_topic("ev", { schema = "ts timestamp, device string, signal int?", partitions = 4,
        retention = "1h", retention_bytes = "1MB", segment_bytes = "1KB", segment_ms = "10 min" })
      local info = t:info()
      assert.equal("ev", info.name)
      assert.equal("ev", t:name())
      assert.equal("ts timestamp, device string, signal int?", info.ddl)
      assert.is_false(info.schemaless)
      assert.equal("ts", info.time_column)
      assert.equal(4, info.partitions)
      assert.equal(3600000, info.retention_ms)
      assert.equal(1048576, info.retention_bytes)
      assert.equal(1024, info.segment_bytes)
      assert.equal(600000, info.segment_ms)
      assert.equal("integer", math.type(info.created))
      assert.equal(3, #info.schema)
      assert.equal("tide topic 'ev'", tostring(t))
    end)

    it("takes the time column that it is told", function()
      local t = db:create_topic("ev", { schema = "a timestamp, b timestamp", time_column = "b" })
      assert.equal("b", t:info().time_column)
    end)

    it("rejects unknown options, listing the allowed ones", function()
      assert.has_error(function() db:create_topic("x", { foo = 1 }) end,
        "create_topic: unknown option 'foo' (allowed: compatibility, partitions, retention, retention_bytes, " ..
        "schema, segment_bytes, segment_ms, time_column, unknown_fields)")
      assert.is_false(db:has_topic("x"))
    end)

    it("rejects options of the wrong type or out of range with pinned messages", function()
      local cases = {
        { "x", "create_topic: options must be a table, got string" },
        { { partitions = "a" }, "create_topic: option 'partitions' must be an integer, got string" },
        { { partitions = 1.5 }, "create_topic: option 'partitions' must be an integer, got number 1.5" },
        { { partitions = 0 }, "create_topic: option 'partitions' must be >= 1, got 0" },
        { { partitions = 1025 }, "create_topic: option 'partitions' must be <= 1024, got 1025" },
        { { retention = "forever" },
          "create_topic: option 'retention': invalid duration 'forever' " ..
          "(use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)" },
        { { segment_ms = -1 },
          "create_topic: option 'segment_ms': invalid duration '-1' " ..
          "(use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)" },
        { { segment_bytes = "big" },
          "create_topic: option 'segment_bytes': invalid size 'big' " ..
          "(use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)" },
        { { retention_bytes = {} },
          "create_topic: option 'retention_bytes': invalid size of type table " ..
          "(use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)" },
        { { segment_bytes = 10 }, "create_topic 'x': segment_bytes must be at least 1024" },
        { { time_column = 5 }, "create_topic: option 'time_column' must be a string, got number" },
        { { compatibility = "strict" },
          "create_topic: option 'compatibility' must be one of none, backward, forward, full, " ..
          "backward_transitive, forward_transitive, full_transitive, got 'strict'" },
        { { unknown_fields = "drop" },
          "create_topic: option 'unknown_fields' must be one of reject, ignore, got 'drop'" },
        { { schema = 5 }, "create_topic: option 'schema' must be a DDL string or an array of fields, got number" },
        { { schema = "a nosuchtype" },
          "create_topic: bad schema: at position 3: unknown type 'nosuchtype' " ..
          "(allowed: bool, int, double, string, timestamp, json)" },
        { { schema = "offset int" },
          "create_topic 'x': field name 'offset' is reserved in topic schemas (records read from a topic carry it)" },
        { { schema = "a int, partition int" },
          "create_topic 'x': field name 'partition' is reserved in topic schemas " ..
          "(records read from a topic carry it)" },
        { { schema = "a int", time_column = "a" },
          "create_topic 'x': time_column 'a' is not a timestamp field of the schema" },
        { { schema = "a timestamp", time_column = "b" },
          "create_topic 'x': time_column 'b' is not a timestamp field of the schema" },
      }
      for _, c in ipairs(cases) do
        assert.has_error(function() db:create_topic("x", c[1]) end, c[2])
      end
      assert.has_error(function() db:create_topic(5) end,
        "create_topic: bad argument #1: expected a topic name, got number")
      assert.same({}, db:topics())
      assert.same({}, ls(dir .. "/topics"))
    end)

    it("refuses unsafe or malformed topic names with their reasons", function()
      local cases = {
        ["../x"] = "create_topic: topic name '../x' has a '/' (names cannot hold path separators)",
        ["a/b"] = "create_topic: topic name 'a/b' has a '/' (names cannot hold path separators)",
        ["a\\b"] = "create_topic: topic name 'a\\b' has a '\\' (names cannot hold path separators)",
        [""] = "create_topic: topic name is empty",
        [string.rep("n", 201)] = "create_topic: topic name is 201 bytes long (at most 200)",
        ["ab\ncd"] = "create_topic: topic name has a control character at byte 3",
        ["a\127"] = "create_topic: topic name has a control character at byte 2",
        [".."] = "create_topic: topic name '..' is not allowed",
        ["."] = "create_topic: topic name '.' is not allowed",
        ["a..b"] = "create_topic: topic name 'a..b' holds '..'",
      }
      for name, msg in pairs(cases) do
        assert.has_error(function() db:create_topic(name) end, msg)
      end
      assert.same({}, db:topics())
      assert.same({}, ls(dir .. "/topics"))
    end)

    it("accepts a name of 200 bytes and names with dots, blanks and UTF-8", function()
      local long = string.rep("n", 200)
      for _, name in ipairs { long, "a.b", "with space", "ünïcödé", ".hidden" } do
        db:create_topic(name):append { { value = name } }
        assert.equal(name, collect(db:topic(name))[1].value)
      end
      assert.equal(5, #db:topics())
    end)

    it("refuses to create a topic twice", function()
      db:create_topic("ev")
      assert.has_error(function() db:create_topic("ev", { partitions = 3 }) end,
        "create_topic 'ev': topic 'ev' already exists")
      assert.equal(1, db:topic("ev"):info().partitions)
    end)

    it("lists topics sorted and answers has_topic", function()
      for _, n in ipairs { "zeta", "alpha", "Mid", "beta" } do db:create_topic(n) end
      assert.same({ "Mid", "alpha", "beta", "zeta" }, db:topics())
      assert.is_true(db:has_topic("alpha"))
      assert.is_false(db:has_topic("gamma"))
      assert.is_false(db:has_topic("alph"))
    end)

    it("raises for a topic that does not exist, naming the ones that do", function()
      assert.has_error(function() db:topic("nope") end, "no topic 'nope' in store '" .. dir .. "' (topics: none)")
      db:create_topic("b")
      db:create_topic("a")
      assert.has_error(function() db:topic("nope") end, "no topic 'nope' in store '" .. dir .. "' (topics: a, b)")
      assert.has_error(function() db:topic(1) end, "topic: bad argument #1: expected a topic name, got number")
    end)

    it("gives one handle per topic name", function()
      local t = db:create_topic("ev")
      assert.equal(t, db:topic("ev"))
    end)
  end)

  describe("delete_topic", function()
    it("removes the topic and its hot and cold files from disk", function()
      local t = db:create_topic("ev", { partitions = 2, segment_bytes = 1024 })
      for i = 1, 40 do t:append { { value = string.rep("x", 100) .. i } } end
      assert.is_true(t:offload {} > 0)
      local id = t:info().id
      assert.is_true(#ls(dir .. "/topics/" .. id .. "/p0") > 0)
      assert.is_true(#ls(dir .. "/cold/" .. db:id() .. "/" .. id .. "/p0") > 0)
      db:delete_topic("ev")
      assert.same({}, ls(dir .. "/topics"))
      assert.same({}, ls(dir .. "/cold/" .. db:id()))
      assert.same({}, db:topics())
      assert.is_false(db:has_topic("ev"))
    end)

    it("makes a handle to the deleted topic raise", function()
      local t = db:create_topic("ev")
      t:append { { value = 1 } }
      db:delete_topic("ev")
      assert.has_error(function() t:append { { value = 2 } } end, "append to 'ev': topic 'ev' was deleted")
      assert.has_error(function() t:info() end, "topic 'ev': topic 'ev' was deleted")
      assert.has_error(function() t:segments() end, "topic 'ev': topic 'ev' was deleted")
      assert.has_error(function() t:read {} end, "read 'ev': topic 'ev' was deleted")
      assert.has_error(function() db:topic("ev") end, "no topic 'ev' in store '" .. dir .. "' (topics: none)")
    end)

    it("leaves an old handle dead when the name is created again", function()
      local t = db:create_topic("ev")
      t:append { { value = "old" } }
      db:delete_topic("ev")
      local t2 = db:create_topic("ev")
      assert.are_not.equal(t, t2)
      assert.has_error(function() t:append { { value = "stale" } } end, "append to 'ev': topic 'ev' was deleted")
      assert.same({}, collect(t2))
      t2:append { { value = "new" } }
      assert.same({ "new" }, field(collect(db:topic("ev")), "value"))
    end)

    it("raises for a topic that does not exist", function()
      assert.has_error(function() db:delete_topic("nope") end, "delete_topic: no topic 'nope' in store '" .. dir .. "'")
      assert.has_error(function() db:delete_topic(nil) end,
        "delete_topic: bad argument #1: expected a topic name, got nil")
    end)

    it("stays deleted after a reopen", function()
      db:create_topic("ev"):append { { value = 1 } }
      db:create_topic("keep")
      db:delete_topic("ev")
      reopen()
      assert.same({ "keep" }, db:topics())
    end)
  end)

  describe("append", function()
    local t
    before_each(function()
      t = db:create_topic("ev", { schema = "ts timestamp, device string, signal int?", partitions = 3 })
    end)

    it("returns the first and last offsets and one range per partition written", function()
      local first, last, ranges = t:append {
        { ts = 1, device = "a" }, { ts = 2, device = "b" }, { ts = 3, device = "c" } }
      assert.equal(0, first)
      assert.equal(2, last)
      assert.equal(1, #ranges)
      assert.equal(3, ranges[1].count)
      assert.equal(0, ranges[1].first)
      assert.equal(2, ranges[1].last)
      local p = ranges[1].partition
      assert.same({ 0, 1, 2 }, field(collect(t, { partition = p }), "offset"))
    end)

    it("returns nothing for an empty array and writes nothing", function()
      local first, last, ranges = t:append {}
      assert.is_nil(first)
      assert.is_nil(last)
      assert.same({}, ranges)
      assert.equal(0, t:stats().records)
    end)

    it("appends nothing when one row of the batch is bad", function()
      t:append { { ts = 1, device = "a" } }
      local offs, segs = t:offsets(), t:segments()
      local rows = {}
      for i = 1, 1000 do rows[i] = { ts = i, device = "d" .. i, signal = i } end
      rows[777].signal = "oops"
      assert.has_error(function() t:append(rows) end,
        "append to 'ev': row 777: field 'signal': expected int, got string \"oops\"")
      rows[777].signal = 1
      rows[1000].device = nil
      assert.has_error(function() t:append(rows, { key = "device" }) end,
        "append to 'ev': row 1000: missing field 'device' (not nullable)")
      assert.same(offs, t:offsets())
      assert.same(segs, t:segments())
      assert.equal(1, #collect(t))
    end)

    it("names the row and the field in its errors", function()
      assert.has_error(function() t:append { { ts = 1, device = "a" }, { ts = 2, device = "b", bogus = 1 } } end,
        "append to 'ev': row 2: unknown field 'bogus' (fields: ts, device, signal)")
      assert.has_error(function() t:append { { ts = "nope", device = "a" } } end,
        "append to 'ev': row 1: field 'ts': expected timestamp, got string \"nope\"")
      assert.has_error(function() t:append { { ts = 1, device = 7 } } end,
        "append to 'ev': row 1: field 'device': expected string, got number 7")
      assert.has_error(function() t:append { { ts = 1, device = "a" }, { ts = 2 } } end,
        "append to 'ev': row 2: missing field 'device' (not nullable)")
      assert.equal(0, t:stats().records)
    end)

    it("rejects bad arguments and options with pinned messages", function()
      assert.has_error(function() t:append("rows") end,
        "append: bad argument #1: expected an array of rows, got string")
      assert.has_error(function() t:append({}, { bogus = 1 }) end,
        "append: unknown option 'bogus' (allowed: key, seq, writer)")
      assert.has_error(function() t:append({}, { key = 1 }) end, "append: option 'key' must be a string, got number")
      assert.has_error(function() t.append({}, {}) end,
        "bad self: expected a tide topic (use t:method(...), not t.method(...))")
    end)

    it("rejects a key column that is not in the schema", function()
      assert.has_error(function() t:append({ { ts = 1, device = "a" } }, { key = "nope" }) end,
        "append: key column 'nope' is not in the schema of 'ev' (fields: ts, device, signal)")
      assert.equal(0, t:stats().records)
    end)

    it("blames the caller's line, not store.lua, for a key column that is not in the schema", function()
      local msg = raw_error(function() t:append({ { ts = 1, device = "a" } }, { key = "nope" }) end)
      assert.not_matches("tide/store%.lua", msg)
      assert.matches("^spec/store_spec%.lua:%d+: ", msg)
    end)

    it("sends keyed rows to partitions by key, the same key always to the same partition", function()
      local where = {}
      local function record(ranges_recs)
        for _, r in ipairs(ranges_recs) do
          if where[r.device] == nil then where[r.device] = r.partition end
          assert.equal(where[r.device], r.partition, "device " .. r.device)
        end
      end
      for round = 1, 5 do
        local rows = {}
        for i = 1, 60 do rows[i] = { ts = round * 1000 + i, device = "dev" .. (i % 20) } end
        local _, _, ranges = t:append(rows, { key = "device" })
        local total = 0
        for _, r in ipairs(ranges) do total = total + r.count end
        assert.equal(60, total)
      end
      record(collect(t))
      local used = {}
      for _, p in pairs(where) do used[p] = true end
      assert.is_true(used[0] and used[1] and used[2], "20 keys spread over all 3 partitions")
      -- the mapping survives a reopen
      reopen()
      t = db:topic("ev")
      local rows = {}
      for i = 1, 20 do rows[i] = { ts = 9000 + i, device = "dev" .. i % 20 } end
      t:append(rows, { key = "device" })
      record(collect(t, { from_time = 9000 }))
    end)

    it("keeps the order of keyed rows within a partition", function()
      local rows = {}
      for i = 1, 300 do rows[i] = { ts = i, device = "k" .. (i % 7), signal = i } end
      t:append(rows, { key = "device" })
      for p = 0, 2 do
        local last = 0
        for _, r in ipairs(collect(t, { partition = p })) do
          assert.is_true(r.signal > last)
          last = r.signal
        end
      end
    end)

    it("sends each unkeyed append to the next partition, round-robin across calls", function()
      local parts = {}
      for i = 1, 7 do
        local _, _, ranges = t:append { { ts = i, device = "x" }, { ts = i, device = "y" } }
        assert.equal(1, #ranges)
        parts[i] = ranges[1].partition
      end
      for i = 2, 7 do assert.equal((parts[i - 1] + 1) % 3, parts[i]) end
      reopen()
      local _, _, ranges = db:topic("ev"):append { { ts = 8, device = "z" } }
      assert.equal((parts[7] + 1) % 3, ranges[1].partition)
    end)

    it("numbers offsets per partition from 0, contiguously", function()
      for i = 1, 6 do t:append { { ts = i, device = "a" }, { ts = i, device = "b" } } end
      for p = 0, 2 do
        assert.same({ 0, 1, 2, 3 }, field(collect(t, { partition = p }), "offset"))
      end
      local offs = t:offsets()
      for p = 0, 2 do assert.same({ partition = p, earliest = 0, latest = 4 }, offs[p + 1]) end
    end)

    it("holds NULLs and empty strings in string and json columns", function()
      local t2 = db:create_topic("nulls", { schema = "s string?, j json?, e string, n int" })
      t2:append { { s = nil, j = nil, e = "", n = 1 }, { s = nil, j = nil, e = "", n = 2 } } -- no string bytes at all
      t2:append { { s = "", j = "", e = "", n = 3 } }
      t2:append { { s = "x", j = { 1 }, e = "y", n = 4 } }
      local recs = collect(t2)
      assert.equal(4, #recs)
      assert.is_nil(recs[1].s)
      assert.is_nil(recs[1].j)
      assert.equal("", recs[1].e)
      assert.equal("", recs[3].s)
      assert.equal("", recs[3].j)
      assert.equal("x", recs[4].s)
      assert.same({ 1 }, recs[4].j)
    end)

    it("appends JSON lines atomically with append_json", function()
      local r = t:append_json('{"ts": 5, "device": "a"}\n' ..
        '{"ts": "1970-01-01T00:00:00.006Z", "device": "b", "signal": 2}\n')
      assert.equal(2, r.lines)
      assert.equal(2, r.appended)
      assert.equal(0, r.skipped)
      assert.equal(0, r.first)
      assert.equal(1, r.last)
      assert.same({ 5, 6 }, field(collect(t), "ts"))
      assert.has_error(function() t:append_json('{"ts": 7, "device": "c"}\n{"ts": 8}\n') end,
        "append_json 'ev': line 2: missing field 'device' (not nullable)")
      assert.equal(2, t:stats().records)
    end)
  end)

  describe("idempotent appends", function()
    local t
    before_each(function() t = db:create_topic("ev", { schema = "ts timestamp, device string, signal int?" }) end)

    it("records the writer's sequence with the rows and skips a replay", function()
      assert.is_nil(t:writer_seq("q/sink"))
      assert.equal(0, (t:append({ { ts = 1, device = "a" } }, { writer = "q/sink", seq = 4 })))
      assert.equal(4, t:writer_seq("q/sink"))
      assert.same({ nil, "skipped" }, { t:append({ { ts = 2, device = "b" } }, { writer = "q/sink", seq = 4 }) })
      assert.same({ nil, "skipped" }, { t:append({ { ts = 2, device = "b" } }, { writer = "q/sink", seq = 1 }) })
      assert.equal(1, t:stats().records)
      assert.equal(1, (t:append({ { ts = 2, device = "b" } }, { writer = "q/sink", seq = 5 })))
      assert.equal(5, t:writer_seq("q/sink"))
      reopen()
      t = db:topic("ev")
      assert.equal(5, t:writer_seq("q/sink"))
      assert.same({ nil, "skipped" }, { t:append({ { ts = 3, device = "c" } }, { writer = "q/sink", seq = 5 }) })
      assert.equal(2, t:stats().records)
    end)

    it("records nothing when the rows are refused", function()
      assert.has_error(function() t:append({ { ts = 1 } }, { writer = "w", seq = 0 }) end)
      assert.is_nil(t:writer_seq("w"))
      assert.equal(0, t:stats().records)
    end)

    it("appends batches of another schema by field name in one session", function()
      local core = require "tide.core"
      local s = assert(core.schema("signal int, device string, ts timestamp"))
      local b1 = assert(core.rows_batch(s, { { signal = 1, device = "a", ts = 10 } }))
      local b2 = assert(core.rows_batch(s, { { signal = 2, device = "b", ts = 11 } }))
      local first, last, ranges = t:append_batches({ b1, b2 }, { writer = "w", seq = 0 })
      assert.same({ 0, 1, 2 }, { first, last, ranges[1].count })
      assert.same({ nil, "skipped" }, { t:append_batches({ b1 }, { writer = "w", seq = 0 }) })
      assert.same({ 1, 2 }, field(collect(t), "signal"))
      assert.has_error(function() t:append_batches({ b1, "x" }) end,
        "bad argument #1 to 'append_batches' (entry 2 is a string, not a tide.Batch)")
      local bad = assert(core.rows_batch(assert(core.schema("device string, extra int")),
        { { device = "x", extra = 1 } }))
      assert.has_error(function() t:append_batches({ b1, bad }) end,
        "append_batches to 'ev': column 'extra' is not a field of topic 'ev' (fields: ts, device, signal)")
      assert.equal(2, t:stats().records)
    end)

    it("appends batches on a thread of their own, taking them, and gives the result at append_finish", function()
      local core = require "tide.core"
      local s = assert(core.schema("signal int, device string, ts timestamp"))
      local b1 = assert(core.rows_batch(s, { { signal = 1, device = "a", ts = 10 } }))
      local b2 = assert(core.rows_batch(s, { { signal = 2, device = "b", ts = 11 } }))
      assert.is_not_nil(t:append_start({ b1, b2 }, { writer = "w", seq = 0 }))
      assert.has_error(function() b1:nrows() end, "attempt to use a closed tide.Batch")
      assert.has_error(function() t:append_start({}, { writer = "w", seq = 1 }) end,
        "append_start to 'ev': topic 'ev': an append is in flight on this store")
      assert.equal(2, t:stats().records) -- waited for the append in flight
      local first, last, ranges = db:append_finish()
      assert.same({ 0, 1, 2 }, { first, last, ranges[1].count })
      assert.same({ 1, 2 }, field(collect(t), "signal"))
      assert.has_error(function() db:append_finish() end,
        "append_finish: no append in flight (use topic:append_start first)")
      -- a replay is skipped; a refused batch fails at append_finish, naming the topic
      local b3 = assert(core.rows_batch(s, { { signal = 3, device = "c", ts = 12 } }))
      t:append_start({ b3 }, { writer = "w", seq = 0 })
      assert.same({ nil, "skipped" }, { db:append_finish() })
      local bad = assert(core.rows_batch(assert(core.schema("device string, extra int")),
        { { device = "x", extra = 1 } }))
      t:append_start({ bad }, { writer = "w", seq = 1 })
      assert.has_error(function() db:append_finish() end,
        "append_batches to 'ev': column 'extra' is not a field of topic 'ev' (fields: ts, device, signal)")
      assert.has_error(function() t:append_start({ "x" }) end,
        "bad argument #1 to 'append_start' (entry 1 is a string, not a tide.Batch)")
      assert.equal(0, t:writer_seq("w"))
      assert.equal(2, t:stats().records)
      -- a store closed with an append in flight waits for it
      t:append_start({ assert(core.rows_batch(s, { { signal = 4, device = "d", ts = 13 } })) })
      reopen()
      assert.equal(3, db:topic("ev"):stats().records)
    end)

    it("says whether a schema's rows would be accepted", function()
      assert.is_true(t:accepts("device string, ts timestamp"))
      assert.same({ false, "field 'signal': the rows have string, topic 'ev' wants int" },
        { t:accepts("ts timestamp, device string, signal string") })
      assert.has_error(function() t:accepts(5) end,
        "accepts: bad argument #1: expected a DDL string or an array of fields, got number")
    end)

    it("refuses bad writer options", function()
      assert.has_error(function() t:append({}, { writer = "w" }) end,
        "append: options 'writer' and 'seq' go together (got only 'writer')")
      assert.has_error(function() t:append({}, { seq = 1 }) end,
        "append: options 'writer' and 'seq' go together (got only 'seq')")
      assert.has_error(function() t:append({}, { writer = "", seq = 1 }) end,
        "append: option 'writer' must be 1..255 bytes, got 0")
      assert.has_error(function() t:append({}, { writer = "w", seq = -1 }) end,
        "append: option 'seq' must be >= 0, got -1")
      assert.has_error(function() t:writer_seq(string.rep("x", 256)) end,
        "writer_seq: bad argument #1: expected a writer id (a string of 1..255 bytes), got 256 bytes")
    end)
  end)

  describe("read", function()
    local t
    before_each(function()
      t = db:create_topic("ev", { schema = "ts timestamp, device string, n int", partitions = 2 })
      -- partition p gets rows n = p*100 + 0..9 at ts = 1000 + n
      for p = 0, 1 do
        local rows = {}
        for i = 0, 9 do rows[#rows + 1] = { ts = 1000 + p * 100 + i, device = "d", n = p * 100 + i } end
        local _, _, ranges = t:append(rows)
        assert.equal(p, ranges[1].partition)
      end
    end)

    it("returns every record with its offset and partition, partition by partition", function()
      local recs = collect(t)
      assert.equal(20, #recs)
      for i, r in ipairs(recs) do
        local p, o = (i - 1) // 10, (i - 1) % 10
        assert.same({ ts = 1000 + p * 100 + o, device = "d", n = p * 100 + o, offset = o, partition = p }, r)
      end
    end)

    it("reads offsets [from, to) of every partition or of one", function()
      assert.same({ 3, 4, 5, 103, 104, 105 }, field(collect(t, { from = 3, to = 6 }), "n"))
      assert.same({ 107, 108, 109 }, field(collect(t, { partition = 1, from = 7 }), "n"))
      assert.same({ 0, 1 }, field(collect(t, { partition = 0, to = 2 }), "n"))
      assert.same({}, collect(t, { from = 10 }))
      assert.same({}, collect(t, { from = 5, to = 5 }))
      assert.same({}, collect(t, { from = 500 }))
    end)

    it("refuses a partition the topic does not have", function()
      assert.has_error(function() t:read { partition = 2 } end,
        "read 'ev': topic 'ev' has no partition 2 (partitions: 0..1)")
    end)

    it("rejects bad read options with pinned messages", function()
      assert.has_error(function() t:read { bogus = 1 } end,
        "read: unknown option 'bogus' (allowed: from, from_time, iso8601, partition, schema_version, to, to_time)")
      assert.has_error(function() t:read { from = 1.5 } end, "read: option 'from' must be an integer, got number 1.5")
      assert.has_error(function() t:read { from_time = "yesterday" } end,
        "read: option 'from_time' must be a timestamp (integer ms or ISO-8601 string), got 'yesterday'")
      assert.has_error(function() t:read { to_time = {} } end,
        "read: option 'to_time' must be a timestamp (integer ms or ISO-8601 string), got table")
    end)

    it("reads an event-time range [from_time, to_time) given in milliseconds", function()
      assert.same({ 5, 6, 7, 8, 9, 100, 101 }, field(collect(t, { from_time = 1005, to_time = 1102 }), "n"))
      assert.same({ 108, 109 }, field(collect(t, { from_time = 1108 }), "n"))
      assert.same({ 0, 1 }, field(collect(t, { to_time = 1002 }), "n"))
      assert.same({}, collect(t, { from_time = 1010, to_time = 1100 }))
      assert.same({}, collect(t, { from_time = 5000 }))
    end)

    it("reads an event-time range given as ISO-8601 strings", function()
      local recs = collect(t, { from_time = "1970-01-01T00:00:01.005Z", to_time = "1970-01-01T00:00:01.102Z" })
      assert.same({ 5, 6, 7, 8, 9, 100, 101 }, field(recs, "n"))
    end)

    it("combines offset, partition and time bounds", function()
      assert.same({ 104, 105 }, field(collect(t, { partition = 1, from = 3, to = 6, from_time = 1104 }), "n"))
    end)

    it("sees the records committed when the iteration started", function()
      local iter, s, c, closer = t:read { partition = 0 }
      local first = iter(s, c)
      t:append { { ts = 1, device = "late", n = -1 } } -- round-robin: partition 0
      t:append { { ts = 1, device = "late", n = -1 } } -- partition 1
      local seen = { first.n }
      for rec in iter, s, c, closer do seen[#seen + 1] = rec.n end
      assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, seen)
      assert.equal(22, #collect(t))
    end)

    it("closes the reader when a loop breaks out of it", function()
      local n = 0
      for _ in t:read {} do
        n = n + 1
        if n == 3 then break end
      end
      assert.equal(3, n)
      collectgarbage()
      collectgarbage()
      t:append { { ts = 1, device = "x", n = 1 } }
      assert.equal(21, #collect(t))
      db:close()
      db = nil
    end)

    it("makes a reader left open raise once the store is closed", function()
      local iter, s, c = t:read {}
      iter(s, c)
      db:close()
      assert.has_error(function() iter(s, c) end, "attempt to use a closed tide.Reader")
      db = nil
    end)
  end)

  describe("time-range pruning", function()
    it("skips segments outside the range without opening them", function()
      local t = db:create_topic("ev", { schema = "ts timestamp, n int", segment_bytes = 1024 })
      for s = 0, 7 do
        local rows = {}
        for i = 1, 40 do rows[i] = { ts = s * 10000 + i, n = s * 40 + i } end
        t:append(rows)
      end
      local segs = t:segments()
      assert.is_true(#segs >= 4, "several segments")
      -- corrupt the middle of the first segment, whose times are all < 10000
      local victim = segs[1]
      assert.equal("sealed", victim.state)
      assert.is_true(victim.max_ts < 20000)
      flip(hot_path(dir, t, 0, victim.base_offset), victim.bytes // 2, 8)
      local recs = collect(t, { from_time = 20000 })
      assert.equal(240, #recs)
      assert.equal(81, recs[1].n)
      local recs2 = collect(t, { from_time = "1970-01-01T00:00:30Z", to_time = "1970-01-01T00:00:40Z" })
      assert.equal(40, #recs2)
      local msg = raw_error(collect, t, {})
      assert.matches("read 'ev': topic 'ev' partition 0 segment 00000000000000000000%.seg offset %d+: ", msg)
    end)

    it("does not count segments without event time in a time range", function()
      local t = db:create_topic("plain")
      t:append { { value = 1 } }
      -- a schemaless topic's event time is the append time
      local seg = t:segments()[1]
      assert.equal(seg.min_ts, seg.max_ts)
      assert.equal(1, #collect(t, { from_time = seg.min_ts, to_time = seg.min_ts + 1 }))
      assert.same({}, collect(t, { to_time = seg.min_ts }))
    end)
  end)

  describe("segments", function()
    it("roll by size: sealed ones and one open, contiguous, their bytes as on disk", function()
      local t = db:create_topic("ev", { schema = "ts timestamp, s string", segment_bytes = 1024 })
      for i = 1, 30 do t:append { { ts = i, s = string.rep("x", 200) } } end
      local segs = t:segments()
      assert.is_true(#segs > 3)
      local expect_base = 0
      for i, s in ipairs(segs) do
        assert.equal(i == #segs and "open" or "sealed", s.state)
        assert.equal(0, s.partition)
        assert.equal(expect_base, s.base_offset)
        assert.equal(s.end_offset - s.base_offset, s.records)
        assert.equal(s.bytes, s.stored_bytes)
        assert.equal(s.bytes, file_size(hot_path(dir, t, 0, s.base_offset)))
        assert.is_true(s.min_ts <= s.max_ts)
        assert.equal("integer", math.type(s.created))
        assert.equal("integer", math.type(s.last_write))
        if s.state == "sealed" then assert.is_true(s.bytes >= 1024) end
        expect_base = s.end_offset
      end
      assert.equal(30, expect_base)
      local names = {}
      for _, s in ipairs(segs) do names[#names + 1] = seg_name(s.base_offset) end
      assert.same(names, ls(dir .. "/topics/" .. t:info().id .. "/p0"))
    end)

    it("roll by age", function()
      local t = db:create_topic("ev", { segment_ms = 1 })
      for i = 1, 4 do
        t:append { { value = i } }
        sleep_ms(10)
      end
      local segs = t:segments()
      assert.equal(4, #segs)
      for i, s in ipairs(segs) do
        assert.equal(i - 1, s.base_offset)
        assert.equal(1, s.records)
        assert.equal(i == 4 and "open" or "sealed", s.state)
      end
    end)

    it("never leave an empty segment behind", function()
      local t = db:create_topic("ev", { segment_ms = 1 })
      t:append {}
      assert.same({}, t:segments())
      t:append { { value = 1 } }
      assert.equal(1, #t:segments())
    end)

    it("hold big appends of many blocks in one segment and read them back", function()
      local t = db:create_topic("ev", { schema = "n int" })
      local rows = {}
      for i = 1, 70000 do rows[i] = { n = i } end
      local first, last = t:append(rows)
      assert.same({ 0, 69999 }, { first, last })
      local n = 0
      for rec in t:read {} do
        n = n + 1
        assert.equal(n, rec.n)
      end
      assert.equal(70000, n)
      assert.equal(1, #t:segments())
    end)
  end)

  describe("retention", function()
    -- Topic "ev" with 300 records in about ten 1 KB segments, to keep 3000 bytes.
    local function segmented_topic()
      local t = db:create_topic("ev", { segment_bytes = 1024, retention_bytes = 3000 })
      for i = 1, 30 do
        local rows = {}
        for j = 1, 10 do rows[j] = { value = string.rep("x", 10) .. i } end
        t:append(rows)
      end
      return t
    end

    it("drops the oldest sealed segments until a partition is under retention_bytes", function()
      local t = segmented_topic()
      local before = t:segments()
      local dropped = t:enforce_retention()
      assert.is_true(dropped > 0)
      local after = t:segments()
      assert.equal(#before - dropped, #after)
      local total = 0
      for _, s in ipairs(after) do total = total + s.bytes end
      assert.is_true(total <= 3000)
      assert.equal(after[1].base_offset, t:stats().earliest_offset)
      assert.equal(before[#before].end_offset, t:stats().latest_offset)
      for i = 1, dropped do
        assert.is_false(exists(hot_path(dir, t, 0, before[i].base_offset)))
      end
      local recs = collect(t, { from = 0 })
      assert.equal(after[1].base_offset, recs[1].offset)
      assert.equal(300 - after[1].base_offset, #recs)
      assert.equal(0, t:enforce_retention())
    end)

    it("lets a read that started before retention ran see every record it deleted", function()
      local t = segmented_topic()
      local segs = t:segments()
      assert.is_true(#segs > 4)
      local iter, _, _, r = t:read {}
      assert.equal(0, iter().offset)
      local dropped = t:enforce_retention()
      assert.is_true(dropped >= 2)
      assert.is_false(exists(hot_path(dir, t, 0, segs[2].base_offset)))
      -- offload the rest too: the read holds the hot files it started with
      t:offload { before_offset = segs[#segs - 1].end_offset }
      local n = 1
      for rec in iter do
        assert.equal(n, rec.offset)
        n = n + 1
      end
      r:close()
      assert.equal(300, n)
      -- a read that starts now sees the records still held
      local recs = collect(t, {})
      assert.equal(segs[dropped + 1].base_offset, recs[1].offset)
      assert.equal(300 - segs[dropped + 1].base_offset, #recs)
    end)

    it("fails a read of more segments than it holds when retention deletes one it did not hold", function()
      -- 80 one-append segments: a read holds the first 64 (READER_HOLD_MAX)
      local t = db:create_topic("ev", { schema = "n int", segment_bytes = 1024, retention_bytes = 4096 })
      local big = {}
      for j = 1, 200 do big[j] = { n = j } end
      for _ = 1, 80 do t:append(big) end
      local segs = t:segments()
      assert.equal(80, #segs)
      local iter, _, _, r = t:read {}
      assert.equal(0, iter().offset)
      assert.is_true(t:enforce_retention() > 64)
      local last = 0
      local ok, err = pcall(function()
        for rec in iter do last = rec.offset end
      end)
      r:close()
      assert.is_false(ok)
      assert.equal(segs[64].end_offset - 1, last)
      local first = t:segments()[1].base_offset
      assert.equal(string.format("read 'ev': topic 'ev' partition 0: offset %d is no longer held (deleted by " ..
        "retention while the read ran); the first offset still available is %d",
        segs[65].base_offset, first), (err:gsub("^[^:]*:%d+: ", "")))
    end)

    it("reads every partition whole when the descriptor limit stops it holding their files", function()
      -- 2 partitions of 40 one-append segments each, read by a child that
      -- may open 32 files: holding stops inside partition 0, and both
      -- partitions are then read by name
      local t = db:create_topic("ev", { schema = "n int", partitions = 2, segment_bytes = 1024 })
      local big = {}
      for j = 1, 400 do big[j] = { n = j } end
      for _ = 1, 40 do t:append(big, { key = "n" }) end -- each append: one block in each partition
      local per = { [0] = 0, [1] = 0 }
      for _, g in ipairs(t:segments()) do per[g.partition] = per[g.partition] + 1 end
      assert.is_true(per[0] >= 30 and per[1] >= 30)
      db:close()
      local script = tmpname() .. ".lua"
      write_file(script, CHILD_PRELUDE .. [[
local db = tide.open(arg[1])
local n = 0
for _ in db:topic("ev"):read {} do n = n + 1 end
db:close()
print(n)
]])
      local p = io.popen(string.format("sh -c 'ulimit -n 32; lua5.4 %s %s' 2>&1", script, dir))
      local out = p:read("a")
      local ok = p:close()
      os.remove(script)
      assert.equal("16000\n", out)
      assert.is_true(ok)
      db = tide.open(dir)
    end)

    it("drops sealed segments older than the retention time, never the open one", function()
      local t = db:create_topic("ev", { segment_ms = 1, retention = 1 })
      for i = 1, 4 do
        t:append { { value = i } }
        sleep_ms(10)
      end
      assert.equal(4, #t:segments())
      assert.equal(3, t:enforce_retention())
      local segs = t:segments()
      assert.equal(1, #segs)
      assert.equal("open", segs[1].state)
      assert.equal(3, segs[1].base_offset)
      local st = t:stats()
      assert.equal(3, st.earliest_offset)
      assert.equal(4, st.latest_offset)
      assert.equal(1, st.records)
      assert.same({ partition = 0, earliest = 3, latest = 4 }, t:offsets()[1])
      local recs = collect(t, { from = 0 })
      assert.equal(1, #recs)
      assert.equal(3, recs[1].offset)
      assert.equal(4, recs[1].value)
      sleep_ms(10)
      assert.equal(0, t:enforce_retention())
      -- appends go on after the dropped offsets
      local first = t:append { { value = 5 } }
      assert.is_true(first == 4)
    end)

    it("drops nothing when the topic has no retention", function()
      local t = db:create_topic("ev", { segment_ms = 1 })
      for i = 1, 3 do
        t:append { { value = i } }
        sleep_ms(5)
      end
      assert.equal(0, t:enforce_retention())
      assert.equal(3, #t:segments())
    end)

    it("drops offloaded segments too, with their cold files", function()
      local t = db:create_topic("ev", { segment_ms = 1, retention = 1 })
      for i = 1, 3 do
        t:append { { value = i } }
        sleep_ms(10)
      end
      assert.equal(2, t:offload {})
      local segs = t:segments()
      assert.equal("offloaded", segs[1].state)
      assert.is_true(exists(cold_path(dir, t, 0, 0)))
      assert.equal(2, t:enforce_retention())
      assert.is_false(exists(cold_path(dir, t, 0, 0)))
      assert.is_false(exists(cold_path(dir, t, 0, 1)))
      assert.same({ 3 }, field(collect(t), "value"))
    end)
  end)

  describe("offload", function()
    local t
    before_each(function()
      t = db:create_topic("ev", { schema = "ts timestamp, s string, n int", segment_bytes = 1024 })
      for i = 1, 40 do t:append { { ts = 1000 + i, s = string.rep("abc", 30) .. i, n = i } } end
    end)

    it("moves sealed segments to the cold tier and reads return the same records", function()
      local before = collect(t)
      local segs = t:segments()
      local moved = t:offload {}
      assert.equal(#segs - 1, moved)
      local after = t:segments()
      for i, s in ipairs(after) do
        if i < #after then
          assert.equal("offloaded", s.state)
          assert.equal(segs[i].bytes, s.bytes)
          assert.is_true(s.stored_bytes < s.bytes)
          assert.is_false(exists(hot_path(dir, t, 0, s.base_offset)))
          assert.equal(s.stored_bytes, file_size(cold_path(dir, t, 0, s.base_offset)))
        else
          assert.equal("open", s.state)
          assert.is_true(exists(hot_path(dir, t, 0, s.base_offset)))
        end
      end
      assert.same(before, collect(t))
      assert.same(before, (function() reopen(); t = db:topic("ev"); return collect(t) end)())
      local st = t:stats()
      assert.is_true(st.stored_bytes < st.bytes)
      assert.equal(0, t:offload {})
    end)

    it("moves only segments that end at or before before_offset", function()
      local segs = t:segments()
      local moved = t:offload { before_offset = segs[2].end_offset }
      assert.equal(2, moved)
      local after = t:segments()
      assert.equal("offloaded", after[1].state)
      assert.equal("offloaded", after[2].state)
      assert.equal("sealed", after[3].state)
      assert.has_error(function() t:offload { before_offset = "x" } end,
        "offload: option 'before_offset' must be an integer, got string")
    end)

    it("serves offset and time ranges from cold segments", function()
      local want = field(collect(t, { from = 5, to = 9 }), "n")
      local want_t = field(collect(t, { from_time = 1010, to_time = 1013 }), "n")
      t:offload {}
      assert.same(want, field(collect(t, { from = 5, to = 9 }), "n"))
      assert.same(want_t, field(collect(t, { from_time = 1010, to_time = 1013 }), "n"))
      assert.same({ 5, 6, 7, 8 }, field(collect(t, { from = 4, to = 8 }), "n"))
    end)

    it("keeps appending after offloading", function()
      t:offload {}
      t:append { { ts = 5000, s = "after", n = 41 } }
      local recs = collect(t)
      assert.equal(41, #recs)
      assert.equal("after", recs[41].s)
    end)

    it("uses the cold_dir given to open", function()
      local cold = dir .. "-cold"
      reopen { cold_dir = cold }
      t = db:topic("ev")
      local before = collect(t)
      assert.is_true(t:offload {} > 0)
      assert.is_true(#ls(cold .. "/" .. db:id() .. "/" .. t:info().id .. "/p0") > 0)
      assert.same(before, collect(t))
      os.execute("rm -rf '" .. cold .. "'")
    end)
  end)

  describe("stats", function()
    it("sums records, bytes and segments over partitions", function()
      local t = db:create_topic("ev", { partitions = 2, segment_bytes = 1024 })
      assert.same({ records = 0, bytes = 0, stored_bytes = 0, segments = 0, earliest_offset = 0, latest_offset = 0,
        partitions = { { partition = 0, earliest = 0, latest = 0 }, { partition = 1, earliest = 0, latest = 0 } } },
        t:stats())
      for i = 1, 10 do t:append { { value = string.rep("y", 300) .. i } } end
      local st = t:stats()
      assert.equal(10, st.records)
      assert.equal(0, st.earliest_offset)
      assert.equal(5, st.latest_offset)
      local bytes = 0
      for _, s in ipairs(t:segments()) do bytes = bytes + s.bytes end
      assert.equal(bytes, st.bytes)
      assert.equal(bytes, st.stored_bytes)
      assert.equal(#t:segments(), st.segments)
      assert.same(t:offsets(), st.partitions)
    end)
  end)

  describe("several processes", function()
    it("sees what a child process appended while the store was open here", function()
      local t = db:create_topic("ev", { schema = "who string, n int", partitions = 2 })
      t:append { { who = "parent", n = 0 } }
      local iter, s, c, closer = t:read {}
      local out, ok = run_child([[
local db = tide.open(arg[1])
local t = db:topic("ev")
for i = 1, 20 do t:append { { who = "child", n = i }, { who = "child", n = i } } end
db:close()
print("done")
]], dir)
      assert.equal("done\n", out)
      assert.is_true(ok)
      local n = 0
      for _ in iter, s, c, closer do n = n + 1 end
      assert.equal(1, n, "a reader opened before sees its snapshot")
      local recs = collect(t)
      assert.equal(41, #recs)
      local st = t:stats()
      assert.equal(41, st.records)
      t:append { { who = "parent", n = 99 } }
      assert.equal(42, #collect(t))
    end)

    it("interleaves appends of a child and of this process without losing or doubling any", function()
      local t = db:create_topic("ev", { schema = "who string, n int", partitions = 3, segment_bytes = 1024 })
      local script = tmpname() .. ".lua"
      write_file(script, CHILD_PRELUDE .. [[
local db = tide.open(arg[1])
local t = db:topic("ev")
for i = 1, 100 do
  t:append({ { who = "child", n = i }, { who = "child", n = -i } }, i % 2 == 0 and { key = "who" } or nil)
end
db:close()
]])
      local p = io.popen("lua5.4 " .. script .. " '" .. dir .. "' 2>&1")
      for i = 1, 100 do t:append { { who = "parent", n = i }, { who = "parent", n = -i } } end
      local out = p:read("a")
      assert.is_true(p:close(), out)
      os.remove(script)
      assert.equal("", out)
      local seen = { child = {}, parent = {} }
      for p2 = 0, 2 do
        local recs = collect(t, { partition = p2 })
        for i, r in ipairs(recs) do
          assert.equal(i - 1, r.offset)
          assert.is_nil(seen[r.who][r.n])
          seen[r.who][r.n] = true
          -- the two rows of one append are adjacent
          if r.n > 0 then
            assert.equal(r.who, recs[i + 1].who)
            assert.equal(-r.n, recs[i + 1].n)
          end
        end
      end
      for _, who in ipairs { "child", "parent" } do
        for i = 1, 100 do
          assert.is_true(seen[who][i] and seen[who][-i], who .. " " .. i)
        end
      end
    end)

    it("sees topics that a child process created and deleted", function()
      db:create_topic("doomed")
      local out, ok = run_child([[
local db = tide.open(arg[1])
db:create_topic("born"):append { { value = "hi" } }
db:delete_topic("doomed")
db:close()
]], dir)
      assert.is_true(ok, out)
      assert.same({ "born" }, db:topics())
      assert.equal("hi", collect(db:topic("born"))[1].value)
      assert.has_error(function() db:topic("doomed") end,
        "no topic 'doomed' in store '" .. dir .. "' (topics: born)")
    end)
  end)
end)
