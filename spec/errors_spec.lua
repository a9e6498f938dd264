-- Specs for tide.errors (lua/tide/errors.lua): messages and tracebacks for
-- people, with the user's positions and frames instead of tide's, and the
-- message of a failed streaming query.

local errors = require "tide.errors"
local support = require "support"

-- A tide module's chunk name, as Lua prints it, and a user's.
local TIDE_SRC = support.ROOT .. "/lua/tide/query.lua"
local CONNECTOR_SRC = support.ROOT .. "/lua/tide/connectors/file.lua"

describe("tide.errors", function()
  -- (the suite runs without TIDE_DEBUG: with it, messages stay whole)
  it("tells tide's own chunks from the user's", function()
    assert.is_true(errors.is_tide_source("@" .. TIDE_SRC))
    assert.is_true(errors.is_tide_source(CONNECTOR_SRC))
    assert.is_true(errors.is_tide_source("...k/wt/lua/tide/store.lua")) -- cut by Lua's LUA_IDSIZE
    assert.is_true(errors.is_tide_source(support.ROOT .. "/bin/tide"))
    assert.is_false(errors.is_tide_source("pipeline.lua"))
    assert.is_false(errors.is_tide_source("stdin"))
    assert.is_false(errors.is_tide_source("/home/me/tide/pipeline.lua")) -- not a module of tide's
  end)

  describe("message", function()
    -- user code calling a "tide" function that raises with `raise`
    local function call_from_user(raise)
      local chunk = assert(load("local f = ... f()", "=pipeline.lua"))
      local msg
      xpcall(chunk, function(m) msg = errors.message(m, 2) end, raise)
      return msg
    end

    it("puts the user's position in place of tide's", function()
      local tide_fn = assert(load("error('" .. TIDE_SRC .. ":406: write_stream(memory): bad', 0)",
        "@" .. TIDE_SRC))
      assert.equal("pipeline.lua:1: write_stream(memory): bad", call_from_user(tide_fn))
    end)

    it("gives a message that tide raised without a position the user's", function()
      local tide_fn = assert(load("error('read: no topic', 0)", "@" .. TIDE_SRC))
      assert.equal("pipeline.lua:1: read: no topic", call_from_user(tide_fn))
    end)

    it("leaves the user's own messages alone", function()
      local user_fn = assert(load("error('boom')", "=mine.lua"))
      assert.equal("mine.lua:1: boom", call_from_user(user_fn))
      user_fn = assert(load("error('no position', 0)", "=mine.lua"))
      assert.equal("no position", call_from_user(user_fn))
    end)
  end)

  describe("user_frames", function()
    local TB = table.concat({
      "filter: row 1 {}: pipeline.lua:2: bad value",
      "stack traceback:",
      "\t[C]: in function 'error'",
      "\tpipeline.lua:2: in function <pipeline.lua:2>",
      "\t[C]: in ?",
      "\t[C]: in function 'tide.core.udf_filter'",
      "\t" .. TIDE_SRC .. ":556: in upvalue 'fn'",
      "\t(...tail calls...)",
      "\tpipeline.lua:5: in main chunk",
      "\tpipeline.lua:5: in main chunk",
    }, "\n")

    it("keeps the user's frames and the C functions they called, once each", function()
      assert.equal(table.concat({
        "filter: row 1 {}: pipeline.lua:2: bad value",
        "stack traceback:",
        "\t[C]: in function 'error'",
        "\tpipeline.lua:2: in function <pipeline.lua:2>",
        "\tpipeline.lua:5: in main chunk",
      }, "\n"), errors.user_frames(TB))
    end)

    it("gives the message alone when no frame is the user's, and a text without a traceback as it is", function()
      assert.equal("oops", errors.user_frames("oops\nstack traceback:\n\t" .. TIDE_SRC .. ":1: in main chunk"))
      assert.equal("just a message", errors.user_frames("just a message"))
    end)

    it("keeps everything with TIDE_DEBUG=1", function()
      local script = support.tmpname() .. ".lua"
      support.write_file(script, support.CHILD_PRELUDE ..
        string.format("io.write(require('tide.errors').user_frames(%q))", TB))
      local code, out, err = support.run_cmd("TIDE_DEBUG=1 lua5.4 " .. script)
      os.remove(script)
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal(TB, out)
    end)
  end)

  describe("query_failed", function()
    it("names the query by its name, or a short id, with its sources and sink", function()
      assert.equal("query counts (MemoryStream[1] -> MemorySink) failed: batch 3: sink MemorySink: full",
        errors.query_failed("counts", "6f1c0d9a-1234-5678", { "MemoryStream[1]" }, "MemorySink",
          "batch 3: sink MemorySink: full"))
      assert.equal("query 6f1c0d9a (A, B -> ConsoleSink) failed: batch 0: x",
        errors.query_failed(nil, "6f1c0d9a-1234-5678", { "A", "B" }, "ConsoleSink", "batch 0: x"))
    end)

    it("says each prefix once and hints at bad_records for a file source's bad record", function()
      assert.equal("query q (FileSource[in/*.jsonl] -> ConsoleSink) failed: batch 0: source " ..
        "FileSource[in/*.jsonl]: in/a.jsonl:2: field 'v': expected int, got \"x\" " ..
        "(bad_records = \"drop\" skips bad records)",
        errors.query_failed("q", "id", { "FileSource[in/*.jsonl]" }, "ConsoleSink",
          "batch 0: source FileSource[in/*.jsonl]: FileSource[in/*.jsonl]: in/a.jsonl:2: field 'v': " ..
          "expected int, got \"x\""))
      -- a Lua source's error is no bad record
      assert.equal("query q (LuaSource -> ConsoleSink) failed: batch 0: source LuaSource: s.lua:4: down",
        errors.query_failed("q", "id", { "LuaSource" }, "ConsoleSink", "batch 0: source LuaSource: s.lua:4: down"))
    end)

    it("keeps the user's frames of the failure, above the batch's xpcall", function()
      local failure = table.concat({
        "batch 0: filter: row 1 {}: p.lua:2: bad",
        "stack traceback:",
        "\t[C]: in function 'error'",
        "\tp.lua:2: in function <p.lua:2>",
        "\t" .. TIDE_SRC .. ":784: in function <" .. TIDE_SRC .. ":783>",
        "\t[C]: in function 'xpcall'",
        "\tp.lua:9: in main chunk",
      }, "\n")
      assert.equal("query q (S -> K) failed: batch 0: filter: row 1 {}: p.lua:2: bad\nstack traceback:\n" ..
        "\t[C]: in function 'error'\n\tp.lua:2: in function <p.lua:2>",
        errors.query_failed("q", "id", { "S" }, "K", failure))
    end)
  end)
  describe("raised by the analysis of a streaming plan", function()
    it("carry the position of the user's write_stream call, not tide's", function()
      local tide = require "tide"
      local f = tide.memory_stream("k string, v int"):frame()
        :group_by("k"):agg { "count(*) AS n" }:group_by("n"):agg { "count(*) AS m" }
      local ok, err = pcall(function()
        return f:write_stream("memory", { name = "errors_spec_twice", mode = "complete" })
      end)
      assert.is_false(ok)
      assert.matches("^spec/errors_spec%.lua:%d+: write_stream%(memory%): multiple streaming aggregations", err)
    end)
  end)
end)
