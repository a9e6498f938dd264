-- Names and paths that cross into C (issue 18, items 7-9): C strings end at
-- the first NUL byte and an empty path joined with "/x" is the file-system
-- root, so every binding that hands a name or a path to C refuses both
-- (tide_l_check_cname in core/l_tide.c); deleting a topic never follows a
-- symbolic link.

local tide = require "tide"
local core = require "tide.core"
local support = require "support"
local tmpname, write_file, exists = support.tmpname, support.write_file, support.exists

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The message of the error f raises, without a position.
local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("names and paths", function()
  local root, db

  before_each(function()
    root = tmpname()
    assert(os.execute("mkdir -p " .. q(root)))
    db = tide.open(root .. "/db")
  end)

  after_each(function()
    if db then db:close() end
    collectgarbage()
    os.execute("rm -rf " .. q(root))
  end)

  describe("with a NUL byte", function()
    it("are refused as topic names instead of naming the part before the NUL", function()
      assert.equal("topic name 'a\\0b' holds a NUL byte (at byte 2)",
        raised(db.create_topic, db, "a\0b", { schema = "x int" }))
      assert.same({}, db:topics())
      db:create_topic("a", { schema = "x int" })
      db:topic("a"):append { { x = 1 } }
      assert.equal("topic name 'a\\0qqq' holds a NUL byte (at byte 2)", raised(db.delete_topic, db, "a\0qqq"))
      assert.equal("topic name 'a\\0qqq' holds a NUL byte (at byte 2)", raised(db.topic, db, "a\0qqq"))
      assert.equal("topic name 'a\\0' holds a NUL byte (at byte 2)",
        raised(db.register_schema, db, "a\0", "x int, y int?"))
      -- topic a is untouched
      assert.same({ "a" }, db:topics())
      assert.equal(1, db:topic("a"):stats().records)
    end)

    it("are refused as store, cold tier, checkpoint and file-system paths", function()
      assert.equal("store directory '" .. root .. "/s\\0x' holds a NUL byte (at byte " .. (#root + 3) .. ")",
        raised(tide.open, root .. "/s\0x"))
      assert.equal("cold_dir '" .. root .. "/c\\0x' holds a NUL byte (at byte " .. (#root + 3) .. ")",
        raised(tide.open, root .. "/s2", { cold_dir = root .. "/c\0x" }))
      assert.equal("checkpoint path '" .. root .. "/ck\\0x' holds a NUL byte (at byte " .. (#root + 4) .. ")",
        raised(core.checkpoint, root .. "/ck\0x"))
      assert.equal("mkdir: path 'd\\0x' holds a NUL byte (at byte 2)", raised(core.mkdir, "d\0x"))
      assert.equal("stat: path 'd\\0x' holds a NUL byte (at byte 2)", raised(core.stat, "d\0x"))
      assert.equal("listdir: path 'd\\0x' holds a NUL byte (at byte 2)", raised(core.listdir, "d\0x"))
      assert.equal("fsync: path 'd\\0x' holds a NUL byte (at byte 2)", raised(core.fsync, root, "d\0x"))
      -- nothing was made under the part before the NUL
      assert.is_false(exists(root .. "/s/data.mdb"))
      assert.is_false(exists(root .. "/ck/data.mdb"))
    end)

    it("are refused as a query's checkpoint and a file sink's path", function()
      local f = tide.read_stream("rate", { rows_per_second = 1 })
      assert.equal("checkpoint path '" .. root .. "/q\\0x' holds a NUL byte (at byte " .. (#root + 3) .. ")",
        raised(function() return f:write_stream("console", { checkpoint = root .. "/q\0x" }) end))
      assert.equal("write_stream(file): option 'path' \"" .. root .. "/o\\0x\" holds a NUL byte",
        raised(function() return f:write_stream("file", { path = root .. "/o\0x", checkpoint = root .. "/q2" }) end))
      assert.is_false(exists(root .. "/q/data.mdb"))
      assert.is_false(exists(root .. "/o/_tide"))
    end)
  end)

  describe("inside expressions", function()
    -- found by fuzz_expr: the literal compiled, its canonical text (a C
    -- string: output column names, the plan's fingerprint) was cut there
    it("refuse a NUL byte in a string literal or a quoted name", function()
      local s = core.schema("s string")
      assert.same({ nil, "at position 5: NUL byte in a string", "EPARSE" }, { core.expr("s = 'a\0b'", s) })
      assert.same({ nil, "at position 1: NUL byte in a quoted name", "EPARSE" }, { core.expr("`s\0x`", s) })
    end)

    -- found by fuzz_expr: 5e535 became Infinity, whose canonical text is a
    -- column name
    it("refuse a number literal beyond the range of a double", function()
      local s = core.schema("x double")
      assert.same({ nil, "at position 5: number out of range: '5e535'", "EPARSE" }, { core.expr("x + 5e535", s) })
      assert.equal("double", core.expr("x + 1e308", s):type())
    end)
  end)

  describe("when empty", function()
    -- Before, "" + "/data.mdb" opened a checkpoint at the file-system root.
    it("are refused as a checkpoint, a file sink's path and a cold tier", function()
      assert.equal("checkpoint path is empty", raised(core.checkpoint, ""))
      local f = tide.read_stream("rate", { rows_per_second = 1 })
      assert.equal("checkpoint path is empty",
        raised(function() return f:write_stream("console", { checkpoint = "" }) end))
      assert.equal("write_stream(file): option 'path' is empty (the output directory)",
        raised(function() return f:write_stream("file", { path = "", checkpoint = root .. "/q" }) end))
      assert.equal("cold_dir is empty", raised(tide.open, root .. "/s2", { cold_dir = "" }))
      assert.equal("mkdir: path is empty", raised(core.mkdir, ""))
      assert.equal("stat: path is empty", raised(core.stat, ""))
    end)
  end)

  describe("deleting a topic", function()
    it("removes a symbolic link in place of its directory, never what the link points at", function()
      local t = db:create_topic("ev", { schema = "x int" })
      t:append { { x = 1 } }
      local topic_dir = string.format("%s/db/topics/%d", root, t:info().id)
      local outside = root .. "/precious"
      -- the topic's directory moved elsewhere and replaced by a link to it,
      -- with a file that is not tide's beside the segments
      assert(os.execute(string.format("mv %s %s && ln -s %s %s", q(topic_dir), q(outside), q(outside), q(topic_dir))))
      write_file(outside .. "/notes.txt", "mine")
      db:delete_topic("ev")
      assert.same({}, db:topics())
      assert.is_true(exists(outside .. "/notes.txt"))
      assert.is_true(exists(outside .. "/p0/" .. support.seg_name(0)))
      -- the link itself is gone
      assert.is_true(os.execute("test ! -e " .. q(topic_dir) .. " && test ! -L " .. q(topic_dir)))
    end)

    it("removes links inside its directory without following them", function()
      local t = db:create_topic("ev", { schema = "x int" })
      t:append { { x = 1 } }
      local topic_dir = string.format("%s/db/topics/%d", root, t:info().id)
      local outside = root .. "/precious"
      assert(os.execute("mkdir -p " .. q(outside)))
      write_file(outside .. "/notes.txt", "mine")
      assert(os.execute(string.format("ln -s %s %s/p1", q(outside), q(topic_dir))))
      db:delete_topic("ev")
      assert.is_true(exists(outside .. "/notes.txt"))
      assert.is_true(os.execute("test ! -e " .. q(topic_dir)))
    end)
  end)
end)
