-- Specs for the static sources of frames: tide.read("file", ...) over JSON
-- lines, CSV and text (globs, directories, skipped files, bad records,
-- options), and db:read(topic) with its ranges and schema versions.
--
-- Every test gets a fresh temporary directory (before_each) that after_each
-- removes, with the store in it when one is opened.

local tide = require "tide"
local support = require "support"
local tmpname = support.tmpname
local write_file = support.write_file

-- The message of an error raised while running a frame (level 0: no prefix).
local function run_error(f)
  local ok, err = pcall(f.collect, f)
  assert(not ok, "expected the run to fail")
  return err
end

describe("tide.read", function()
  local dir

  before_each(function()
    dir = tmpname()
    assert(os.execute("mkdir -p '" .. dir .. "'"))
  end)

  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function read(opts)
    if opts.path and opts.path:sub(1, 1) ~= "/" then opts.path = dir .. "/" .. opts.path end
    return tide.read("file", opts)
  end

  describe("json", function()
    it("reads JSON lines into rows of the schema, skipping blank lines", function()
      write_file(dir .. "/a.json", '{"a":1,"s":"x"}\n\n  \n{"a":2}\n')
      assert.same({ { a = 1, s = "x" }, { a = 2 } }, read { path = "a.json", schema = "a int, s string?" }:collect())
    end)

    it("takes json as the default format", function()
      write_file(dir .. "/a.json", '{"a":1}\n')
      assert.same({ { a = 1 } }, read { path = "a.json", format = "json", schema = "a int" }:collect())
      assert.same({ { a = 1 } }, read { path = "a.json", schema = "a int" }:collect())
    end)

    it("reads a last line without a newline", function()
      write_file(dir .. "/a.json", '{"a":1}\n{"a":2}')
      assert.same({ { a = 1 }, { a = 2 } }, read { path = "a.json", schema = "a int" }:collect())
    end)

    it("parses ISO-8601 and integer timestamps", function()
      write_file(dir .. "/a.json", '{"t":"2026-11-21T12:00:05Z"}\n{"t":"2026-11-21 12:00:05.250"}\n{"t":1000}\n')
      assert.same({ { t = 1795262405000 }, { t = 1795262405250 }, { t = 1000 } },
        read { path = "a.json", schema = "t timestamp" }:collect())
    end)

    it("reads every file of a glob, in name order", function()
      write_file(dir .. "/b.json", '{"a":2}\n')
      write_file(dir .. "/a.json", '{"a":1}\n')
      write_file(dir .. "/c.txt", '{"a":3}\n')
      assert.same({ { a = 1 }, { a = 2 } }, read { path = "*.json", schema = "a int" }:collect())
    end)

    it("reads the files of a directory, with or without a trailing slash, not its subdirectories", function()
      write_file(dir .. "/b.json", '{"a":2}\n')
      write_file(dir .. "/a.json", '{"a":1}\n')
      assert(os.execute("mkdir '" .. dir .. "/sub'"))
      write_file(dir .. "/sub/c.json", '{"a":3}\n')
      assert.same({ { a = 1 }, { a = 2 } }, tide.read("file", { path = dir, schema = "a int" }):collect())
      assert.same({ { a = 1 }, { a = 2 } }, tide.read("file", { path = dir .. "/", schema = "a int" }):collect())
    end)

    it("skips hidden files and files starting with _, as Spark does", function()
      write_file(dir .. "/a.json", '{"a":1}\n')
      write_file(dir .. "/.hidden.json", '{"a":9}\n')
      write_file(dir .. "/_SUCCESS.json", '{"a":8}\n')
      assert.same({ { a = 1 } }, read { path = "*.json", schema = "a int" }:collect())
      assert.same({ { a = 1 } }, tide.read("file", { path = dir, schema = "a int" }):collect())
    end)

    it("sees files added after the frame was built on its next run", function()
      write_file(dir .. "/a.json", '{"a":1}\n')
      local f = read { path = "*.json", schema = "a int" }
      assert.same({ { a = 1 } }, f:collect())
      write_file(dir .. "/b.json", '{"a":2}\n')
      assert.same({ { a = 1 }, { a = 2 } }, f:collect())
    end)

    it("counts the files in its plan", function()
      write_file(dir .. "/a.json", '{"a":1}\n')
      write_file(dir .. "/b.json", '{"a":2}\n')
      assert.equal("Read " .. dir .. "/*.json (json, 2 files)  => a int", read { path = "*.json",
        schema = "a int" }:explain())
    end)

    it("fails the run on a bad record, naming the file and the line", function()
      write_file(dir .. "/a.json", '{"a":1}\n')
      write_file(dir .. "/b.json", '{"a":3}\n\n{"a":"bad"}\n')
      assert.equal("read " .. dir .. "/b.json: line 3: field 'a': expected int, got \"bad\"",
        run_error(read { path = "*.json", schema = "a int" }))
      write_file(dir .. "/b.json", '{"a":3}\nnot json\n')
      assert.equal("read " .. dir .. "/b.json: line 2: invalid JSON at column 1: expected '{'",
        run_error(read { path = "b.json", schema = "a int" }))
    end)

    it("drops bad records with bad_records = drop", function()
      write_file(dir .. "/a.json", '{"a":1}\n{"a":"bad"}\nnope\n{"a":4}\n')
      assert.same({ { a = 1 }, { a = 4 } }, read { path = "a.json", schema = "a int", bad_records = "drop" }:collect())
    end)

    it("rejects unknown fields by default and ignores them with unknown_fields = ignore", function()
      write_file(dir .. "/a.json", '{"a":5,"zz":1}\n')
      assert.equal("read " .. dir .. "/a.json: line 1: unknown field 'zz' (fields: a)",
        run_error(read { path = "a.json", schema = "a int" }))
      assert.same({ { a = 5 } }, read { path = "a.json", schema = "a int", unknown_fields = "ignore" }:collect())
      assert.same({}, read { path = "a.json", schema = "a int", unknown_fields = "reject",
        bad_records = "drop" }:collect())
    end)

    it("reads a file larger than one read chunk", function()
      local lines = {}
      for i = 1, 300000 do lines[i] = string.format('{"a":%d,"s":"%s"}', i, string.rep("x", i % 7)) end
      write_file(dir .. "/big.json", table.concat(lines, "\n") .. "\n")
      local got = read { path = "big.json", schema = "a int, s string" }:group_by("1 AS k")
        :agg { n = "count(*)", s = "sum(a)" }:collect()
      assert.same({ { k = 1, n = 300000, s = 300000 * 300001 // 2 } }, got)
    end)
  end)

  describe("csv", function()
    it("reads a header line, quoted separators and newlines (multi_line), \"\" escapes, empty fields as NULL " ..
      "and \"\" as ''", function()
        write_file(dir .. "/a.csv", 'a,s,d\n1,"x,y",2.5\n2,"multi\nline",\n3,"say ""hi""",1e2\n4,,\n5,"",\n')
        assert.same({ { a = 1, s = "x,y", d = 2.5 }, { a = 2, s = "multi\nline" }, { a = 3, s = 'say "hi"', d = 100.0 },
          { a = 4 }, { a = 5, s = "" } },
          read { path = "a.csv", format = "csv", header = true, multi_line = true,
            schema = "a int, s string?, d double?" }:collect())
      end)

    it("reads a record a line by default: a stray quote is a bad line, the next line the next record", function()
      write_file(dir .. "/a.csv", '1,x\n2,"open\n3,"y"\n')
      assert.equal("read " .. dir .. "/a.csv: line 2: field 2: unterminated quoted field",
        run_error(read { path = "a.csv", format = "csv", schema = "a int, s string" }))
      assert.same({ { a = 1, s = "x" }, { a = 3, s = "y" } },
        read { path = "a.csv", format = "csv", schema = "a int, s string", bad_records = "drop" }:collect())
      assert.has_error(function() read { path = "a.csv", format = "json", schema = "a int", multi_line = true } end,
        "tide.read: option 'multi_line' is for csv")
    end)

    it("reads the first line as data without header", function()
      write_file(dir .. "/a.csv", "1,x\n2,y\n")
      assert.same({ { a = 1, s = "x" }, { a = 2, s = "y" } },
        read { path = "a.csv", format = "csv", schema = "a int, s string" }:collect())
    end)

    it("fails on a header read as data, naming the line", function()
      write_file(dir .. "/a.csv", "a,s\n1,x\n")
      assert.equal("read " .. dir .. "/a.csv: line 1: field 'a': expected int, got \"a\"",
        run_error(read { path = "a.csv", format = "csv", schema = "a int, s string" }))
    end)

    it("uses another separator with sep", function()
      write_file(dir .. "/a.csv", '1;x,y\n2;"a;b"\n')
      assert.same({ { a = 1, s = "x,y" }, { a = 2, s = "a;b" } },
        read { path = "a.csv", format = "csv", sep = ";", schema = "a int, s string" }:collect())
    end)

    it("accepts CRLF line ends", function()
      write_file(dir .. "/a.csv", "a,s\r\n1,x\r\n2,y\r\n")
      assert.same({ { a = 1, s = "x" }, { a = 2, s = "y" } },
        read { path = "a.csv", format = "csv", header = true, schema = "a int, s string" }:collect())
    end)

    it("refuses a record with another number of fields, naming its line after a multi-line record", function()
      write_file(dir .. "/a.csv", '1,"a\nb"\n2,x\n3\n')
      assert.equal("read " .. dir .. "/a.csv: line 4: 1 field, the schema has 2",
        run_error(read { path = "a.csv", format = "csv", schema = "a int, s string", multi_line = true }))
      write_file(dir .. "/b.csv", "1;x\n2;y;z\n")
      assert.equal("read " .. dir .. "/b.csv: line 2: more than 2 fields",
        run_error(read { path = "b.csv", format = "csv", sep = ";", schema = "a int, s string?" }))
    end)

    it("refuses an empty field in a column that is not nullable", function()
      write_file(dir .. "/a.csv", "1,\n")
      assert.equal("read " .. dir .. "/a.csv: line 1: field 's': empty value (not nullable)",
        run_error(read { path = "a.csv", format = "csv", schema = "a int, s string" }))
    end)

    it("drops bad records with bad_records = drop", function()
      write_file(dir .. "/a.csv", "1;x\n2;y;z\nq;r\n4;w\n")
      assert.same({ { a = 1, s = "x" }, { a = 4, s = "w" } },
        read { path = "a.csv", format = "csv", sep = ";", schema = "a int, s string?", bad_records = "drop" }:collect())
    end)

    it("skips the header of every file", function()
      write_file(dir .. "/a.csv", "a\n1\n")
      write_file(dir .. "/b.csv", "a\n2\n")
      assert.same({ { a = 1 }, { a = 2 } }, read { path = "*.csv", format = "csv", header = true,
        schema = "a int" }:collect())
    end)
  end)

  describe("text", function()
    it("reads each line as a row of value string, empty lines included, CR stripped", function()
      write_file(dir .. "/a.txt", "line one\nline two\r\n\nlast")
      assert.same({ { value = "line one" }, { value = "line two" }, { value = "" }, { value = "last" } },
        read { path = "a.txt", format = "text" }:collect())
      assert.same({ { "value", "string" } }, read { path = "a.txt", format = "text" }:schema())
    end)
  end)

  describe("options", function()
    before_each(function() write_file(dir .. "/a.json", '{"a":1}\n') end)

    it("requires a path, and infers the schema of json and csv from the first file when it is absent", function()
      assert.has_error(function() tide.read("file", { schema = "a int" }) end, "tide.read: option 'path' is required")
      assert.has_error(function() tide.read("file") end, "tide.read: option 'path' is required")
      assert.same({ { "a", "int" } }, read { path = "a.json" }:schema())
      assert.same({ { a = 1 } }, read { path = "a.json" }:collect())
      write_file(dir .. "/b.csv", 'ts,n,x\n2026-11-21T12:00:05Z,1,"a, b"\n2026-11-21T12:00:06Z,,c\n')
      local f = read { path = "b.csv", format = "csv", header = true }
      assert.same({ { "ts", "timestamp" }, { "n", "int?" }, { "x", "string" } }, f:schema())
      assert.same({ { ts = 1795262405000, n = 1, x = "a, b" }, { ts = 1795262406000, x = "c" } }, f:collect())
      write_file(dir .. "/c.json", '{"a":\n')
      assert.has_error(function() read { path = "c.json" } end, "tide.read: cannot infer a schema (give option " ..
        "'schema'): " .. dir .. "/c.json line 1: invalid JSON at column 6: unexpected character")
    end)

    it("refuses a path that matches no file", function()
      assert.has_error(function() tide.read("file", { path = dir .. "/none*.json", schema = "a int" }) end,
        "tide.read: no files match '" .. dir .. "/none*.json'")
      assert.has_error(function() tide.read("file", { path = dir .. "/missing.json", schema = "a int" }) end,
        "tide.read: no files match '" .. dir .. "/missing.json'")
    end)

    it("refuses unknown options and bad values", function()
      assert.has_error(function() read { path = "a.json", schema = "a int", bogus = 1 } end,
        "tide.read: unknown option 'bogus' (allowed: bad_records, format, header, multi_line, path, schema, sep, " ..
          "unknown_fields)")
      assert.has_error(function() read { path = "a.json", format = "xml", schema = "a int" } end,
        "tide.read: option 'format' must be one of json, csv, text, got 'xml'")
      assert.has_error(function() read { path = "a.json", schema = "a int", bad_records = "dead_letter" } end,
        "tide.read: option 'bad_records' must be one of fail, drop, got 'dead_letter'")
      assert.has_error(function() read { path = "a.json", format = "csv", header = "yes", schema = "a int" } end,
        "tide.read: option 'header' must be a boolean, got string")
      assert.has_error(function() tide.read("file", { path = 5, schema = "a int" }) end,
        "tide.read: option 'path' must be a string, got number")
      assert.has_error(function() tide.read("file", "x") end, "tide.read: options must be a table, got string")
    end)

    it("refuses csv options for other formats, a long sep, a schema for text, a bad schema", function()
      assert.has_error(function() read { path = "a.json", schema = "a int", sep = ";" } end,
        "tide.read: options 'header' and 'sep' are for csv")
      assert.has_error(function() read { path = "a.json", schema = "a int", header = true } end,
        "tide.read: options 'header' and 'sep' are for csv")
      assert.has_error(function() read { path = "a.json", format = "csv", schema = "a int", sep = ";;" } end,
        "tide.read: option 'sep' must be one character")
      assert.has_error(function() read { path = "a.json", format = "text", schema = "a int" } end,
        "tide.read: the text format has a fixed schema (value string)")
      assert.has_error(function() read { path = "a.json", schema = "a foo" } end,
        "tide.read: bad schema: at position 3: unknown type 'foo' (allowed: bool, int, double, string, " ..
          "timestamp, json)")
    end)

    it("refuses other sources", function()
      assert.has_error(function() tide.read("socket", {}) end,
        "tide.read: unknown source 'socket' (static sources: file, postgres; topics: db:read)")
      assert.has_error(function() tide.read(5, {}) end,
        "tide.read: unknown source number (static sources: file, postgres; topics: db:read)")
    end)
  end)
end)

describe("db:read", function()
  local dir, db

  before_each(function()
    dir = tmpname()
    db = tide.open(dir)
    db:create_topic("ev", { partitions = 2, schema = "ts timestamp, device string, signal int?" })
    local t = db:topic("ev")
    -- appends without a key go to one partition per call, round-robin
    t:append { { ts = 1000, device = "a", signal = 1 }, { ts = 2000, device = "b" }, { ts = 3000, device = "c",
      signal = 3 } }
    t:append { { ts = 1500, device = "d", signal = 4 }, { ts = 4000, device = "e", signal = 5 } }
  end)

  after_each(function()
    db:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function devices(rows)
    local out = {}
    for i, r in ipairs(rows) do out[i] = r.device end
    return out
  end

  it("reads every record of a topic, partition by partition, as a static frame", function()
    local f = db:read("ev")
    assert.same({ { "ts", "timestamp" }, { "device", "string" }, { "signal", "int?" } }, f:schema())
    assert.same({ "a", "b", "c", "d", "e" }, devices(f:collect()))
    assert.same({ ts = 2000, device = "b" }, f:collect()[2])
    assert.equal("Topic ev  => ts timestamp, device string, signal int?", f:explain())
  end)

  it("runs operators over a topic", function()
    assert.same({ { n = 4, s = 13 } }, db:read("ev"):where("signal IS NOT NULL"):group_by("1 AS k")
      :agg { n = "count(*)", s = "sum(signal)" }:drop("k"):collect())
  end)

  it("reads offset ranges per partition: from inclusive, to exclusive", function()
    assert.same({ "b", "c", "e" }, devices(db:read("ev", { from = 1 }):collect()))
    assert.same({ "a", "d" }, devices(db:read("ev", { to = 1 }):collect()))
    assert.same({ "b", "e" }, devices(db:read("ev", { from = 1, to = 2 }):collect()))
  end)

  it("reads one partition", function()
    assert.same({ "a", "b", "c" }, devices(db:read("ev", { partition = 0 }):collect()))
    assert.same({ "d", "e" }, devices(db:read("ev", { partition = 1 }):collect()))
  end)

  it("reads an event-time range, from inclusive, to exclusive, in ms or ISO-8601", function()
    assert.same({ "b", "c", "d" }, devices(db:read("ev", { from_time = 1500, to_time = 4000 }):collect()))
    assert.same({ "b", "c", "d" }, devices(db:read("ev", { from_time = "1970-01-01T00:00:01.500Z",
      to_time = "1970-01-01T00:00:04Z" }):collect()))
    assert.same({ "d" }, devices(db:read("ev", { partition = 1, to_time = 2000 }):collect()))
  end)

  it("sees records appended after the frame was built on its next run", function()
    local f = db:read("ev", { partition = 0 })
    assert.equal(3, #f:collect())
    db:topic("ev"):append { { ts = 5000, device = "f" } } -- the third call: partition 0
    assert.equal(4, #f:collect())
  end)

  it("reads a topic written under two schema versions in the latest, or in the version asked for", function()
    assert.equal(2, db:register_schema("ev", "ts timestamp, device string, signal int?, extra string?"))
    db:topic("ev"):append { { ts = 6000, device = "g", signal = 7, extra = "x" } }
    local latest = db:read("ev"):collect()
    assert.same({ { "ts", "timestamp" }, { "device", "string" }, { "signal", "int?" }, { "extra", "string?" } },
      db:read("ev"):schema())
    assert.equal(6, #latest)
    local g
    for _, r in ipairs(latest) do
      if r.device == "g" then g = r end
      if r.device == "a" then assert.is_nil(r.extra) end
    end
    assert.same({ ts = 6000, device = "g", signal = 7, extra = "x" }, g)
    local v1 = db:read("ev", { schema_version = 1 })
    assert.same({ { "ts", "timestamp" }, { "device", "string" }, { "signal", "int?" } }, v1:schema())
    for _, r in ipairs(v1:collect()) do assert.is_nil(r.extra) end
    assert.equal(6, #v1:collect())
  end)

  it("refuses unknown options", function()
    assert.has_error(function() db:read("ev", { bogus = 1 }) end,
      "read: unknown option 'bogus' (allowed: from, from_time, partition, schema_version, to, to_time)")
  end)

  it("refuses an unknown topic, blaming the caller", function()
    local ok, err = pcall(function()
      local f = db:read("nope") -- not a tail call: the caller's line must stay on the stack
      return f
    end)
    assert.is_false(ok)
    assert.truthy(err:find("no topic 'nope' in store '" .. dir .. "' (topics: ev)", 1, true), err)
    assert.equal("spec/read_spec.lua:", err:match("^[^:]*:"), err)
  end)

  it("refuses a bad time range when the frame is built, not when it runs", function()
    assert.has_error(function() db:read("ev", { from_time = "x" }) end,
      "read: option 'from_time' must be a timestamp (integer ms or ISO-8601 string), got 'x'")
  end)
end)
