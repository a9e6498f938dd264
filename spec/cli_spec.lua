-- Specs for the `tide` command line (bin/tide, lua/tide/cli.lua), run as a
-- subprocess the way users run it: exit status, stdout, stderr.

local cli = require "tide.cli"

local ROOT = os.getenv("PWD") or "."
local TIDE = ROOT .. "/bin/tide"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function sleep(s) os.execute("sleep " .. s) end

describe("tide (the command line)", function()
  local tmp, data

  -- bin/tide runs in tmp: a relative TIDE_CPATH (make asan) is made absolute.
  local cpath = os.getenv("TIDE_CPATH")
  local cpath_env = ""
  if cpath then
    cpath = cpath:gsub("[^;]+", function(p) return p:sub(1, 1) == "/" and p or ROOT .. "/" .. p end)
    cpath_env = "TIDE_CPATH=" .. q(cpath)
  end

  local function format_cmd(parts, input)
    return string.format("cd %s && env -u TIDE_DATA %s %s %s < %s > %s 2> %s", q(tmp), cpath_env, q(TIDE),
      table.concat(parts, " "), q(input), q(tmp .. "/stdout"), q(tmp .. "/stderr"))
  end

  -- Run bin/tide with args (an array) and optional stdin text; returns
  -- the exit status, stdout and stderr. TIDE_DATA is unset so that only
  -- --data picks the store.
  local function tide(args, stdin)
    local parts = {}
    for i, a in ipairs(args) do parts[i] = q(a) end
    local input = "/dev/null"
    if stdin then
      input = tmp .. "/stdin"
      spit(input, stdin)
    end
    local cmd = format_cmd(parts, input)
    local _, _, code = os.execute(cmd)
    return code, slurp(tmp .. "/stdout"), slurp(tmp .. "/stderr")
  end

  -- An expected error: exactly one line on stderr, nothing on stdout.
  local function assert_error(code, out, err, want_code, want_err)
    assert.equal(want_err, err)
    assert.equal(want_code, code)
    assert.equal("", out)
  end

  local EVENTS = table.concat({
    '{"ts": 1795262405000, "device": "a", "signal": 1}',
    '{"ts": 1795262406000, "device": "b", "signal": 2}',
    '{"ts": 1795262407250, "device": "c"}',
  }, "\n") .. "\n"

  local function create_events(extra)
    local args = { "--data", data, "topic", "create", "events", "--schema", "ts timestamp, device string, signal int?" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local code, _, err = tide(args)
    assert.equal("", err:gsub("^tide: created topic [^\n]*\n", ""))
    assert.equal(0, code)
  end

  before_each(function()
    local p = io.popen("mktemp -d /tmp/tide-cli-spec-XXXXXX")
    tmp = p:read("l")
    p:close()
    data = tmp .. "/data"
  end)

  after_each(function()
    os.execute("rm -rf " .. q(tmp))
  end)

  describe("--version and --help", function()
    it("prints the version", function()
      local code, out, err = tide { "--version" }
      assert.equal(0, code)
      assert.matches("^tide %d+%.%d+%.%d+", out)
      assert.equal("", err)
    end)

    it("prints the help with --help", function()
      local code, out, err = tide { "--help" }
      assert.equal(0, code)
      assert.matches("^usage: tide %[%-%-data DIR%] <command>", out)
      assert.matches("tide topic create NAME", out, 1, true)
      assert.matches("tide schema put TOPIC FILE|DDL", out, 1, true)
      assert.equal("", err)
    end)

    it("runs the REPL with no command, on the store of --data", function()
      -- stdin is not a terminal here: the REPL reads its lines, prints the
      -- values of expressions, and exits 1 when a line failed
      local code, out, err = tide({ "--data", data }, "print(1 + 1)\n40 + 2\nprint(db:path())\n")
      assert.equal("", err)
      assert.equal(0, code)
      local path = (function()
        local store = require("tide").open(data)
        local p = store:path()
        store:close()
        return p
      end)()
      assert.equal("2\n42\n" .. path .. "\n", out)
      code, out, err = tide({ "--data", data }, "error('no such thing')\n")
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^stdin:1: no such thing\n", err) -- a script's errors go to stderr
    end)

    it("prints the usage of every command and subcommand with --help", function()
      local cases = {
        { { "topic", "--help" }, "usage: tide topic <create|list|describe|segments|delete>" },
        { { "topic", "create", "--help" }, "usage: tide topic create NAME" },
        { { "topic", "list", "--help" }, "usage: tide topic list" },
        { { "topic", "describe", "--help" }, "usage: tide topic describe NAME" },
        { { "topic", "segments", "--help" }, "usage: tide topic segments NAME" },
        { { "topic", "delete", "--help" }, "usage: tide topic delete NAME" },
        { { "produce", "--help" }, "usage: tide produce TOPIC [FILE]" },
        { { "consume", "--help" }, "usage: tide consume TOPIC" },
        { { "run", "--help" }, "usage: tide run [--quiet] [--log-progress FILE] [--ui [HOST:]PORT] SCRIPT [ARGS...]" },
        { { "schema", "--help" }, "usage: tide schema <put|get|versions|check>" },
        { { "schema", "put", "--help" }, "usage: tide schema put TOPIC FILE|DDL" },
        { { "schema", "get", "--help" }, "usage: tide schema get TOPIC" },
        { { "schema", "versions", "--help" }, "usage: tide schema versions TOPIC" },
        { { "schema", "check", "--help" }, "usage: tide schema check TOPIC FILE|DDL" },
      }
      for _, c in ipairs(cases) do
        local code, out, err = tide(c[1])
        assert.equal(0, code)
        assert.equal(c[2], out:sub(1, #c[2]))
        assert.matches("--data DIR", out, 1, true)
        assert.equal("", err)
      end
    end)

    it("lists each subcommand's options in the help of topic and schema", function()
      local _, out = tide { "topic", "--help" }
      for _, o in ipairs { "--partitions N", "--schema FILE|DDL", "--retention DUR", "--retention-bytes SIZE",
        "--segment-bytes SIZE", "--segment-ms DUR", "--time-column COL", "--unknown-fields MODE",
        "--compatibility MODE", "--json" } do
        assert.matches("\n  " .. o, out, 1, true)
      end
      assert.matches("\noptions of 'topic create':\n", out, 1, true)
      assert.matches("\noptions of 'topic describe':\n", out, 1, true)
      _, out = tide { "schema", "--help" }
      assert.matches("\noptions of 'schema put':\n  --compatibility MODE", out, 1, true)
      assert.matches("\noptions of 'schema get':\n  --version N", out, 1, true)
    end)

    it("prints the usage of checkpoint and checkpoint show with --help", function()
      for _, args in ipairs { { "checkpoint", "--help" }, { "checkpoint", "show", "--help" } } do
        local code, out, err = tide(args)
        assert.equal(0, code)
        assert.equal("usage: tide checkpoint show DIR\n", out:match("^[^\n]*\n"))
        assert.equal("", err)
      end
    end)
  end)

  describe("bad usage", function()
    it("exits 2 on an unknown command", function()
      local code, out, err = tide { "frobnicate" }
      assert_error(code, out, err, 2, "tide: unknown command 'frobnicate' (see 'tide --help')\n")
    end)

    it("exits 2 on an unknown option, naming the command", function()
      local code, out, err = tide { "topic", "create", "x", "--colour", "red" }
      assert_error(code, out, err, 2,
        "tide: topic create: unknown option '--colour' (see 'tide topic create --help')\n")
      code, out, err = tide { "--colour" }
      assert_error(code, out, err, 2, "tide: unknown option '--colour' (see 'tide --help')\n")
    end)

    it("exits 2 on a missing argument or option value", function()
      local code, out, err = tide { "produce" }
      assert_error(code, out, err, 2, "tide: produce: missing TOPIC (see 'tide produce --help')\n")
      code, out, err = tide { "topic", "describe" }
      assert_error(code, out, err, 2, "tide: topic describe: missing NAME (see 'tide topic describe --help')\n")
      code, out, err = tide { "consume", "events", "--from" }
      assert_error(code, out, err, 2, "tide: consume: option '--from' needs a value (see 'tide consume --help')\n")
      code, out, err = tide { "topic" }
      assert_error(code, out, err, 2,
        "tide: topic: missing subcommand (create, list, describe, segments, delete) (see 'tide topic --help')\n")
      code, out, err = tide { "run" }
      assert_error(code, out, err, 2, "tide: run: missing SCRIPT (see 'tide run --help')\n")
    end)

    it("exits 2 on a bad option value", function()
      local code, out, err = tide { "--data", data, "topic", "create", "x", "--retention", "7x" }
      assert_error(code, out, err, 2, "tide: topic create: option '--retention': invalid duration '7x' (use " ..
        "milliseconds or '<n> <unit>' with unit ms, s, min, h, d) (see 'tide topic create --help')\n")
      code, out, err = tide { "--data", data, "topic", "create", "x", "--partitions", "two" }
      assert_error(code, out, err, 2,
        "tide: topic create: option '--partitions' must be an integer >= 1, got 'two' " ..
        "(see 'tide topic create --help')\n")
      code, out, err = tide { "consume", "x", "--timestamp-format", "rfc822" }
      assert_error(code, out, err, 2,
        "tide: consume: option '--timestamp-format' must be ms or iso8601, got 'rfc822' (see 'tide consume --help')\n")
    end)
  end)

  describe("topic", function()
    it("creates, lists, describes and deletes topics", function()
      create_events { "--partitions", "2", "--retention", "7d", "--segment-bytes", "1MB" }
      local code, _, err = tide { "--data", data, "topic", "create", "other" }
      assert.equal(0, code)
      local out
      assert.equal("tide: created topic 'other' (1 partition)\n", err)

      code, out, err = tide { "--data", data, "topic", "list" }
      assert.equal(0, code)
      assert.equal("events\nother\n", out)
      assert.equal("", err)

      code, out = tide { "topic", "describe", "events", "--data", data }
      assert.equal(0, code)
      assert.matches("\nschema +ts timestamp, device string, signal int%?\n", out)
      assert.matches("\npartitions +2\n", out)
      assert.matches("\nretention +1w\n", out)
      assert.matches("\nsegment bytes +1 MiB\n", out)
      assert.matches("\npartition +earliest +latest +records +bytes +segments\n", out)

      code, _, err = tide { "--data", data, "topic", "delete", "other" }
      assert.equal(0, code)
      assert.equal("tide: deleted topic 'other'\n", err)
      _, out = tide { "--data", data, "topic", "list" }
      assert.equal("events\n", out)
    end)

    it("says a schema file was not found when the argument looks like a path", function()
      for _, arg in ipairs { "schema.ddl", "conf/schema", "events_schema" } do
        local code, out, err = tide { "--data", data, "topic", "create", "bad", "--schema", arg }
        assert_error(code, out, err, 1,
          "tide: topic create: schema file '" .. arg .. "' cannot be read: No such file or directory\n")
      end
      create_events()
      local code, out, err = tide { "--data", data, "schema", "put", "events", "v2.ddl" }
      assert_error(code, out, err, 1,
        "tide: schema put 'events': schema file 'v2.ddl' cannot be read: No such file or directory\n")
      -- DDL text is still DDL
      code = tide { "--data", data, "topic", "create", "ok", "--schema", "v int" }
      assert.equal(0, code)
    end)

    it("describes a topic as one JSON object with --json", function()
      create_events { "--partitions", "2", "--retention", "7d" }
      assert.equal(0, (tide({ "--data", data, "produce", "events", "--key", "device" }, EVENTS)))
      local code, out, err = tide { "--data", data, "topic", "describe", "events", "--json" }
      assert.equal(0, code)
      assert.equal("", err)
      local d = require("tide.util").json_decode(out)
      assert.equal("events", d.name)
      assert.equal(2, d.partitions)
      assert.equal("ts timestamp, device string, signal int?", d.ddl)
      assert.is_false(d.schemaless)
      assert.equal("ts", d.time_column)
      assert.equal(7 * 86400000, d.retention_ms)
      assert.equal(3, d.records)
      assert.equal(2, #d.partition_stats)
      local n = 0
      for k, p in ipairs(d.partition_stats) do
        assert.equal(k - 1, p.partition)
        assert.equal(p.latest - p.earliest, p.records)
        n = n + p.records
      end
      assert.equal(3, n)
      assert.equal("\n", out:sub(-1))
      assert.equal(1, select(2, out:gsub("\n", "")))
    end)

    it("reads the schema from a file", function()
      spit(tmp .. "/schema.ddl", "# events\nts timestamp,\ndevice string\n")
      local code = tide { "--data", data, "topic", "create", "ev", "--schema", tmp .. "/schema.ddl" }
      assert.equal(0, code)
      local _, out = tide { "--data", data, "topic", "describe", "ev" }
      assert.matches("\nschema +ts timestamp, device string\n", out)
    end)

    it("refuses a topic that exists, in one line", function()
      create_events()
      local code, out, err = tide { "--data", data, "topic", "create", "events" }
      assert_error(code, out, err, 1, "tide: topic create: topic 'events' already exists\n")
    end)

    it("refuses bad topic names", function()
      local code, out, err = tide { "--data", data, "topic", "create", "../x" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: topic create: [^\n]*'%.%./x'[^\n]*\n$", err)
    end)

    it("says which topics exist when one is missing", function()
      create_events()
      local code, out, err = tide { "--data", data, "topic", "describe", "nope" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: topic describe: no topic 'nope' [^\n]*%(topics: events%)\n$", err)
      code, out, err = tide { "--data", data, "topic", "delete", "nope" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: topic delete: no topic 'nope'[^\n]*\n$", err)
    end)

    it("says when there is no store", function()
      local code, out, err = tide { "--data", tmp .. "/none", "topic", "list" }
      assert_error(code, out, err, 1,
        "tide: topic list: no store at '" .. tmp .. "/none' (use --data DIR or set TIDE_DATA)\n")
    end)

    it("prints the segments as an aligned table", function()
      create_events()
      assert.equal(0, (tide({ "--data", data, "produce", "events" }, EVENTS)))
      local code, out, err = tide { "--data", data, "topic", "segments", "events" }
      assert.equal(0, code)
      assert.equal("", err)
      local head, row = out:match("^([^\n]*)\n([^\n]*)\n$")
      assert.matches("^partition +base +end +records +bytes +min_ts +max_ts +state$", head)
      assert.matches("^ +0 +0 +3 +3 +%d+  2026%-11%-21T12:00:05Z  2026%-11%-21T12:00:07%.250Z  open$", row)
      assert.equal(head:find("state", 1, true), row:find("open", 1, true))
    end)
  end)

  describe("schema", function()
    local V2 = "ts timestamp, device string, signal int?, site string DEFAULT 'hq'"
    local V1_JSON = '{"version":1,"compatibility":"backward","fields":[' ..
      '{"name":"ts","type":"timestamp","nullable":false},{"name":"device","type":"string","nullable":false},' ..
      '{"name":"signal","type":"int","nullable":true}]}\n'

    before_each(function() create_events() end)

    local function schema(args)
      local full = { "--data", data, "schema" }
      for _, a in ipairs(args) do full[#full + 1] = a end
      return tide(full)
    end

    it("prints the schema as one line of JSON, the latest or --version N", function()
      local code, out, err = schema { "get", "events" }
      assert.equal(0, code)
      assert.equal(V1_JSON, out)
      assert.equal("", err)
      assert.equal(0, (schema { "put", "events", V2 }))
      code, out = schema { "get", "events" }
      assert.equal(0, code)
      assert.equal('{"version":2,"compatibility":"backward","fields":[' ..
        '{"name":"ts","type":"timestamp","nullable":false},{"name":"device","type":"string","nullable":false},' ..
        '{"name":"signal","type":"int","nullable":true},' ..
        '{"name":"site","type":"string","nullable":false,"default":"hq"}]}\n', out)
      code, out = schema { "get", "events", "--version", "1" }
      assert.equal(0, code)
      assert.equal(V1_JSON, out)
    end)

    it("registers DDL text and says which version it made", function()
      local code, out, err = schema { "put", "events", "ts timestamp, device string, signal int?, note string?" }
      assert.equal(0, code)
      assert.equal("", out)
      assert.equal("tide: registered version 2 of 'events'\n", err)
      code, out, err = schema { "versions", "events" }
      assert.equal(0, code)
      assert.equal("1\n2\n", out)
      assert.equal("", err)
    end)

    it("says when the schema is unchanged, and registers nothing", function()
      local code, _, err = schema { "put", "events", "ts timestamp, device string, signal int?" }
      assert.equal(0, code)
      assert.equal("tide: schema of 'events' unchanged (version 1)\n", err)
      assert.equal(0, (schema { "put", "events", "ts timestamp, device string, signal int?, note string?" }))
      code, _, err = schema { "put", "events", "ts timestamp, device string, signal int?" }
      assert.equal(0, code)
      assert.equal("tide: schema of 'events' unchanged: identical to version 1 (latest: 2)\n", err)
      local _, out = schema { "versions", "events" }
      assert.equal("1\n2\n", out)
    end)

    it("reads the JSON form that get prints, and DDL, from a file", function()
      local _, json = schema { "get", "events" }
      spit(tmp .. "/v1.json", json)
      local code, _, err = schema { "put", "events", tmp .. "/v1.json" }
      assert.equal(0, code)
      assert.equal("tide: schema of 'events' unchanged (version 1)\n", err)
      spit(tmp .. "/v2.json", '{"fields":[{"name":"ts","type":"timestamp"},{"name":"device","type":"string"},' ..
        '{"name":"signal","type":"int","nullable":true},{"name":"x","type":"double","default":2.0}]}\n')
      code, _, err = schema { "put", "events", tmp .. "/v2.json" }
      assert.equal(0, code)
      assert.equal("tide: registered version 2 of 'events'\n", err)
      spit(tmp .. "/v3.ddl",
        "-- version 3\nts timestamp, device string,\nsignal int?, x double DEFAULT 2,\nnote string?\n")
      code, _, err = schema { "put", "events", tmp .. "/v3.ddl" }
      assert.equal(0, code)
      assert.equal("tide: registered version 3 of 'events'\n", err)
      local _, out = tide { "--data", data, "topic", "describe", "events" }
      assert.matches("\nschema +ts timestamp, device string, signal int%?, x double DEFAULT 2, note string%?\n", out)
    end)

    it("refuses an incompatible schema with the field and the rule, and writes nothing", function()
      local code, out, err = schema { "put", "events", "ts timestamp, device string, signal string?" }
      assert_error(code, out, err, 1, "tide: schema put 'events': field 'signal': type changed from int to string, " ..
        "not allowed under backward\n")
      local _, versions = schema { "versions", "events" }
      assert.equal("1\n", versions)
    end)

    it("sets the compatibility mode with --compatibility", function()
      local code, _, err = schema { "put", "events", "ts timestamp, device string, signal string?",
        "--compatibility", "none" }
      assert.equal(0, code)
      assert.equal("tide: registered version 2 of 'events'\n", err)
      local _, out = schema { "get", "events" }
      assert.matches('^{"version":2,"compatibility":"none",', out)
      code, out, err = schema { "put", "events", "ts timestamp", "--compatibility", "sideways" }
      assert_error(code, out, err, 2, "tide: schema put: option '--compatibility' must be one of none, backward, " ..
        "forward, full, backward_transitive, forward_transitive, full_transitive, got 'sideways' " ..
        "(see 'tide schema put --help')\n")
    end)

    it("checks a schema: exit 0 when compatible, 1 with the reason when not", function()
      local code, out, err = schema { "check", "events", "ts timestamp, device string, signal int?, note string?" }
      assert.equal(0, code)
      assert.equal("", out)
      assert.equal("tide: compatible with 'events' (backward)\n", err)
      code, out, err = schema { "check", "events", "ts timestamp, device string, signal int?, site string" }
      assert_error(code, out, err, 1, "tide: schema check 'events': field 'site' was added without a default and " ..
        "is not nullable, not allowed under backward\n")
      spit(tmp .. "/bad.json", '{"fields":[{"name":"ts","type":"timestamp"},{"name":"signal","type":"bool"}]}')
      code, out, err = schema { "check", "events", tmp .. "/bad.json" }
      assert_error(code, out, err, 1, "tide: schema check 'events': field 'signal': type changed from int to bool, " ..
        "not allowed under backward\n")
      local _, versions = schema { "versions", "events" }
      assert.equal("1\n", versions)
    end)

    it("refuses a DDL that does not parse, with the position", function()
      local code, out, err = schema { "put", "events", "ts timestamp, device strng" }
      assert_error(code, out, err, 1, "tide: schema put 'events': bad schema: at position 22: unknown type 'strng' " ..
        "(allowed: bool, int, double, string, timestamp, json)\n")
      code, out, err = schema { "check", "events", "ts timestamp,, x int" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: schema check 'events': bad schema: at position %d+: [^\n]+\n$", err)
    end)

    it("refuses a JSON form that does not decode, naming the file", function()
      spit(tmp .. "/broken.json", '{"fields": [')
      local code, out, err = schema { "put", "events", tmp .. "/broken.json" }
      assert_error(code, out, err, 1, "tide: schema put 'events': " .. tmp .. "/broken.json: not JSON: " ..
        "Expected value but found T_END at character 13\n")
      spit(tmp .. "/empty.json", '{"fields": []}')
      code, out, err = schema { "put", "events", tmp .. "/empty.json" }
      assert_error(code, out, err, 1, "tide: schema put 'events': " .. tmp .. "/empty.json: \"fields\" is empty\n")
    end)

    it("fails on a missing topic or version, and on bad usage", function()
      local code, out, err = schema { "get", "nope" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: schema get 'nope': no topic 'nope' [^\n]*%(topics: events%)\n$", err)
      code, out, err = schema { "put", "nope", "a int" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: schema put 'nope': no topic 'nope' [^\n]*\n$", err)
      code, out, err = schema { "get", "events", "--version", "5" }
      assert_error(code, out, err, 1,
        "tide: schema get 'events': topic 'events' has no schema version 5 (versions: 1..1)\n")
      code, out, err = schema { "get", "events", "--version", "0" }
      assert_error(code, out, err, 2,
        "tide: schema get: option '--version' must be an integer >= 1, got '0' (see 'tide schema get --help')\n")
      code, out, err = schema { "put", "events" }
      assert_error(code, out, err, 2, "tide: schema put: missing FILE|DDL (see 'tide schema put --help')\n")
      code, out, err = schema {}
      assert_error(code, out, err, 2,
        "tide: schema: missing subcommand (put, get, versions, check) (see 'tide schema --help')\n")
      code, out, err = schema { "drop", "events" }
      assert_error(code, out, err, 2,
        "tide: schema: unknown subcommand 'drop' (put, get, versions, check) (see 'tide schema --help')\n")
    end)

    it("validates produced lines against the latest version", function()
      assert.equal(0, (schema { "put", "events", V2 }))
      local code, out, err = tide({ "--data", data, "produce", "events" },
        '{"ts": 1, "device": "a", "site": "lab"}\n{"ts": 2, "device": "b", "site": 7}\n')
      assert_error(code, out, err, 1, "tide: produce 'events': line 2: field 'site': expected string, got 7\n")
      local _
      code, _, err = tide({ "--data", data, "produce", "events", "--skip-bad" },
        '{"ts": 1, "device": "a", "site": "lab"}\n{"ts": 2, "device": "b", "site": 7}\n{"ts": 3, "device": "c"}\n')
      assert.equal(0, code)
      assert.equal("tide: produced 2 records to 'events' (offsets 0..1); skipped 1 bad line (first: 2)\n" ..
        "tide: line 2: field 'site': expected string, got 7\n", err)
      code, out = tide { "--data", data, "consume", "events" }
      assert.equal(0, code)
      assert.equal('{"ts":1,"device":"a","signal":null,"site":"lab"}\n' ..
        '{"ts":3,"device":"c","signal":null,"site":"hq"}\n', out)
    end)
  end)

  describe("topic create --schema", function()
    it("reads the JSON form from a file", function()
      spit(tmp .. "/s.json", '{"fields":[{"name":"ts","type":"timestamp"},' ..
        '{"name":"signal","type":"int","nullable":true,"default":0}]}\n')
      local code, _, err = tide { "--data", data, "topic", "create", "ev", "--schema", tmp .. "/s.json",
        "--compatibility", "full" }
      assert.equal(0, code)
      assert.equal("tide: created topic 'ev' (1 partition)\n", err)
      local out
      code, out = tide { "--data", data, "schema", "get", "ev" }
      assert.equal(0, code)
      assert.equal('{"version":1,"compatibility":"full","fields":[{"name":"ts","type":"timestamp","nullable":false},' ..
        '{"name":"signal","type":"int","nullable":true,"default":0}]}\n', out)
    end)
  end)

  describe("produce", function()
    before_each(function() create_events() end)

    it("appends JSON lines from a file and sums up on stderr", function()
      spit(tmp .. "/in.jsonl", EVENTS)
      local code, out, err = tide { "--data", data, "produce", "events", tmp .. "/in.jsonl" }
      assert.equal(0, code)
      assert.equal("", out)
      assert.equal("tide: produced 3 records to 'events' (offsets 0..2)\n", err)
    end)

    it("appends JSON lines from stdin", function()
      local code, _, err = tide({ "--data", data, "produce", "events" }, EVENTS)
      assert.equal(0, code)
      assert.equal("tide: produced 3 records to 'events' (offsets 0..2)\n", err)
      code, _, err = tide({ "--data", data, "produce", "events", "-" }, EVENTS)
      assert.equal(0, code)
      assert.equal("tide: produced 3 records to 'events' (offsets 3..5)\n", err)
    end)

    it("fails on a bad line naming it, and appends nothing", function()
      local input = EVENTS .. '{"ts": 1, "device": "d", "signal": "abc"}\n'
      local code, out, err = tide({ "--data", data, "produce", "events" }, input)
      assert_error(code, out, err, 1, "tide: produce 'events': line 4: field 'signal': expected int, got \"abc\"\n")
      code, out = tide { "--data", data, "consume", "events" }
      assert.equal(0, code)
      assert.equal("", out)
    end)

    it("skips bad lines with --skip-bad and says which", function()
      local input = EVENTS .. "not json\n" .. '{"ts": 1, "device": "d", "signal": "abc"}\n'
      local code, _, err = tide({ "--data", data, "produce", "events", "--skip-bad" }, input)
      assert.equal(0, code)
      assert.equal("tide: produced 3 records to 'events' (offsets 0..2); skipped 2 bad lines (first: 4, 5)\n" ..
        "tide: line 4: invalid JSON at column 1: expected '{'\n" ..
        "tide: line 5: field 'signal': expected int, got \"abc\"\n", err)
    end)

    it("gives the reasons of the first three bad lines only", function()
      local bad = {}
      for k = 1, 5 do bad[k] = '{"ts": 1, "device": "d", "signal": "s' .. k .. '"}' end
      local code, _, err = tide({ "--data", data, "produce", "events", "--skip-bad" }, table.concat(bad, "\n") .. "\n")
      assert.equal(0, code)
      assert.equal("tide: produced 0 records to 'events'; skipped 5 bad lines (first: 1, 2, 3, 4, 5)\n" ..
        "tide: line 1: field 'signal': expected int, got \"s1\"\n" ..
        "tide: line 2: field 'signal': expected int, got \"s2\"\n" ..
        "tide: line 3: field 'signal': expected int, got \"s3\"\n", err)
    end)

    it("fails on a missing file or topic", function()
      local code, out, err = tide { "--data", data, "produce", "events", tmp .. "/nope.jsonl" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: produce 'events': [^\n]*nope%.jsonl[^\n]*\n$", err)
      code, out, err = tide({ "--data", data, "produce", "nope" }, EVENTS)
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: produce 'nope': no topic 'nope'[^\n]*\n$", err)
    end)
  end)

  describe("consume", function()
    before_each(function()
      create_events()
      assert.equal(0, (tide({ "--data", data, "produce", "events" }, EVENTS)))
    end)

    it("writes every record as a JSON line", function()
      local code, out, err = tide { "--data", data, "consume", "events" }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal('{"ts":1795262405000,"device":"a","signal":1}\n' ..
        '{"ts":1795262406000,"device":"b","signal":2}\n' ..
        '{"ts":1795262407250,"device":"c","signal":null}\n', out)
    end)

    it("starts at --from and picks --partition", function()
      local code, out = tide { "--data", data, "consume", "events", "--from", "2", "--partition", "0" }
      assert.equal(0, code)
      assert.equal('{"ts":1795262407250,"device":"c","signal":null}\n', out)
    end)

    it("writes timestamps as ISO-8601 on request", function()
      local _, out = tide { "--data", data, "consume", "events", "--from", "2", "--timestamp-format", "iso8601" }
      assert.equal('{"ts":"2026-11-21T12:00:07.250Z","device":"c","signal":null}\n', out)
    end)

    it("gives back a schemaless topic's lines as they were produced", function()
      assert.equal(0, (tide { "--data", data, "topic", "create", "raw" }))
      local input = '{"a":1}\n{"b":[1,2.5,"x"],"c":{"d":null}}\n[1,2]\n"text"\n7\n'
      assert.equal(0, (tide({ "--data", data, "produce", "raw" }, input)))
      local code, out, err = tide { "--data", data, "consume", "raw" }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal(input, out)
      -- and what consume gives back produces the same again
      assert.equal(0, (tide({ "--data", data, "produce", "raw" }, out)))
      local _, twice = tide { "--data", data, "consume", "raw" }
      assert.equal(input .. input, twice)
    end)

    it("gives the last N records of each partition with --from -N, and stops after --max N", function()
      local _, out = tide { "--data", data, "consume", "events", "--from", "-1" }
      assert.equal('{"ts":1795262407250,"device":"c","signal":null}\n', out)
      _, out = tide { "--data", data, "consume", "events", "--from", "-10" }
      assert.equal(3, select(2, out:gsub("\n", "")))
      _, out = tide { "--data", data, "consume", "events", "--max", "2" }
      assert.equal('{"ts":1795262405000,"device":"a","signal":1}\n{"ts":1795262406000,"device":"b","signal":2}\n', out)
      _, out = tide { "--data", data, "consume", "events", "--from", "end" }
      assert.equal("", out)
      _, out = tide { "--data", data, "consume", "events", "--from", "beginning", "--max", "1" }
      assert.equal('{"ts":1795262405000,"device":"a","signal":1}\n', out)
    end)

    it("starts at an event time with --from-time", function()
      local code, out = tide { "--data", data, "consume", "events", "--from-time", "2026-11-21T12:00:06Z" }
      assert.equal(0, code)
      assert.equal('{"ts":1795262406000,"device":"b","signal":2}\n{"ts":1795262407250,"device":"c","signal":null}\n',
        out)
      code, out = tide { "--data", data, "consume", "events", "--from-time", "1795262407000" }
      assert.equal(0, code)
      assert.equal('{"ts":1795262407250,"device":"c","signal":null}\n', out)
      local err
      code, out, err = tide { "--data", data, "consume", "events", "--from-time", "yesterday" }
      assert_error(code, out, err, 2, "tide: consume: option '--from-time' must be a timestamp (ISO-8601 or ms), " ..
        "got 'yesterday' (see 'tide consume --help')\n")
    end)

    it("formats each record with --format, as kcat's -f", function()
      local code, out, err = tide { "--data", data, "consume", "events", "--from", "1",
        "--format", "%t %p:%o %k %T %S %s\\n", "--key", "device" }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal('events 0:1 b 1795262406000 44 {"ts":1795262406000,"device":"b","signal":2}\n' ..
        'events 0:2 c 1795262407250 47 {"ts":1795262407250,"device":"c","signal":null}\n', out)
      code, out = tide { "--data", data, "consume", "events", "--max", "1", "--timestamp-format", "iso8601",
        "--format", "%T\\t100%%\\n" }
      assert.equal(0, code)
      assert.equal("2026-11-21T12:00:05Z\t100%\n", out)
      code, out, err = tide { "--data", data, "consume", "events", "--format", "%x" }
      assert_error(code, out, err, 2, "tide: consume: option '--format': unknown field '%x' (allowed: %t, %p, %o, " ..
        "%k, %T, %s, %S, %%) (see 'tide consume --help')\n")
      code, out, err = tide { "--data", data, "consume", "events", "--format", "%k\\n" }
      assert_error(code, out, err, 2, "tide: consume: option '--format': %k needs --key COL (a record's key is one " ..
        "of its columns) (see 'tide consume --help')\n")
    end)

    it("says when --from is past the end", function()
      local code, out, err = tide { "--data", data, "consume", "events", "--from", "9" }
      assert_error(code, out, err, 1,
        "tide: consume 'events': --from 9 is past the end (partition 0 ends at offset 3)\n")
      code, out = tide { "--data", data, "consume", "events", "--from", "3" }
      assert.equal(0, code)
      assert.equal("", out)
    end)

    it("fails on a partition that does not exist", function()
      local code, out, err = tide { "--data", data, "consume", "events", "--partition", "3" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: consume 'events': [^\n]*partition 3[^\n]*\n$", err)
    end)

    it("follows new records until --max N of them are out, then exits 0", function()
      -- enough records already: no waiting at all
      local code, out = tide { "--data", data, "consume", "events", "--follow", "--max", "2" }
      assert.equal(0, code)
      assert.equal(2, select(2, out:gsub("\n", "")))
      -- one record short: it waits for it
      local outf, rcfile = tmp .. "/max.out", tmp .. "/max.rc"
      os.execute(string.format("cd %s && (env %s timeout 60 %s --data %s consume events --follow --max 4 > %s " ..
        "2>&1; echo $? > %s) > /dev/null 2>&1 &", q(tmp), cpath_env, q(TIDE), q(data), q(outf), q(rcfile)))
      for _ = 1, 200 do
        if select(2, (slurp(outf) or ""):gsub("\n", "")) >= 3 then break end
        sleep(0.05)
      end
      assert.equal(0, (tide({ "--data", data, "produce", "events" }, '{"ts": 5, "device": "x"}\n')))
      for _ = 1, 400 do
        -- the shell creates the file before it writes the status: wait for the line
        if (slurp(rcfile) or ""):find("\n") then break end
        sleep(0.05)
      end
      assert.equal("0\n", slurp(rcfile))
      assert.matches('{"ts":5,"device":"x","signal":null}\n$', slurp(outf))
      assert.equal(4, select(2, slurp(outf):gsub("\n", "")))
    end)

    it("follows new records until SIGTERM, then exits 0", function()
      local out, rcfile, pidfile = tmp .. "/follow.out", tmp .. "/follow.rc", tmp .. "/follow.pid"
      os.execute(string.format("cd %s && env %s sh -c '%s --data %s consume events --follow > %s 2> %s/follow.err " ..
        "& echo $! > %s; wait $!; echo $? > %s' > /dev/null 2>&1 &", q(tmp), cpath_env, TIDE, data, out, tmp, pidfile,
        rcfile))
      local function lines()
        local s = slurp(out) or ""
        return select(2, s:gsub("\n", ""))
      end
      local function await(n)
        for _ = 1, 100 do
          if lines() >= n then return true end
          sleep(0.05)
        end
        return false
      end
      assert.is_true(await(3))
      assert.equal(0, (tide({ "--data", data, "produce", "events" }, '{"ts": 5, "device": "x"}\n')))
      assert.is_true(await(4))
      assert.equal(0, (tide({ "--data", data, "produce", "events" }, '{"ts": 6, "device": "y"}\n')))
      assert.is_true(await(5))
      assert.matches('{"ts":6,"device":"y","signal":null}\n$', slurp(out))
      os.execute("kill -TERM $(cat " .. q(pidfile) .. ")")
      local rc
      for _ = 1, 100 do
        rc = slurp(rcfile)
        if rc and rc ~= "" then break end
        sleep(0.05)
      end
      assert.equal("0\n", rc)
      assert.equal("", slurp(tmp .. "/follow.err"))
    end)
  end)

  describe("run", function()
    it("runs a script with its arguments in arg", function()
      spit(tmp .. "/s.lua", [[
        local tide = require "tide"
        print(arg[0], #arg, arg[1], arg[2], select("#", ...), type(tide.open))
      ]])
      local code, out, err = tide { "run", tmp .. "/s.lua", "one", "--two" }
      assert.equal(0, code)
      assert.equal(tmp .. "/s.lua\t2\tone\t--two\t2\tfunction\n", out)
      assert.equal("", err)
    end)

    it("prints the traceback of a script error and exits 1", function()
      spit(tmp .. "/bad.lua", "local function f() error('boom') end\nf()\n")
      local code, out, err = tide { "run", tmp .. "/bad.lua" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^tide: run: [^\n]*bad%.lua:1: boom\nstack traceback:\n", err)
    end)

    it("reports a script that does not load in one line", function()
      spit(tmp .. "/syntax.lua", "local = 1\n")
      local code, _, err = tide { "run", tmp .. "/syntax.lua" }
      assert.equal(1, code)
      assert.matches("^tide: run: [^\n]*syntax%.lua:1: [^\n]*\n$", err)
      code, _, err = tide { "run", tmp .. "/missing.lua" }
      assert.equal(1, code)
      assert.matches("^tide: run: cannot open [^\n]*missing%.lua[^\n]*\n$", err)
    end)
  end)

  describe("checkpoint show", function()
    local core = require "tide.core"
    local support = require "support"

    -- A checkpoint as the engine leaves it: batches 0..2 in the offset
    -- log, 0..1 committed, two state stores.
    local function make_checkpoint(dir)
      local ck = assert(core.checkpoint(dir))
      assert(ck:set_meta("query_id", "6f1c0d9a"))
      assert(ck:set_meta("name", "q1"))
      for n = 0, 2 do
        assert(ck:write_offsets(n, string.format('{"v":1,"batch_id":%d,"timestamp":%d,"watermark":%s,' ..
          '"sources":[{"description":"FileSource[in/*.jsonl]","start":%s,"end":{"files":[["in/a.jsonl",%d]]}},' ..
          '{"description":"MemoryStream[0]","end":%d}],"conf":{}}', n, 1795262405000 + n * 1000,
          n > 0 and tostring(1795262400000 + n) or "null",
          n > 0 and '{"files":[["in/a.jsonl",10]]}' or "null", 10 + n * 5, n)))
      end
      assert(ck:commit(0, '{"v":1,"batch_id":0,"next_watermark":null}',
        { counts = { put = { { "a", "1" }, { "b", "2" } } } }))
      assert(ck:commit(1, '{"v":1,"batch_id":1,"next_watermark":1795262401000}',
        { ["agg 1"] = { put = { { "x", "1" } } } }))
      return ck
    end

    local SHOWN = table.concat({
      "checkpoint       %s",
      "query id         6f1c0d9a",
      "name             q1",
      "offset log       3 entries, last batch 2",
      "commit log       2 entries, last batch 1",
      "last batch       2, not committed (the next start runs it again)",
      "batch time       2026-11-21T12:00:07Z (1795262407000)",
      "watermark        2026-11-21T12:00:00.002Z (1795262400002)",
      "next watermark   2026-11-21T12:00:01Z (1795262401000)",
      "size             SIZE",
      "",
      "source                  start                          end",
      "FileSource[in/*.jsonl]  {\"files\":[[\"in/a.jsonl\",10]]}  {\"files\":[[\"in/a.jsonl\",20]]}",
      "MemoryStream[0]         -                              2",
      "",
      "state   entries  bytes",
      "agg 1         1   4096",
      "counts        2   4096",
      "",
    }, "\n")

    local function sized(out)
      return (out:gsub("\nsize             %d+ [KM]?i?B on disk, %d+ MiB mapped\n", "\nsize             SIZE\n"))
    end

    it("prints the logs, the last batch's offsets and watermark, and the state sizes", function()
      local dir = tmp .. "/ckpt/q1"
      make_checkpoint(dir):close()
      local code, out, err = tide { "checkpoint", "show", dir }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal(string.format(SHOWN, dir), sized(out))
    end)

    it("shows a committed last batch and an empty checkpoint", function()
      local dir = tmp .. "/q2"
      local ck = assert(core.checkpoint(dir))
      ck:close()
      local code, out, err = tide { "checkpoint", "show", dir }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal(table.concat({
        "checkpoint       " .. dir,
        "query id         -",
        "name             -",
        "offset log       empty",
        "commit log       empty",
        "last batch       none (no batch has run)",
        "state            none",
        "size             SIZE", "" }, "\n"), sized(out))
      ck = assert(core.checkpoint(dir))
      assert(ck:write_offsets(0, '{"v":1,"batch_id":0,"timestamp":5,"watermark":null,"sources":[]}'))
      assert(ck:commit(0, '{"v":1,"batch_id":0,"next_watermark":null}'))
      ck:close()
      code, out = tide { "checkpoint", "show", dir }
      assert.equal(0, code)
      assert.matches("\nlast batch       0, committed\nbatch time       1970-01-01T00:00:00.005Z (5)\n" ..
        "watermark        none\nnext watermark   none\nstate            none\n", out, 1, true)
    end)

    it("works while a query of another process holds the checkpoint", function()
      local dir, ready, script = tmp .. "/held", tmp .. "/ready", tmp .. "/hold.lua"
      make_checkpoint(dir):close()
      spit(script, string.format("package.cpath = %q .. ';' .. package.cpath\n", support.CPATH) .. [[
local ck = assert(require("tide.core").checkpoint(arg[1]))
local f = assert(io.open(arg[2], "w")); f:write("ready"); f:close()
io.read("a")
ck:close()
]])
      local child = io.popen("lua5.4 " .. q(script) .. " " .. q(dir) .. " " .. q(ready), "w")
      for _ = 1, 500 do
        if slurp(ready) == "ready" then break end
        sleep(0.01)
      end
      assert.equal("ready", slurp(ready))
      local ok, msg = core.checkpoint(dir)
      assert.is_nil(ok)
      assert.equal("checkpoint " .. dir .. ": in use by another query", msg)
      local code, out, err = tide { "checkpoint", "show", dir }
      child:close()
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal(string.format(SHOWN, dir), sized(out))
    end)

    it("fails with one line on a missing or damaged checkpoint, and on bad usage", function()
      local code, out, err = tide { "checkpoint", "show", tmp .. "/none" }
      assert_error(code, out, err, 1,
        "tide: checkpoint show: checkpoint " .. tmp .. "/none: No such file or directory\n")
      code, out, err = tide { "checkpoint", "show", tmp }
      assert_error(code, out, err, 1,
        "tide: checkpoint show: checkpoint " .. tmp .. ": no checkpoint here (no data.mdb)\n")
      os.execute("mkdir -p " .. q(tmp .. "/bad"))
      spit(tmp .. "/bad/data.mdb", string.rep("garbage ", 2000))
      code, out, err = tide { "checkpoint", "show", tmp .. "/bad" }
      assert_error(code, out, err, 1, "tide: checkpoint show: checkpoint " .. tmp ..
        "/bad: cannot open data.mdb: MDB_INVALID: File is not an LMDB file\n")
      code, out, err = tide { "checkpoint", "show" }
      assert_error(code, out, err, 2, "tide: checkpoint show: missing DIR (see 'tide checkpoint show --help')\n")
      code, out, err = tide { "checkpoint", "show", "a", "b" }
      assert_error(code, out, err, 2,
        "tide: checkpoint show: unexpected argument 'b' (see 'tide checkpoint show --help')\n")
      code, out, err = tide { "checkpoint", "show", "--json", "a" }
      assert_error(code, out, err, 2,
        "tide: checkpoint show: unknown option '--json' (see 'tide checkpoint show --help')\n")
      code, out, err = tide { "checkpoint" }
      assert_error(code, out, err, 2, "tide: checkpoint: missing subcommand (show) (see 'tide checkpoint --help')\n")
      code, out, err = tide { "checkpoint", "list" }
      assert_error(code, out, err, 2,
        "tide: checkpoint: unknown subcommand 'list' (show) (see 'tide checkpoint --help')\n")
    end)

    it("reports an entry that is not JSON, and still shows the rest", function()
      local dir = tmp .. "/odd"
      local ck = assert(core.checkpoint(dir))
      assert(ck:write_offsets(0, "not json"))
      ck:close()
      local code, out, err = tide { "checkpoint", "show", dir }
      assert.equal(1, code)
      assert.matches("\nlast batch       0, not committed (the next start runs it again)\n", out, 1, true)
      assert.matches("^tide: checkpoint show: offset log entry 0 is not a JSON object %(.*%): not json\n$", err)
    end)

    it("prints its usage with --help", function()
      for _, args in ipairs { { "checkpoint", "--help" }, { "checkpoint", "show", "--help" } } do
        local code, out, err = tide(args)
        assert.equal(0, code)
        assert.equal("usage: tide checkpoint show DIR\n", out:match("^[^\n]*\n"))
        assert.equal("", err)
      end
      local _, out = tide { "--help" }
      assert.matches("tide checkpoint show DIR", out, 1, true)
    end)
  end)

  describe("main (in process)", function()
    it("returns the exit status instead of exiting", function()
      local stdout = io.stdout
      local f = assert(io.tmpfile())
      io.stdout = f   -- luacheck: ignore
      local ok, code = pcall(cli.main, { "--help" })
      io.stdout = stdout   -- luacheck: ignore
      assert.is_true(ok)
      assert.equal(0, code)
      f:seek("set")
      assert.matches("^usage: tide", f:read("a"))
      f:close()
    end)

    it("sums up a produce in one line", function()
      assert.equal("produced 1 record to 'e' (offsets 7..7)",
        cli.produce_summary("e", 1, { appended = 1, ranges = { { partition = 0, first = 7, last = 7 } } }))
      assert.equal("produced 4 records to 'e' (partition 0: offsets 0..1; partition 1: offsets 5..6); " ..
        "skipped 3 bad lines (first: 2, 9, ...)",
        cli.produce_summary("e", 2, { appended = 4, skipped = 3, bad_lines = { 2, 9 },
          ranges = { { partition = 0, first = 0, last = 1 }, { partition = 1, first = 5, last = 6 } } }))
      assert.equal("produced 0 records to 'e'", cli.produce_summary("e", 1, { appended = 0, ranges = {} }))
    end)

    it("strips positions and API prefixes from error messages", function()
      assert.equal("topic 'x' already exists",
        cli.clean_message("lua/tide/store.lua:9: create_topic 'x': topic 'x' already exists"))
      assert.equal("line 3: bad", cli.clean_message("produce 'e': line 3: bad"))
      assert.equal("no topic 'x' (topics: a)", cli.clean_message("no topic 'x' (topics: a)"))
    end)
  end)
end)
