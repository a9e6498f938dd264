-- f:write(sink, opts): a static frame's rows into a sink (issue 19), for
-- every sink whose connector takes static frames (its descriptor's
-- `write`, connectors/README.md): file, topic, memory, console, foreach
-- (postgres: spec/connectors_postgres_spec.lua). Each is checked by reading
-- the output back, with its save modes and its bad arguments.
local tide = require "tide"
local support = require "spec.support"
local file = require "tide.connectors.file"

local function two()
  return tide.from_rows({ { a = 1, s = "x" }, { a = 2, s = "y,z" } }, "a int, s string")
end

local function err_of(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^[^:]+:%d+: ", ""))
end

local function files_in(dir)
  local out = {}
  local p = io.popen("ls -A '" .. dir .. "' 2>/dev/null")
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end

describe("f:write", function()
  local dir
  before_each(function() dir = support.tmpname() .. "-write" end)
  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
    for _, q in ipairs(tide.queries()) do q:stop() end
  end)

  describe("file", function()
    it("writes one JSON file that tide.read reads back, and makes the directory", function()
      local out = dir .. "/a/b"
      assert.equal(2, two():write("file", { path = out }))
      local names = files_in(out)
      assert.equal(1, #names)
      assert.matches("^part%-%d+T%d+%-%x+%.json$", names[1])
      assert.equal('{"a":1,"s":"x"}\n{"a":2,"s":"y,z"}\n', support.read_file(out .. "/" .. names[1]))
      assert.same(two():collect(), tide.read("file", { path = out, schema = "a int, s string" }):collect())
    end)

    it("writes CSV with a header, quoted as needed", function()
      assert.equal(2, two():write("file", { path = dir, format = "csv" }))
      local names = files_in(dir)
      assert.equal('a,s\n1,x\n2,"y,z"\n', support.read_file(dir .. "/" .. names[1]))
      assert.same(two():collect(),
        tide.read("file", { path = dir, format = "csv", header = true, schema = "a int, s string" }):collect())
    end)

    it("refuses a directory with files unless told to append, overwrite or ignore", function()
      two():write("file", { path = dir })
      local first = files_in(dir)[1]
      assert.equal(string.format('write(file): \'%s\' already holds files (%s); mode = "append" adds one, ' ..
        '"overwrite" replaces them, "ignore" writes nothing', dir, first),
        err_of(function() two():write("file", { path = dir }) end))
      assert.equal(0, two():write("file", { path = dir, mode = "ignore" }))
      assert.same({ first }, files_in(dir))
      assert.equal(1, two():where("a = 1"):write("file", { path = dir, mode = "append" }))
      assert.equal(3, tide.read("file", { path = dir, schema = "a int, s string" }):count())
      assert.equal(1, two():where("a = 2"):write("file", { path = dir, mode = "overwrite" }))
      assert.same({ { a = 2, s = "y,z" } }, tide.read("file", { path = dir, schema = "a int, s string" }):collect())
    end)

    it("overwrites a streaming file sink's output, its manifest included", function()
      local ms = tide.memory_stream("a int, s string")
      ms:add { { a = 7, s = "old" } }
      local q = ms:frame():write_stream("file", { path = dir, checkpoint = dir .. "-ck", trigger = "available_now" })
      q:await()
      os.execute("rm -rf '" .. dir .. "-ck'")
      assert.is_not_nil(file.manifest(dir)[0])
      two():write("file", { path = dir, mode = "overwrite" })
      assert.same({}, file.manifest(dir))
      assert.same(two():collect(), tide.read("file", { path = dir, schema = "a int, s string" }):collect())
    end)

    it("overwrites a compacted manifest too, and frees the directory for another query", function()
      local saved = file.COMPACT_INTERVAL
      file.COMPACT_INTERVAL = 1
      finally(function() file.COMPACT_INTERVAL = saved end)
      local core = require "tide.core"
      local schema = core.schema("a int, s string")
      local s = file.sinks.file.new({ path = dir }, { query_id = "q-1" })
      for id = 0, 3 do s:add_batch(id, { core.rows_batch(schema, { { a = id, s = "old" } }) }, "append") end
      local compacted = false
      for _, name in ipairs(files_in(dir .. "/_tide")) do compacted = compacted or name:match("%.compact$") ~= nil end
      assert.is_true(compacted)
      two():write("file", { path = dir, mode = "overwrite" })
      assert.same({}, file.manifest(dir))
      assert.same(two():collect(), tide.read("file", { path = dir, schema = "a int, s string" }):collect())
      file.sinks.file.new({ path = dir }, { query_id = "q-2" }) -- not refused
    end)

    it("writes no file for no rows", function()
      assert.equal(0, two():where("a > 5"):write("file", { path = dir }))
      assert.same({}, files_in(dir))
    end)

    it("refuses bad options, naming them", function()
      local f = two()
      local ok, err = pcall(function() local _ = f:write("file", { path = dir, bogus = 1 }) end)
      assert.is_false(ok)
      assert.matches("^spec/frame_write_spec.lua:%d+: write%(file%): unknown option 'bogus' %(allowed: format, " ..
        "mode, path%)$", err)
      assert.equal("write(file): option 'path' is required (the output directory)",
        err_of(function() f:write("file", {}) end))
      assert.matches("write%(file%): option 'format'",
        err_of(function() f:write("file", { path = dir, format = "xml" }) end))
      assert.matches("write%(file%): option 'mode'",
        err_of(function() f:write("file", { path = dir, mode = "upsert" }) end))
      support.write_file(dir, "not a directory")
      assert.equal(string.format("write(file): '%s' is a file, not a directory", dir),
        err_of(function() f:write("file", { path = dir }) end))
    end)
  end)

  describe("topic", function()
    local db
    before_each(function()
      db = tide.open(dir .. "-store")
      db:create_topic("t", { schema = "a int, s string", partitions = 2 })
    end)
    after_each(function()
      db:close()
      os.execute("rm -rf '" .. dir .. "-store'")
    end)

    it("appends the rows in one append, by key when given", function()
      assert.equal(2, two():write("topic", { store = db, topic = "t", key = "s" }))
      assert.equal(2, two():write("topic", { store = db, topic = "t" }))
      local got = db:read("t"):order_by("a", "s"):collect()
      assert.same({ { a = 1, s = "x" }, { a = 1, s = "x" }, { a = 2, s = "y,z" }, { a = 2, s = "y,z" } }, got)
    end)

    it("appends nothing when a row does not fit, and refuses a frame of other columns", function()
      local bad = tide.from_rows({ { a = 1, s = "ok" }, { a = 2 } }, "a int, s string?")
      local ok = pcall(function() bad:write("topic", { store = db, topic = "t" }) end)
      assert.is_false(ok)
      assert.equal(0, db:topic("t"):stats().records)
      assert.matches("^write%(topic%): the frame's rows do not fit topic 't': ",
        err_of(function() tide.from_rows({ { b = 1 } }, "b int"):write("topic", { store = db, topic = "t" }) end))
    end)

    it("refuses a missing topic or key, naming what exists", function()
      assert.equal(string.format("write(topic): no topic 'nope' in store '%s' (topics: t)", db:path()),
        err_of(function() two():write("topic", { store = db, topic = "nope" }) end))
      assert.equal("write(topic): option 'topic' is required (the topic's name)",
        err_of(function() two():write("topic", { store = db }) end))
      assert.equal("write(topic): option 'key': column 'k' is not a field of topic 't' (fields: a, s)",
        err_of(function() two():write("topic", { store = db, topic = "t", key = "k" }) end))
    end)
  end)

  describe("memory", function()
    after_each(function()
      local memory = require "tide.connectors.memory"
      for _, n in ipairs { "w1", "w2" } do memory.drop_table(n) end
    end)

    it("makes a table for tide.table, with the save modes", function()
      assert.equal(2, two():write("memory", { name = "w1" }))
      assert.same(two():collect(), tide.table("w1"):collect())
      assert.equal('write(memory): table \'w1\' exists already; mode = "append" adds to it, "overwrite" replaces ' ..
        'it, "ignore" leaves it', err_of(function() two():write("memory", { name = "w1" }) end))
      assert.equal(0, two():write("memory", { name = "w1", mode = "ignore" }))
      local three = tide.from_rows({ { a = 3 } }, "a int, s string?")
      assert.equal(1, three:write("memory", { name = "w1", mode = "append" }))
      assert.same({ { a = 1, s = "x" }, { a = 2, s = "y,z" }, { a = 3 } }, tide.table("w1"):collect())
      assert.same({ { "a", "int" }, { "s", "string?" } }, tide.table("w1"):schema())
      two():where("a = 2"):write("memory", { name = "w1", mode = "overwrite" })
      assert.same({ { a = 2, s = "y,z" } }, tide.table("w1"):collect())
    end)

    it("refuses to append other columns and a missing name", function()
      two():write("memory", { name = "w2" })
      assert.equal("write(memory): table 'w2' has the columns (a int, s string), the frame (b int)",
        err_of(function() tide.from_rows({ { b = 1 } }, "b int"):write("memory", { name = "w2", mode = "append" }) end))
      assert.equal("write(memory): option 'name' is required (the table's name for tide.table(name))",
        err_of(function() two():write("memory", {}) end))
    end)
  end)

  describe("console", function()
    it("prints the frame as show does and returns its number of rows", function()
      local text = {}
      local n = two():write("console", { out = function(t) text[#text + 1] = t end, num_rows = 1 })
      assert.equal(2, n)
      assert.equal("+---+---+\n|  a|  s|\n+---+---+\n|  1|  x|\n+---+---+\nonly showing top 1 row\n",
        table.concat(text))
      assert.equal("write(console): option 'out' must be a function(text) or a file, got number",
        err_of(function() two():write("console", { out = 5 }) end))
    end)
  end)

  describe("foreach", function()
    it("calls fn on every row in order", function()
      local seen = {}
      assert.equal(2, two():write("foreach", { fn = function(r) seen[#seen + 1] = r.s end }))
      assert.same({ "x", "y,z" }, seen)
    end)

    it("raises what fn raises, and wants fn", function()
      assert.matches("boom", err_of(function() two():write("foreach", { fn = function() error("boom") end }) end))
      assert.equal("write(foreach): option 'fn' is required (a function(row))",
        err_of(function() two():write("foreach", {}) end))
    end)
  end)

  it("refuses streams, sinks that take only streams, and unknown sinks", function()
    local ms = tide.memory_stream("a int")
    assert.equal("write: only for static frames (a stream runs with write_stream)",
      err_of(function() ms:frame():write("console") end))
    assert.equal("write: the foreach_batch sink takes streams only (write_stream); static frames go to: console, " ..
      "file, foreach, memory, postgres, topic", err_of(function() two():write("foreach_batch", { fn = print }) end))
    assert.equal("unknown sink 'nope' (sinks: console, file, foreach, foreach_batch, memory, postgres, topic)",
      err_of(function() two():write("nope") end))
    assert.equal("write: bad argument #1: expected a sink name, got table",
      err_of(function() two():write({}) end))
  end)
end)
