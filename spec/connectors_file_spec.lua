-- The file source and sink (connectors/file.lua), driven through the
-- connector protocol directly (connectors/README.md): real files, a real
-- checkpoint directory, a real store for the dead-letter topic, and a child
-- process killed with SIGKILL while it writes batches.

local tide = require "tide"
local core = require "tide.core"
local util = require "tide.util"
local file = require "tide.connectors.file"
local support = require "support"

local tmpname, write_file, read_file, exists = support.tmpname, support.write_file, support.read_file, support.exists

local function sh(cmd) assert(os.execute(cmd), cmd) end

-- RFC 4648 base64, decoded (the dead-letter topic's raw_base64).
local function base64_decode(s)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bits = s:gsub("=", ""):gsub(".", function(c)
    local v = abc:find(c, 1, true) - 1
    local t = {}
    for i = 5, 0, -1 do t[#t + 1] = (v >> i) & 1 end
    return table.concat(t)
  end)
  local out = {}
  for i = 1, #bits - 7, 8 do out[#out + 1] = string.char(tonumber(bits:sub(i, i + 7), 2)) end
  return table.concat(out)
end

local function append_file(path, text)
  local f = assert(io.open(path, "ab"))
  f:write(text)
  f:close()
end

-- Set a file's modification time (seconds since the epoch).
local function set_mtime(path, secs) sh(string.format("touch -d @%d '%s'", secs, path)) end

local function listdir(dir)
  local out = {}
  local p = io.popen("ls -A '" .. dir .. "' 2>/dev/null")
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  table.sort(out)
  return out
end

describe("the file source", function()
  local dir, ckpt, n_sources

  before_each(function()
    dir, ckpt = tmpname(), tmpname()
    sh("mkdir -p '" .. dir .. "' '" .. ckpt .. "'")
    n_sources = 0
  end)

  after_each(function()
    os.execute(string.format("rm -rf '%s' '%s'", dir, ckpt))
  end)

  local D = file.sources.file

  -- A source as the engine makes one: options checked, then new.
  local function source(opts, index)
    local o = util.check_options(opts, D.options, "read_stream(file)")
    D.schema(o)
    n_sources = n_sources + 1
    return D.new(o, { loop = require("tide.runtime").loop(), query_id = "test", query_name = "t",
      checkpoint = ckpt, index = index or 1 })
  end

  -- The rows of get_batch (the batches closed), and its counters.
  local function rows_of(src, start, stop, id)
    local batches, counts = src:get_batch(start, stop, id or 0)
    local rows = {}
    for _, b in ipairs(batches) do
      for _, r in ipairs(b:rows()) do rows[#rows + 1] = r end
      b:close()
    end
    return rows, counts
  end

  local function ns(rows)
    local out = {}
    for i, r in ipairs(rows) do out[i] = r.n end
    return out
  end

  local function jsonl(from, to)
    local t = {}
    for i = from, to do t[#t + 1] = string.format('{"n":%d,"s":"row %d"}\n', i, i) end
    return table.concat(t)
  end

  local JSON = function(extra)
    local o = { path = dir .. "/*.jsonl", format = "json", schema = "n int, s string" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  describe("options", function()
    it("refuses an unknown option, naming the allowed ones", function()
      assert.has_error(function() source { path = dir, colour = "red" } end,
        "read_stream(file): unknown option 'colour' (allowed: bad_records, dead_letter_topic, final_line_wait, " ..
        "format, header, max_bytes_per_trigger, max_files_per_trigger, multi_line, path, schema, sep, store, " ..
        "unknown_fields)")
    end)

    it("refuses a bad format and a bad bad_records mode, naming the allowed values", function()
      assert.has_error(function() source { path = dir, format = "xml" } end,
        "read_stream(file): option 'format' must be one of json, csv, text, got 'xml'")
      assert.has_error(function() source { path = dir, format = "text", bad_records = "skip" } end,
        "read_stream(file): option 'bad_records' must be one of fail, drop, dead_letter, got 'skip'")
    end)

    it("needs a path, and a schema for json and csv but none for text", function()
      assert.has_error(function() source { format = "text" } end,
        "read_stream(file): option 'path' is required (a glob such as 'in/*.jsonl', or a directory)")
      assert.has_error(function() source { path = dir } end, "read_stream(file): option 'schema' is required for json")
      assert.has_error(function() source { path = dir, format = "csv" } end,
        "read_stream(file): option 'schema' is required for csv")
      assert.has_error(function() source { path = dir, format = "text", schema = "a int" } end,
        "read_stream(file): the text format has a fixed schema (value string)")
      assert.has_error(function() source { path = dir, schema = "n nosuchtype" } end)
    end)

    it("ties dead_letter and dead_letter_topic together", function()
      assert.has_error(function() source { path = dir, format = "text", bad_records = "dead_letter" } end,
        "read_stream(file): bad_records = 'dead_letter' needs option 'dead_letter_topic'")
      assert.has_error(function() source { path = dir, format = "text", dead_letter_topic = "bad" } end,
        "read_stream(file): option 'dead_letter_topic' goes with bad_records = 'dead_letter'")
    end)

    it("keeps csv options for csv", function()
      assert.has_error(function() source(JSON { sep = ";" }) end,
        "read_stream(file): options 'header' and 'sep' are for csv")
      assert.has_error(function() source { path = dir, format = "csv", schema = "a int", sep = ";;" } end,
        "read_stream(file): option 'sep' must be one character")
      assert.has_error(
        function() source { path = dir, format = "csv", schema = "a int", unknown_fields = "ignore" } end,
        "read_stream(file): option 'unknown_fields' is for json")
      assert.has_error(function() source(JSON { multi_line = true }) end,
        "read_stream(file): option 'multi_line' is for csv")
    end)

    it("says what it is, and that it is replayable", function()
      local src = source(JSON())
      assert.equal("FileSource[" .. dir .. "/*.jsonl]", src.description)
      assert.is_true(src.replayable)
      assert.equal("value string", D.schema { path = dir, format = "text" })
    end)
  end)

  describe("offsets", function()
    it("has no offset before any data, then one that covers every complete line", function()
      local src = source(JSON())
      assert.is_nil(src:latest_offset())
      write_file(dir .. "/a.jsonl", jsonl(1, 3))
      local off = src:latest_offset()
      assert.same({ entry = 1, pos = #jsonl(1, 3), file = dir .. "/a.jsonl" }, off)
      assert.same({ 1, 2, 3 }, ns(rows_of(src, nil, off)))
      assert.same({ entry = 1, pos = #jsonl(1, 3), file = dir .. "/a.jsonl" }, src:latest_offset())
    end)

    it("gives the same rows for the same offsets, also from a new source after a restart", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 3))
      set_mtime(dir .. "/a.jsonl", 1000)
      write_file(dir .. "/b.jsonl", jsonl(4, 5))
      set_mtime(dir .. "/b.jsonl", 2000)
      local src = source(JSON())
      local o1 = src:latest_offset()
      write_file(dir .. "/c.jsonl", jsonl(6, 6))
      set_mtime(dir .. "/c.jsonl", 3000)
      local o2 = src:latest_offset()
      assert.same({ 1, 2, 3, 4, 5 }, ns(rows_of(src, nil, o1)))
      assert.same({ 6 }, ns(rows_of(src, o1, o2)))
      src:stop()
      -- a file that appears later with an older time goes after what is logged
      write_file(dir .. "/0-old.jsonl", jsonl(7, 8))
      set_mtime(dir .. "/0-old.jsonl", 10)
      local again = source(JSON())
      assert.same({ 1, 2, 3, 4, 5 }, ns(rows_of(again, nil, o1)))
      assert.same({ 6 }, ns(rows_of(again, o1, o2)))
      local o3 = again:latest_offset()
      assert.equal(dir .. "/0-old.jsonl", o3.file)
      assert.same({ 7, 8 }, ns(rows_of(again, o2, o3)))
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, ns(rows_of(again, nil, o3)))
    end)

    it("orders the files of one listing by modification time, then name", function()
      write_file(dir .. "/z.jsonl", jsonl(1, 1))
      write_file(dir .. "/y.jsonl", jsonl(2, 2))
      write_file(dir .. "/x.jsonl", jsonl(3, 3))
      set_mtime(dir .. "/z.jsonl", 100)
      set_mtime(dir .. "/y.jsonl", 200)
      set_mtime(dir .. "/x.jsonl", 200)
      local src = source(JSON())
      assert.same({ 1, 3, 2 }, ns(rows_of(src, nil, src:latest_offset())))
    end)

    it("skips hidden files, files starting with '_' and files the glob does not match", function()
      write_file(dir .. "/.hidden.jsonl", jsonl(1, 1))
      write_file(dir .. "/_meta.jsonl", jsonl(2, 2))
      write_file(dir .. "/other.txt", jsonl(3, 3))
      write_file(dir .. "/ok.jsonl", jsonl(4, 4))
      local src = source(JSON())
      assert.same({ 4 }, ns(rows_of(src, nil, src:latest_offset())))
    end)

    it("reads a directory's files when the path is a directory", function()
      write_file(dir .. "/a", jsonl(1, 2))
      local src = source(JSON { path = dir })
      assert.same({ 1, 2 }, ns(rows_of(src, nil, src:latest_offset())))
    end)

    it("refuses an offset the file log does not hold", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 1))
      local src = source(JSON())
      src:latest_offset()
      assert.has_error(function() src:get_batch(nil, { entry = 5, pos = 3, file = "x" }, 1) end,
        string.format("FileSource[%s/*.jsonl]: end offset {\"entry\":5,\"file\":\"x\",\"pos\":3} does not match " ..
          "the file log in '%s/sources/1/log' (entry 5 is absent): was this checkpoint written by another source?",
          dir, ckpt))
      assert.has_error(function() src:get_batch(nil, "7", 1) end,
        string.format("FileSource[%s/*.jsonl]: bad end offset 7 (expected {entry=, pos=, file=})", dir))
    end)

    it("keeps each source's log apart by index", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 1))
      source(JSON(), 1):latest_offset()
      source({ path = dir .. "/*.jsonl", format = "text" }, 2):latest_offset()
      assert.is_true(exists(ckpt .. "/sources/1/log"))
      assert.is_true(exists(ckpt .. "/sources/2/log"))
    end)

    it("drops a log line a crash cut short and goes on", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 2))
      local src = source(JSON())
      local o1 = src:latest_offset()
      append_file(ckpt .. "/sources/1/log", '{"from":0,"mtime":5,"pa')
      write_file(dir .. "/b.jsonl", jsonl(3, 3))
      local again = source(JSON())
      assert.same({ 1, 2 }, ns(rows_of(again, nil, o1)))
      local o2 = again:latest_offset()
      assert.same({ 3 }, ns(rows_of(again, o1, o2)))
      assert.is_nil(read_file(ckpt .. "/sources/1/log"):find("pa\n", 1, true))
    end)
  end)

  describe("growing files", function()
    it("reads complete lines only, and later lines later", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 2) .. '{"n":3,"s":"ha')
      local src = source(JSON { final_line_wait = "1 hour" })
      local o1 = src:latest_offset()
      assert.same({ 1, 2 }, ns(rows_of(src, nil, o1)))
      assert.same(o1, src:latest_offset())
      append_file(dir .. "/a.jsonl", 'lf"}\n' .. jsonl(4, 4))
      local o2 = src:latest_offset()
      assert.same({ 2, #(jsonl(1, 2) .. '{"n":3,"s":"half"}\n' .. jsonl(4, 4)) }, { o2.entry, o2.pos })
      local rows = rows_of(src, o1, o2)
      assert.same({ 3, 4 }, ns(rows))
      assert.equal("half", rows[1].s)
    end)

    it("reads a last line without a newline once the file is quiet (at once with final_line_wait = 0)", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 1) .. '{"n":2,"s":"x"}')
      set_mtime(dir .. "/a.jsonl", os.time() - 10)
      local quiet = source(JSON { final_line_wait = "5 s" })
      assert.same({ 1, 2 }, ns(rows_of(quiet, nil, quiet:latest_offset())))
      write_file(dir .. "/b.jsonl", '{"n":3,"s":"y"}')
      local now = source(JSON { final_line_wait = 0 }, 2)
      assert.same({ 1, 2, 3 }, ns(rows_of(now, nil, now:latest_offset())))
    end)

    it("counts lines across the parts of a growing file in its error messages", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 2))
      local src = source(JSON())
      local o1 = src:latest_offset()
      rows_of(src, nil, o1)
      append_file(dir .. "/a.jsonl", jsonl(3, 3) .. "{oops\n")
      local o2 = src:latest_offset()
      local ok, err = pcall(src.get_batch, src, o1, o2, 2)
      assert.is_false(ok)
      assert.matches(dir .. "/a.jsonl:4: invalid JSON", err, 1, true)
      -- and a new source, which counts them from the file
      local again = source(JSON())
      ok, err = pcall(again.get_batch, again, o1, o2, 2)
      assert.is_false(ok)
      assert.matches(dir .. "/a.jsonl:4: invalid JSON", err, 1, true)
    end)
  end)

  describe("limits", function()
    it("max_files_per_trigger bounds the files of a batch", function()
      for i = 1, 5 do
        write_file(dir .. "/f" .. i .. ".jsonl", jsonl(i * 10, i * 10 + 1))
        set_mtime(dir .. "/f" .. i .. ".jsonl", 1000 + i)
      end
      local src = source(JSON { max_files_per_trigger = 2 })
      local got, start, batches = {}, nil, 0
      while true do
        local off = src:latest_offset(start)
        if start and off.entry == start.entry and off.pos == start.pos then break end
        local rows = rows_of(src, start, off)
        assert.is_true(#rows <= 4)
        for _, n in ipairs(ns(rows)) do got[#got + 1] = n end
        src:commit(off)
        start, batches = off, batches + 1
      end
      assert.equal(3, batches)
      assert.same({ 10, 11, 20, 21, 30, 31, 40, 41, 50, 51 }, got)
    end)

    it("max_bytes_per_trigger cuts at line ends, every row once, a long line whole", function()
      local text = jsonl(1, 40) .. '{"n":41,"s":"' .. string.rep("x", 300) .. '"}\n' .. jsonl(42, 50)
      write_file(dir .. "/a.jsonl", text)
      write_file(dir .. "/b.jsonl", jsonl(51, 60))
      set_mtime(dir .. "/a.jsonl", 1000)
      set_mtime(dir .. "/b.jsonl", 2000)
      local src = source(JSON { max_bytes_per_trigger = 100 })
      local got, start = {}, nil
      for _ = 1, 100 do
        local off = src:latest_offset(start)
        if start and off.entry == start.entry and off.pos == start.pos then break end
        -- the same until a batch runs
        assert.same(off, src:latest_offset(start))
        local rows = rows_of(src, start, off)
        assert.is_true(#rows >= 1)
        local bytes = 0
        for _, r in ipairs(rows) do bytes = bytes + #string.format('{"n":%d,"s":"%s"}\n', r.n, r.s) end
        assert.is_true(bytes <= 100 or #rows == 1, "batch of " .. bytes .. " bytes")
        for _, n in ipairs(ns(rows)) do got[#got + 1] = n end
        start = off
      end
      local want = {}
      for i = 1, 60 do want[i] = i end
      assert.same(want, got)
    end)

    it("counts from the start it is given, also in a new source after a restart", function()
      for i = 1, 4 do
        write_file(dir .. "/f" .. i .. ".jsonl", jsonl(i, i))
        set_mtime(dir .. "/f" .. i .. ".jsonl", 1000 + i)
      end
      local src = source(JSON { max_files_per_trigger = 1 })
      local o1 = src:latest_offset(nil)
      assert.same({ 1 }, ns(rows_of(src, nil, o1)))
      local o2 = src:latest_offset(o1)
      assert.same({ 2 }, ns(rows_of(src, o1, o2)))
      src:stop()
      local again = source(JSON { max_files_per_trigger = 1 })
      local o3 = again:latest_offset(o2)
      assert.same({ 3 }, ns(rows_of(again, o2, o3)))
      -- without a start it goes on from the last batch it read or was told of
      again:commit(o3)
      assert.same({ 4 }, ns(rows_of(again, o3, again:latest_offset())))
    end)
  end)

  describe("formats", function()
    it("reads csv with a header and a separator", function()
      write_file(dir .. "/a.csv", 'n;s\n1;"a;b"\n2;\n3;""\n')
      local src = source { path = dir .. "/*.csv", format = "csv", schema = "n int, s string?", header = true,
        sep = ";" }
      local rows = rows_of(src, nil, src:latest_offset())
      assert.same({ { n = 1, s = "a;b" }, { n = 2 }, { n = 3, s = "" } }, rows)
    end)

    -- 1000 lines, line 2 opening a quote that never closes, line 500 holding quotes
    local function stray_quote_csv()
      local t = {}
      for i = 1, 1000 do
        t[i] = i == 2 and '1,"abc,2.0\n' or i == 500 and '500,"q""uote",1.5\n'
          or string.format("%d,s%d,%d.5\n", i, i, i)
      end
      return table.concat(t)
    end

    it("reads csv a line a record: a stray quote on line 2 of 1000 costs that line only", function()
      write_file(dir .. "/a.csv", stray_quote_csv())
      local o = { path = dir .. "/*.csv", format = "csv", schema = "n int, s string, x double", bad_records = "drop" }
      local src = source(o)
      local rows, counts = rows_of(src, nil, src:latest_offset())
      assert.equal(999, #rows)
      assert.same({ dropped = 1 }, counts)
      assert.same({ n = 500, s = 'q"uote', x = 1.5 }, rows[499])
      o.bad_records = nil
      local strict = source(o, 2)
      local ok, err = pcall(strict.get_batch, strict, nil, strict:latest_offset(), 1)
      assert.is_false(ok)
      assert.equal("FileSource[" .. dir .. "/*.csv]: " .. dir .. "/a.csv:2: field 2: unterminated quoted field", err)
    end)

    it("reads quoted fields across lines with multi_line", function()
      write_file(dir .. "/a.csv", '1,"a\nb",1.5\n2,"c",2.5\n')
      local o = { path = dir .. "/*.csv", format = "csv", schema = "n int, s string, x double", multi_line = true }
      local src = source(o)
      assert.same({ { n = 1, s = "a\nb", x = 1.5 }, { n = 2, s = "c", x = 2.5 } },
        rows_of(src, nil, src:latest_offset()))
      -- and without it, the first record is two bad lines
      o.multi_line, o.bad_records = nil, "drop"
      local lines = source(o, 2)
      local rows, counts = rows_of(lines, nil, lines:latest_offset())
      assert.same({ { n = 2, s = "c", x = 2.5 } }, rows)
      assert.same({ dropped = 2 }, counts)
    end)

    it("skips the header only at a file's start, also when the file grows", function()
      write_file(dir .. "/a.csv", "n,s\n1,a\n")
      local src = source { path = dir .. "/*.csv", format = "csv", schema = "n int, s string", header = true }
      local o1 = src:latest_offset()
      assert.same({ { n = 1, s = "a" } }, rows_of(src, nil, o1))
      append_file(dir .. "/a.csv", "2,b\n")
      assert.same({ { n = 2, s = "b" } }, rows_of(src, o1, src:latest_offset()))
    end)

    it("reads text lines as value, CRLF and all", function()
      write_file(dir .. "/a.txt", "one\r\ntwo\n\nthree\n")
      local src = source { path = dir .. "/*.txt", format = "text" }
      assert.same({ { value = "one" }, { value = "two" }, { value = "" }, { value = "three" } },
        rows_of(src, nil, src:latest_offset()))
    end)

    it("ignores unknown json fields when told to", function()
      write_file(dir .. "/a.jsonl", '{"n":1,"s":"a","extra":true}\n')
      local strict = source(JSON())
      local ok, err = pcall(strict.get_batch, strict, nil, strict:latest_offset(), 1)
      assert.is_false(ok)
      assert.matches(dir .. "/a.jsonl:1: ", err, 1, true)
      local loose = source(JSON { unknown_fields = "ignore" }, 2)
      assert.same({ { n = 1, s = "a" } }, rows_of(loose, nil, loose:latest_offset()))
    end)
  end)

  describe("bad records", function()
    local BAD = jsonl(1, 2) .. '{"n":"three","s":"x"}\n' .. jsonl(4, 4) .. "not json\n" .. jsonl(6, 6)

    -- A store in a temporary directory, closed and removed after the test.
    local function temp_store()
      local sdir = tmpname()
      local db = tide.open(sdir)
      finally(function()
        db:close()
        os.execute("rm -rf '" .. sdir .. "'")
      end)
      return db
    end

    local function topic_rows(db, name)
      local out = {}
      for r in db:topic(name):read() do out[#out + 1] = r end
      return out
    end

    it("fail: raises naming the file, the line and the reason", function()
      write_file(dir .. "/a.jsonl", BAD)
      local src = source(JSON())
      local ok, err = pcall(src.get_batch, src, nil, src:latest_offset(), 1)
      assert.is_false(ok)
      assert.matches("^FileSource%[.-%]: " .. (dir .. "/a.jsonl"):gsub("%p", "%%%0") .. ":3: ", err)
      assert.matches("'n'", err, 1, true)
    end)

    it("drop: skips them and counts them", function()
      write_file(dir .. "/a.jsonl", BAD)
      local src = source(JSON { bad_records = "drop" })
      local rows, counts = rows_of(src, nil, src:latest_offset())
      assert.same({ 1, 2, 4, 6 }, ns(rows))
      assert.same({ dropped = 2 }, counts)
    end)

    it("dead_letter: writes reason, file, line and text to the topic, once per batch id", function()
      local db = temp_store()
      write_file(dir .. "/a.jsonl", BAD)
      local src = source(JSON { bad_records = "dead_letter", dead_letter_topic = "bad", store = db })
      local off = src:latest_offset()
      local rows, counts = rows_of(src, nil, off, 7)
      assert.same({ 1, 2, 4, 6 }, ns(rows))
      assert.same({ dead_letter = 2 }, counts)
      local function dead()
        local out = {}
        for r in db:topic("bad"):read() do out[#out + 1] = r end
        return out
      end
      local d = dead()
      assert.equal(2, #d)
      assert.same({ dir .. "/a.jsonl", 3, '{"n":"three","s":"x"}' }, { d[1].file, d[1].line, d[1].text })
      assert.same({ dir .. "/a.jsonl", 5, "not json" }, { d[2].file, d[2].line, d[2].text })
      assert.matches("'n'", d[1].reason, 1, true)
      assert.matches("JSON", d[2].reason, 1, true)
      -- the batch runs again (a restart): the topic does not get them twice
      local again = source(JSON { bad_records = "dead_letter", dead_letter_topic = "bad", store = db })
      rows = rows_of(again, nil, off, 7)
      assert.same({ 1, 2, 4, 6 }, ns(rows))
      assert.equal(2, #dead())
    end)

    it("dead_letter: a topic that refuses them fails the batch with the store's reason and no tide position", function()
      local db = temp_store()
      -- the topic has the columns, but its text is an int: the append is refused
      db:create_topic("bad", { schema = "reason string, file string, line int, text int, raw_base64 string" })
      write_file(dir .. "/a.jsonl", jsonl(1, 1) .. "not json\n")
      local src = source(JSON { bad_records = "dead_letter", dead_letter_topic = "bad", store = db })
      local ok, err = pcall(src.get_batch, src, nil, src:latest_offset(), 1)
      assert.is_false(ok)
      assert.matches("cannot write 1 bad records to dead-letter topic 'bad': append to 'bad': ", err, 1, true)
      assert.matches("'text'", err, 1, true)
      assert.is_nil(err:find("%.lua:%d+:"), err)
    end)

    it("dead_letter: keeps lines that are not UTF-8 byte for byte (raw_base64) and readable (text)", function()
      local db = temp_store()
      local bad1, bad2 = "\xff not json \xc3\x28", '{"n":"\xfe","s":"x"}'
      write_file(dir .. "/a.jsonl", jsonl(1, 1) .. bad1 .. "\n" .. bad2 .. "\r\n" .. jsonl(4, 4))
      local src = source(JSON { bad_records = "dead_letter", dead_letter_topic = "bad", store = db })
      local rows, counts = rows_of(src, nil, src:latest_offset(), 1)
      assert.same({ 1, 4 }, ns(rows))
      assert.same({ dead_letter = 2 }, counts)
      local d = topic_rows(db, "bad")
      assert.equal(2, #d)
      assert.same({ 2, 3 }, { d[1].line, d[2].line })
      assert.equal(bad1, base64_decode(d[1].raw_base64))
      assert.equal(bad2, base64_decode(d[2].raw_base64))
      assert.equal("\u{FFFD} not json \u{FFFD}(", d[1].text)
      assert.equal('{"n":"\u{FFFD}","s":"x"}', d[2].text)
      assert.truthy(utf8.len(d[2].reason), d[2].reason)
    end)

    it("dead_letter: a topic of the four older columns gets raw_base64 as its next schema version", function()
      local db = temp_store()
      db:create_topic("bad", { schema = "reason string, file string, line int, text string" })
      write_file(dir .. "/a.jsonl", "\xff\n")
      local src = source(JSON { bad_records = "dead_letter", dead_letter_topic = "bad", store = db })
      assert.same({ dead_letter = 1 }, select(2, rows_of(src, nil, src:latest_offset(), 1)))
      assert.equal(2, db:topic("bad"):info().schema_version)
      assert.equal("\xff", base64_decode(topic_rows(db, "bad")[1].raw_base64))
    end)

    it("dead_letter: a query with lines that are not UTF-8 runs on, and again after a restart", function()
      local db, out = temp_store(), {}
      local function run()
        local q = tide.read_stream("file", JSON { bad_records = "dead_letter", dead_letter_topic = "bad", store = db })
          :write_stream(tide.sink { add_batch = function(_, _, rows)
            for _, r in ipairs(rows) do out[#out + 1] = r.n end
          end }, { checkpoint = ckpt .. "/q", trigger = "available_now" })
        q:await()
        assert.is_nil(q:exception())
      end
      write_file(dir .. "/a.jsonl", jsonl(1, 1) .. "\x80\x81\n" .. jsonl(3, 3))
      run()
      write_file(dir .. "/b.jsonl", "\xc0\xaf\n" .. jsonl(5, 5))
      run()
      assert.same({ 1, 3, 5 }, out)
      local raw = {}
      for i, r in ipairs(topic_rows(db, "bad")) do raw[i] = base64_decode(r.raw_base64) end
      assert.same({ "\x80\x81", "\xc0\xaf" }, raw)
    end)
  end)

  describe("vanished files", function()
    it("raises naming a file removed before it was read", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 1))
      local src = source(JSON())
      local off = src:latest_offset()
      os.remove(dir .. "/a.jsonl")
      local ok, err = pcall(src.get_batch, src, nil, off, 1)
      assert.is_false(ok)
      assert.matches("FileSource[" .. dir .. "/*.jsonl]: file '" .. dir .. "/a.jsonl' vanished before it was read " ..
        "(bytes 0.." .. #jsonl(1, 1) .. " of it are in the file log): ", err, 1, true)
    end)

    it("ignores a file removed after it was read", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 1))
      local src = source(JSON())
      local o1 = src:latest_offset()
      rows_of(src, nil, o1)
      os.remove(dir .. "/a.jsonl")
      write_file(dir .. "/b.jsonl", jsonl(2, 2))
      local o2 = src:latest_offset()
      assert.same({ 2 }, ns(rows_of(src, o1, o2)))
    end)

    it("raises naming a file truncated below what was logged", function()
      write_file(dir .. "/a.jsonl", jsonl(1, 3))
      local src = source(JSON())
      local off = src:latest_offset()
      write_file(dir .. "/a.jsonl", jsonl(1, 1))
      local ok, err = pcall(src.get_batch, src, nil, off, 1)
      assert.is_false(ok)
      assert.matches("file '" .. dir .. "/a.jsonl' is shorter than the " .. #jsonl(1, 3) .. " bytes logged for it",
        err, 1, true)
    end)
  end)

  describe("watch", function()
    it("calls back when a file appears in the watched directory", function()
      local src = source(JSON())
      local loop = require("tide.runtime").loop()
      local called = 0
      src:watch(function()
        called = called + 1
        loop:stop()
      end)
      local guard = loop:timer(0, 0, function() write_file(dir .. "/a.jsonl", jsonl(1, 1)) end)
      local limit = loop:timer(10000, 0, function() loop:stop() end)
      loop:run("default")
      guard:close()
      limit:close()
      src:stop()
      assert.is_true(called >= 1)
      assert.same({ 1 }, ns(rows_of(src, nil, src:latest_offset())))
    end)
  end)
end)

describe("the file sink", function()
  local out, schema

  local D = file.sinks.file

  local function sink(opts)
    local o = util.check_options(opts, D.options, "write_stream(file)")
    return D.new(o, { loop = require("tide.runtime").loop(), query_id = "test", query_name = "t" })
  end

  local function batch(rows) return assert(core.rows_batch(schema, rows)) end

  local parts = listdir

  before_each(function()
    out = tmpname()
    schema = core.schema("ts timestamp, name string?, x double?, ok bool?, j json?")
  end)

  after_each(function() os.execute("rm -rf '" .. out .. "'") end)

  local ROWS = {
    { ts = 1795262405250, name = "a,\"b\"\nc", x = 1.5, ok = true, j = { k = { 1, 2 } } },
    { ts = 0, name = "", x = 1e300, ok = false },
    { ts = -5 },
  }

  it("refuses unknown options and needs a path", function()
    assert.has_error(function() sink { path = out, compress = true } end,
      "write_stream(file): unknown option 'compress' (allowed: format, path)")
    assert.has_error(function() sink { path = out, format = "text" } end,
      "write_stream(file): option 'format' must be one of json, csv, got 'text'")
    assert.has_error(function() sink {} end, "write_stream(file): option 'path' is required (the output directory)")
  end)

  it("creates its directory, needs a checkpoint and says what it is", function()
    local s = sink { path = out .. "/deep/er" }
    assert.equal("FileSink[" .. out .. "/deep/er]", s.description)
    assert.is_true(s.needs_checkpoint)
    assert.same({ "_tide" }, parts(out .. "/deep/er"))
  end)

  it("writes a batch by rename and records it in the manifest", function()
    local s = sink { path = out }
    s:add_batch(3, { batch(ROWS) }, "append", schema)
    assert.same({ "_tide", "part-00000003-0000.json" }, parts(out))
    assert.same({ "00000003.json" }, parts(out .. "/_tide"))
    assert.same({ [3] = { files = { "part-00000003-0000.json" }, rows = 3,
      bytes = #read_file(out .. "/part-00000003-0000.json") } }, s:manifest())
  end)

  for _, fmt in ipairs { "json", "csv" } do
    it("writes " .. fmt .. " that tide.read reads back exactly", function()
      local s = sink { path = out, format = fmt }
      s:add_batch(0, { batch(ROWS), batch { { ts = 7, name = "z" } } }, "append", schema)
      s:add_batch(1, { batch { { ts = 8, name = "y" } } }, "append", schema)
      local opts = { path = out, format = fmt, schema = schema:ddl() }
      -- a value holds an LF, quoted: CSV reads it back as Spark does, with multi_line
      if fmt == "csv" then opts.header, opts.multi_line = true, true end
      local rows = tide.read("file", opts):collect()
      assert.same({ ROWS[1], ROWS[2], ROWS[3], { ts = 7, name = "z" }, { ts = 8, name = "y" } }, rows)
    end)
  end

  it("writes csv with a header, quoting only what it must, NaN and NULL as empty fields", function()
    local s = sink { path = out, format = "csv" }
    s:add_batch(4, { batch(ROWS), batch { { ts = 9, name = " x", x = 0 / 0, j = "s" } } }, "append", schema)
    assert.equal('ts,name,x,ok,j\n' ..
      '1795262405250,"a,""b""\nc",1.5,true,"{""k"":[1,2]}"\n' ..
      '0,"",1e+300,false,\n' ..
      '-5,,,,\n' ..
      '9," x",,,"""s"""\n', read_file(out .. "/part-00000004-0000.csv"))
  end)

  it("replaces the files of a batch that runs again, never duplicates", function()
    local s = sink { path = out }
    s:add_batch(1, { batch(ROWS) }, "append", schema)
    s:add_batch(2, { batch { { ts = 1 } } }, "append", schema)
    -- the query restarts and runs batch 2 again
    local again = sink { path = out }
    again:add_batch(2, { batch { { ts = 1 } } }, "append", schema)
    assert.same({ "_tide", "part-00000001-0000.json", "part-00000002-0000.json" }, parts(out))
    assert.equal(4, #tide.read("file", { path = out, schema = schema:ddl() }):collect())
  end)

  it("replaces a file a crash left between the rename and the manifest, and clears temporaries", function()
    sh(string.format("mkdir -p '%s'", out))
    write_file(out .. "/part-00000005-0000.json", '{"ts":99}\n{"ts":98}\n')
    write_file(out .. "/.part-00000006-0000.json.tmp", '{"ts":1')
    local s = sink { path = out }
    assert.same({ "_tide", "part-00000005-0000.json" }, parts(out))
    s:add_batch(5, { batch { { ts = 1 } } }, "append", schema)
    assert.same({ { ts = 1 } }, tide.read("file", { path = out, schema = schema:ddl() }):collect())
  end)

  it("writes no file for an empty batch", function()
    local s = sink { path = out }
    s:add_batch(0, {}, "append", schema)
    s:add_batch(1, { batch {} }, "append", schema)
    assert.same({ "_tide" }, parts(out))
    assert.same({}, parts(out .. "/_tide"))
  end)

  it("takes append mode only", function()
    local s = sink { path = out }
    assert.has_error(function() s:add_batch(0, { batch(ROWS) }, "complete", schema) end,
      "FileSink[" .. out .. "]: output mode 'complete' is not supported (file sinks take append only, as Spark's)")
  end)

  it("says why it cannot create its directory", function()
    sh("mkdir -p '" .. out .. "'")
    write_file(out .. "/file", "x")
    assert.has_error(function() sink { path = out .. "/file/sub" } end,
      "FileSink[" .. out .. "/file/sub]: cannot create directory '" .. out .. "/file': a file is in the way")
    -- the system's reason once, without the path it names again
    assert.has_error(function() sink { path = "/proc/tide-nonexistent/sub" } end,
      "FileSink[/proc/tide-nonexistent/sub]: cannot create directory '/proc/tide-nonexistent': " ..
      "No such file or directory")
  end)

  describe("one query's directory", function()
    local function sink_of(qid)
      return D.new(util.check_options({ path = out }, D.options, "write_stream(file)"),
        { loop = require("tide.runtime").loop(), query_id = qid, query_name = "t" })
    end

    it("refuses a second query, naming the first, and lets the first go on", function()
      local s = sink_of("q-1")
      s:add_batch(0, { batch(ROWS) }, "append", schema)
      local ok, err = pcall(sink_of, "q-2")
      assert.is_false(ok)
      assert.equal("FileSink[" .. out .. "]: '" .. out .. "' holds the output of another query (id q-1, in its " ..
        "manifest " .. out .. "/_tide): a second query, or this one on a new checkpoint, would overwrite its files; " ..
        "write to another directory", err)
      local again = sink_of("q-1")
      again:add_batch(1, { batch(ROWS) }, "append", schema)
      assert.same({ 0, 1 }, (function()
        local ids = {}
        for id in pairs(again:manifest()) do ids[#ids + 1] = id end
        table.sort(ids)
        return ids
      end)())
    end)

    it("never overwrites a batch of another query that opened the directory at the same time", function()
      local a, b = sink_of("q-1"), sink_of("q-2")
      a:add_batch(0, { batch(ROWS) }, "append", schema)
      local before = read_file(out .. "/part-00000000-0000.json")
      local ok, err = pcall(b.add_batch, b, 0, { batch { { ts = 1 } } }, "append", schema)
      assert.is_false(ok)
      assert.matches("holds the output of another query (id q-1,", err, 1, true)
      assert.equal(before, read_file(out .. "/part-00000000-0000.json"))
    end)

    it("takes over a directory whose manifest holds no query id (written before they were recorded)", function()
      sh("mkdir -p '" .. out .. "/_tide'")
      write_file(out .. "/_tide/00000000.json",
        '{"batch_id":0,"bytes":1,"files":["part-00000000-0000.json"],"rows":1}\n')
      local s = sink_of("q-1")
      s:add_batch(1, { batch(ROWS) }, "append", schema)
      assert.has_error(function() sink_of("q-2") end)
    end)

    it("refuses a query on a fresh checkpoint writing into the same path", function()
      local src, ck1, ck2 = tmpname(), tmpname(), tmpname()
      finally(function() os.execute(string.format("rm -rf '%s' '%s' '%s'", src, ck1, ck2)) end)
      sh("mkdir -p '" .. src .. "'")
      write_file(src .. "/a.jsonl", '{"n":1}\n')
      local function run(ck)
        local q = tide.read_stream("file", { path = src .. "/*.jsonl", schema = "n int" })
          :write_stream("file", { path = out, checkpoint = ck, trigger = "available_now" })
        q:await()
        return q:exception()
      end
      assert.is_nil(run(ck1))
      local ok, err = pcall(run, ck2)
      assert.is_false(ok)
      assert.matches("^write_stream%(file%): FileSink%[.-%]: '.-' holds the output of another query %(id ", err)
      assert.equal('{"n":1}\n', read_file(out .. "/part-00000000-0000.json"))
    end)
  end)

  describe("manifest compaction", function()
    local function ids_of(m)
      local ids = {}
      for id in pairs(m) do ids[#ids + 1] = id end
      table.sort(ids)
      return ids
    end

    it("keeps the manifest of many batches in a bounded number of files", function()
      -- 1000 batches: without compaction, 1000 manifest files
      local s = sink { path = out }
      local one = batch { { ts = 1 } }
      for id = 0, 999 do s:add_batch(id, { one }, "append", schema) end
      one:close()
      local meta = parts(out .. "/_tide")
      assert.is_true(#meta <= file.COMPACT_INTERVAL + 2, #meta .. " manifest files")
      assert.equal(1, #(function()
        local c = {}
        for _, n in ipairs(meta) do if n:match("%.compact$") then c[#c + 1] = n end end
        return c
      end)())
      local m = s:manifest()
      local ids = ids_of(m)
      assert.equal(1000, #ids)
      assert.same({ 0, 999 }, { ids[1], ids[1000] })
      assert.same({ files = { "part-00000123-0000.json" }, rows = 1, bytes = #read_file(out ..
        "/part-00000123-0000.json") }, m[123])
      -- a new sink (a restart) reads it and goes on
      local again = sink { path = out }
      again:add_batch(1000, { batch { { ts = 2 } } }, "append", schema)
      assert.equal(1001, #ids_of(again:manifest()))
    end)

    it("reads the same manifest at every point a crash can leave compaction in", function()
      local saved = file.COMPACT_INTERVAL
      file.COMPACT_INTERVAL = 3
      finally(function() file.COMPACT_INTERVAL = saved end)
      local s = sink { path = out }
      for id = 0, 9 do s:add_batch(id, { batch { { ts = id } } }, "append", schema) end
      local want = s:manifest()
      assert.equal(10, #ids_of(want))
      local meta = out .. "/_tide"
      local names = parts(meta)
      local compact
      for _, n in ipairs(names) do compact = n:match("%.compact$") and n or compact end
      assert.truthy(compact)
      local top = tonumber(compact:match("^(%d+)"))
      -- killed before the temporary was renamed: a new sink removes it
      write_file(meta .. "/.00000099.compact.tmp", "half")
      -- killed after the rename, before the per-batch files it covers went
      write_file(meta .. string.format("/%08d.json", top),
        string.format('{"batch_id":%d,"bytes":%d,"files":["part-%08d-0000.json"],"query_id":"test","rows":1}\n',
          top, want[top].bytes, top))
      -- and before the compact file it replaces went
      write_file(meta .. "/00000000.compact", '{"compact":0,"query_id":"test","version":1}\n' ..
        '{"batch_id":0,"bytes":1,"files":["stale"],"query_id":"test","rows":1}\n')
      local again = sink { path = out }
      assert.is_false(exists(meta .. "/.00000099.compact.tmp"))
      -- the older compact file goes when a sink opens the directory
      assert.is_false(exists(meta .. "/00000000.compact"))
      assert.is_true(exists(meta .. "/" .. compact))
      assert.same(want, again:manifest())
      -- the next compaction clears what the crash left
      for id = 10, 14 do again:add_batch(id, { batch { { ts = id } } }, "append", schema) end
      local left = parts(meta)
      local compacts = 0
      for _, n in ipairs(left) do if n:match("%.compact$") then compacts = compacts + 1 end end
      assert.equal(1, compacts)
      assert.is_true(#left <= 5, table.concat(left, " "))
      assert.equal(15, #ids_of(again:manifest()))
    end)
  end)

  describe("killed while writing", function()
    -- Run `lua5.4 script args...` and SIGKILL it after lo..hi ms; it must not
    -- have failed on its own.
    local function run_killed(script, args, errf, lo, hi)
      local p, pid = support.spawn_lua(script, args, errf)
      support.sleep_ms(math.random(lo, hi))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      p:read("a")
      p:close()
      assert.equal("", read_file(errf), "the child failed on its own")
    end

    local CHILD = support.CHILD_PRELUDE .. [[
local core = require "tide.core"
local file = require "tide.connectors.file"
local out, nbatch = arg[1], tonumber(arg[2])
local schema = core.schema("batch int, i int, pad string")
local s = file.sinks.file.new({ path = out }, { query_id = "test" })
local pad = string.rep("p", 40)
while true do
  for id = 1, nbatch do
    local rows = {}
    for i = 1, 20000 do rows[i] = { batch = id, i = i, pad = pad } end
    s:add_batch(id, { core.rows_batch(schema, rows) }, "append", schema)
  end
end
]]

    it("never shows a batch twice or half, and a re-run completes it (25 kills)", function()
      local script, errf = tmpname() .. ".lua", tmpname()
      write_file(script, CHILD)
      finally(function() os.execute(string.format("rm -f '%s' '%s'", script, errf)) end)
      local seed = tonumber(os.getenv("TIDE_CRASH_SEED")) or os.time()
      math.randomseed(seed)
      local NB = 4
      local ddl = "batch int, i int, pad string"
      local function check(complete)
        local count, found = {}, false
        for _, name in ipairs(parts(out)) do
          if name:sub(1, 1) ~= "." and name ~= "_tide" then
            local id = tonumber(name:match("^part%-(%d+)%-0000%.json$"))
            assert.is_truthy(id, "unexpected file " .. name)
            found = true
          end
        end
        -- killed before its first batch (a slow start, as under ASan): nothing to read yet
        if not found and not complete then return end
        for _, r in ipairs(tide.read("file", { path = out, schema = ddl }):collect()) do
          count[r.batch] = (count[r.batch] or 0) + 1
        end
        for id = 1, NB do
          local c = count[id] or 0
          assert.is_true(c == 0 or c == 20000, string.format("batch %d has %d rows (seed %d)", id, c, seed))
          if complete then assert.equal(20000, c, "batch " .. id .. " after the re-run") end
        end
      end
      local mid = 0
      for _ = 1, 25 do
        run_killed(script, { out, NB }, errf, 50, 400)
        for _, name in ipairs(parts(out)) do
          if name:match("^%.part%-.*%.tmp$") then mid = mid + 1 end
        end
        check(false)
        -- the restarted query runs every batch again
        local s = sink { path = out }
        schema = core.schema(ddl)
        local pad = string.rep("p", 40)
        for id = 1, NB do
          local rows = {}
          for i = 1, 20000 do rows[i] = { batch = id, i = i, pad = pad } end
          s:add_batch(id, { batch(rows) }, "append", schema)
        end
        check(true)
        for _, name in ipairs(parts(out)) do assert.is_nil(name:match("%.tmp$"), "a temporary is left: " .. name) end
      end
      io.stderr:write(string.format("\n[connectors_file_spec] seed %d: 25 kills, %d left a temporary file behind\n",
        seed, mid))
    end)

    -- batches one after the other from where the manifest ends (the last
    -- one again, as a restarted query re-runs its uncommitted batch),
    -- compacting every 3
    local COMPACTING = support.CHILD_PRELUDE .. [[
local core = require "tide.core"
local file = require "tide.connectors.file"
file.COMPACT_INTERVAL = 3
local out = arg[1]
local schema = core.schema("batch int, i int")
local s = file.sinks.file.new({ path = out }, { query_id = "test" })
local id = -1
for k in pairs(s:manifest()) do id = math.max(id, k) end
id = math.max(id, 0)
while true do
  local rows = {}
  for i = 1, 50 do rows[i] = { batch = id, i = i } end
  s:add_batch(id, { core.rows_batch(schema, rows) }, "append", schema)
  id = id + 1
end
]]

    it("keeps every batch in the manifest once when killed while compacting (20 kills)", function()
      local script, errf = tmpname() .. ".lua", tmpname()
      write_file(script, COMPACTING)
      finally(function() os.execute(string.format("rm -f '%s' '%s'", script, errf)) end)
      local seed = tonumber(os.getenv("TIDE_CRASH_SEED")) or os.time()
      math.randomseed(seed)
      local last, stale = -1, 0
      local function compact_files()
        local n = 0
        for _, name in ipairs(parts(out .. "/_tide")) do if name:match("%.compact$") then n = n + 1 end end
        return n
      end
      for _ = 1, 20 do
        run_killed(script, { out }, errf, 30, 300)
        if compact_files() > 1 then stale = stale + 1 end
        -- every batch from 0 to the highest is listed once, with its file whole
        local s = sink { path = out }
        -- opening removed the older compact files a kill left
        local compacts = compact_files()
        assert.is_true(compacts <= 1, string.format("%d compact files after opening (seed %d)", compacts, seed))
        local m, top = s:manifest(), -1
        for id in pairs(m) do top = math.max(top, id) end
        assert.is_true(top >= last, string.format("batch %d went missing (seed %d)", last, seed))
        for id = 0, top do
          local e = m[id]
          assert.truthy(e, string.format("batch %d is not in the manifest (seed %d)", id, seed))
          assert.equal(50, e.rows)
          assert.equal(e.bytes, #read_file(out .. "/" .. e.files[1]))
        end
        last = top
      end
      io.stderr:write(string.format("\n[connectors_file_spec] seed %d: 20 kills while compacting, %d batches, " ..
        "%d left an older compact file\n", seed, last + 1, stale))
    end)
  end)
end)
