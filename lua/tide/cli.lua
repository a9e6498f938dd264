--- The `tide` command-line tool (API.md section 5).
--
--    tide [--data DIR] <command> [options]
--
-- `M.main(argv)` runs one command line and returns the exit status: 0 ok,
-- 1 runtime failure, 2 bad usage. It writes through `io.stdout` and
-- `io.stderr` and never calls `os.exit` (bin/tide does), so specs may call
-- it in process.
--
-- Output discipline: stdout carries data only (topic lists, tables, JSON
-- lines); stderr carries summaries and errors. Every error is one line,
-- `tide: <what>: <why>`, with Lua position prefixes stripped; usage errors
-- end with a pointer to the command's `--help`. A Lua traceback is printed
-- only for errors of a user's script under `tide run`, or for unexpected
-- errors when `TIDE_DEBUG` is set.
--
-- @module tide.cli

local util = require "tide.util"

local M = {}

local format, concat = string.format, table.concat
local tointeger = math.tointeger

-- ------------------------------------------------------------------------
-- Usage texts
-- ------------------------------------------------------------------------

local DATA_HELP = "  --data DIR            the store (default: $TIDE_DATA, then ./tide-data)\n"

local HELP = {}

HELP[""] = [[
usage: tide [--data DIR] <command> [options]

commands:
  tide                                the REPL ('tide' and the store 'db' as globals)
  tide topic create NAME [options]    create a topic
  tide topic list                     list the topics
  tide topic describe NAME            a topic's schema, options, offsets and sizes
  tide topic segments NAME            a topic's segments
  tide topic delete NAME              delete a topic and its data
  tide produce TOPIC [FILE]           append JSON lines from FILE or stdin
  tide consume TOPIC [options]        write a topic's records as JSON lines
  tide schema put TOPIC FILE|DDL      register a new version of a topic's schema
  tide schema get TOPIC               print a version of the schema as JSON
  tide schema versions TOPIC          list the schema's versions
  tide schema check TOPIC FILE|DDL    would a schema be accepted?
  tide run SCRIPT [ARGS...]           run a pipeline script
  tide checkpoint show DIR            a query checkpoint's batches, offsets, watermark and state
  tide --version                      print the version
  tide --help                         print this help

options for every command:
]] .. DATA_HELP .. [[
  --help                the command's usage

Run 'tide <command> --help' for a command's options.
Exit status: 0 ok, 1 runtime failure, 2 bad usage.
]]

HELP.topic = [[
usage: tide topic <create|list|describe|segments|delete> ...

  tide topic create NAME [options]    create a topic
  tide topic list                     list the topics, one name a line
  tide topic describe NAME [--json]   a topic's schema, options, offsets and sizes
  tide topic segments NAME            a topic's segments as a table
  tide topic delete NAME              delete a topic and its data
]]

HELP["topic create"] = [[
usage: tide topic create NAME [options]

Create the topic NAME in the store.

options:
  --partitions N        number of partitions (default 1)
  --schema FILE|DDL     the schema: a file holding DDL or the JSON form that
                        'tide schema get' prints, or DDL text such as
                        "ts timestamp, device string, signal int?"
                        (default: schemaless, one 'value json' column)
  --compatibility MODE  the schema registry's mode (default backward; see
                        'tide schema --help')
  --retention DUR       drop sealed segments older than DUR ("7d", "12 h")
  --retention-bytes SIZE  keep each partition below SIZE ("10GB")
  --segment-bytes SIZE  roll segments at SIZE (default 64MB)
  --segment-ms DUR      roll segments at age DUR
  --time-column COL     the event-time column (default: the first timestamp)
  --unknown-fields MODE reject (default) or ignore JSON keys not in the schema
]] .. DATA_HELP

HELP["topic list"] = "usage: tide topic list\n\nPrint the names of the topics, one a line.\n\noptions:\n" .. DATA_HELP

HELP["topic describe"] = [[
usage: tide topic describe NAME [--json]

Print the topic's schema and options, its totals, and per partition the
earliest and latest offsets, records, bytes and segments.

options:
  --json                one JSON object instead: name, partitions, ddl,
                        schemaless, time_column, retention_ms,
                        retention_bytes, segment_bytes, segment_ms,
                        unknown_fields, compatibility, schema_version,
                        created, records, bytes, segments, and
                        partition_stats (partition, earliest, latest,
                        records, bytes, segments)
]] .. DATA_HELP

HELP["topic segments"] = [[
usage: tide topic segments NAME

Print the topic's segments: partition, base and end offsets (end exclusive),
records, bytes, event-time range (ISO-8601 UTC) and state.

options:
]] .. DATA_HELP

HELP["topic delete"] = "usage: tide topic delete NAME\n\nDelete the topic and its data.\n\noptions:\n" .. DATA_HELP

HELP.produce = [[
usage: tide produce TOPIC [FILE] [options]

Append JSON lines (one object a line) from FILE, or stdin when FILE is
missing or '-', to TOPIC. The input is validated against the topic's schema
and appended atomically: a bad line fails the whole input, unless --skip-bad.
A summary goes to stderr.

options:
  --key COL             partition by the hash of column COL
  --skip-bad            append the good lines, report the bad ones
]] .. DATA_HELP

HELP.consume = [[
usage: tide consume TOPIC [options]

Write the records of TOPIC to stdout as JSON lines, partition by partition.
A schemaless topic gives back each JSON value as it was produced.

options:
  --from N              start at offset N in each partition; -N: the last N
                        records of each partition (kcat's -o -N); beginning
                        (the default) or end
  --from-time TS        start at the first record at or after event time TS
                        (ISO-8601 or ms)
  --partition P         only partition P
  --max N               stop after N records
  --follow              keep waiting for new records; Ctrl-C or SIGTERM ends
  --timestamp-format F  ms (default: integer milliseconds) or iso8601
  --format FMT          each record as FMT (kcat's -f): %t topic, %p partition,
                        %o offset, %k key (the column of --key), %T event
                        time, %s the record's JSON, %S its size, %% a percent
                        sign; \n, \t escapes. Example: '%p:%o %s\n'
  --key COL             the key column that %k prints
]] .. DATA_HELP

local SCHEMA_ARG_HELP = [[
FILE|DDL is a file holding the JSON form (as 'tide schema get' prints it:
{"fields":[{"name":"ts","type":"timestamp","nullable":false}, ...]}) or DDL
text, or else DDL text itself: "ts timestamp, signal int? DEFAULT 0".
]]

local MODES_HELP = [[
Compatibility modes (Pulsar/Confluent): none; backward (the new version can
read data of the previous one: add a nullable or defaulted field, remove a
field, widen int to double); forward (the previous version can read data of
the new one); full (both); backward_transitive, forward_transitive,
full_transitive (the same against every earlier version).
]]

HELP.schema = [[
usage: tide schema <put|get|versions|check> ...

  tide schema put TOPIC FILE|DDL      register a new version of TOPIC's schema
  tide schema get TOPIC               print a version of the schema as JSON
  tide schema versions TOPIC          list the versions, one a line
  tide schema check TOPIC FILE|DDL    exit 0 if the schema would be accepted

]] .. MODES_HELP

HELP["schema put"] = [[
usage: tide schema put TOPIC FILE|DDL [options]

Register the schema as the next version of TOPIC's schema, after checking it
against earlier versions under the topic's compatibility mode. A schema
identical to a registered version registers nothing. An incompatible schema
is refused with the reason, and nothing is written.

]] .. SCHEMA_ARG_HELP .. "\n" .. MODES_HELP .. [[

options:
  --compatibility MODE  set the topic's mode first, then check under it
]] .. DATA_HELP

HELP["schema get"] = [[
usage: tide schema get TOPIC [options]

Print a version of TOPIC's schema (the latest by default) as one line of
JSON: {"version":N,"compatibility":MODE,"fields":[{"name":..,"type":..,
"nullable":..,"default":..}, ...]}. 'tide schema put' reads it back.

options:
  --version N           print version N
]] .. DATA_HELP

HELP["schema versions"] = [[
usage: tide schema versions TOPIC

Print the versions of TOPIC's schema, oldest first, one a line.

options:
]] .. DATA_HELP

HELP["schema check"] = [[
usage: tide schema check TOPIC FILE|DDL

Check whether the schema would be accepted as TOPIC's next version under its
compatibility mode, without registering it: exit 0 if so, 1 with the reason
on stderr if not.

]] .. SCHEMA_ARG_HELP .. [[

options:
]] .. DATA_HELP

HELP.run = [[
usage: tide run [--quiet] [--log-progress FILE] [--ui [HOST:]PORT] SCRIPT [ARGS...]
       tide run --application-id ID [--state-dir DIR] [...] SCRIPT [ARGS...]

Run the Lua script SCRIPT with the tide module available and ARGS in the
global 'arg' (arg[0] is SCRIPT, arg[1] the first of ARGS, what came before
SCRIPT at negative indices), as lua does; then run its streaming queries
until every one has ended.

Ctrl-C or SIGTERM stops the queries after the batch in flight, which is
committed, and exits 0; a second Ctrl-C exits at once (status 130; the
batch in flight runs again on the next start). An error in the script
prints its traceback; a query that fails prints 'tide: query NAME (SOURCE
-> SINK) failed: ...' (NAME: its name, or the first 8 characters of its
id); both exit with status 1. Positions and tracebacks are the script's:
tide's own frames are left out unless TIDE_DEBUG=1 is in the environment.

While queries run and stdout is a terminal, one status line per query shows
its input and processed rates (rows per second), its last batch, its
watermark and the lag behind it (now - watermark); '-' where there is none.

options (before SCRIPT):
  --quiet               no status lines
  --log-progress FILE   append every progress report to FILE, one JSON
                        object a line
  --ui [HOST:]PORT      serve the dashboard, /metrics (Prometheus) and the
                        JSON API on HOST:PORT (default host 127.0.0.1)
  --application-id ID   run every query the script starts as application ID
                        (scale-out on Kafka: every process started with the
                        same ID shares the work; see the guide, "Scale-out")
  --state-dir DIR       the application's local state (default ./tide-state)
]] .. DATA_HELP

HELP.checkpoint = [[
usage: tide checkpoint show DIR

  tide checkpoint show DIR            a query checkpoint's batches, offsets,
                                      watermark and state sizes
]]

HELP["checkpoint show"] = [[
usage: tide checkpoint show DIR

Print what the checkpoint directory DIR of a streaming query holds: the
query's id and name; the entries of its offset and commit logs and their
last batch ids; whether the last batch is committed (an uncommitted one runs
again, with the same offsets, on the next start); the last batch's time,
source offsets and watermark; the watermark of the next batch; each state
store's entries and bytes; the size of the checkpoint.

DIR is opened read-only and without its lock, so this works while the query
runs (in another process) and never disturbs it.
]]

-- A group's help ends with each subcommand's own options, as its help
-- states them, then the options every subcommand takes.
local function group_options(group, subs)
  local parts = { HELP[group] }
  for _, sub in ipairs(subs) do
    local text = HELP[group .. " " .. sub]
    local opts = text:match("\noptions[^\n]*:\n(.*)$") or ""
    local at = opts:find(DATA_HELP, 1, true)
    if at then opts = opts:sub(1, at - 1) end
    if opts ~= "" then parts[#parts + 1] = format("\noptions of '%s %s':\n%s", group, sub, opts) end
  end
  parts[#parts + 1] = "\noptions of every subcommand:\n" .. DATA_HELP ..
    "  --help                the subcommand's usage\n"
  HELP[group] = concat(parts)
end
group_options("topic", { "create", "list", "describe", "segments", "delete" })
group_options("schema", { "put", "get", "versions", "check" })

-- ------------------------------------------------------------------------
-- Errors
-- ------------------------------------------------------------------------

-- Error objects raised inside a command and turned into one stderr line.
local Usage = {} -- bad usage: exit 2
local Fail = {}  -- runtime failure: exit 1

local function usage_error(cmd, msg)
  error(setmetatable({ cmd = cmd, msg = msg }, Usage), 0)
end

local function fail(what, msg)
  error(setmetatable({ what = what, msg = msg }, Fail), 0)
end

-- Names of API functions whose own prefix ("create_topic 'x': ",
-- "produce 'events': ") the CLI replaces with its own.
local API_PREFIXES = {
  create_topic = true, delete_topic = true, topic = true, produce = true, read = true,
  read_json = true, append = true, append_json = true, ["tide.open"] = true,
  register_schema = true, check_schema = true, set_compatibility = true, schema = true,
  schema_versions = true,
}

--- An API error message as the "why" of a CLI error line: one line, no Lua
-- position, no API function prefix.
-- @param msg an error value
-- @treturn string
function M.clean_message(msg)
  msg = util.strip_position(msg)
  local name, rest = msg:match("^([%w_%.]+) '[^']*': (.*)$")
  if not (name and API_PREFIXES[name]) then name, rest = msg:match("^([%w_%.]+): (.*)$") end
  if name and API_PREFIXES[name] then msg = rest end
  return msg
end

-- ------------------------------------------------------------------------
-- Argument parsing
-- ------------------------------------------------------------------------

-- Parse argv[i..] for command `cmd`. spec maps "--name" to "flag" or
-- "value"; --data and --help are known to every command. Options and
-- positionals may mix; "--" ends the options; "--name=value" is accepted.
-- When stop_at_positional is set, parsing ends at the first positional and
-- the rest is returned untouched (for `tide run SCRIPT ARGS...`).
-- Returns opts (keyed by name without dashes, '-' becoming '_'), the
-- array of positionals and the index in argv of the first positional.
local function parse_args(argv, i, spec, cmd, ctx, stop_at_positional)
  local opts, pos, first = {}, {}, nil
  local n = #argv
  while i <= n do
    local a = argv[i]
    if a == "--" then
      first = i + 1
      for j = i + 1, n do pos[#pos + 1] = argv[j] end
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      if name == "--help" or name == "-h" then
        opts.help = true
      else
        local kind = name == "--data" and "value" or spec[name]
        if kind == nil then usage_error(cmd, format("unknown option '%s'", name)) end
        local value = true
        if kind == "value" then
          value = inline
          if value == nil then
            i = i + 1
            value = argv[i]
            if value == nil then usage_error(cmd, format("option '%s' needs a value", name)) end
          end
        elseif inline ~= nil then
          usage_error(cmd, format("option '%s' takes no value", name))
        end
        if name == "--data" then
          ctx.data = value
        else
          opts[name:sub(3):gsub("%-", "_")] = value
        end
      end
    else
      pos[#pos + 1] = a
      first = first or i
      if stop_at_positional then
        for j = i + 1, n do pos[#pos + 1] = argv[j] end
        break
      end
    end
    i = i + 1
  end
  return opts, pos, first
end

-- A non-negative integer option, or a usage error.
local function int_option(cmd, opts, name, min)
  local v = opts[name]
  if v == nil then return nil end
  local i = tointeger(tonumber(v))
  if not i or i < (min or 0) then
    usage_error(cmd, format("option '--%s' must be an integer >= %d, got '%s'", name:gsub("_", "-"), min or 0, v))
  end
  return i
end

local function convert_option(cmd, opts, name, conv)
  local v = opts[name]
  if v == nil then return nil end
  local ok, r = pcall(conv, v, nil, 0)
  if not ok then usage_error(cmd, format("option '--%s': %s", name:gsub("_", "-"), util.strip_position(r))) end
  return r
end

-- Exactly `want` positionals named by `names`, or a usage error.
local function positionals(cmd, pos, names, optional)
  for k, name in ipairs(names) do
    if pos[k] == nil and not (optional and optional[name]) then usage_error(cmd, "missing " .. name) end
  end
  if #pos > #names then usage_error(cmd, format("unexpected argument '%s'", pos[#names + 1])) end
  return table.unpack(pos, 1, #names)
end

-- ------------------------------------------------------------------------
-- Helpers
-- ------------------------------------------------------------------------

local function out(s) io.stdout:write(s) end
local function note(s) io.stderr:write("tide: ", s, "\n") end

local function exists(path)
  return os.rename(path, path) ~= nil
end

-- The store's directory: --data, $TIDE_DATA, ./tide-data.
local function data_dir(ctx)
  if ctx.data and ctx.data ~= "" then return ctx.data end
  local env = os.getenv("TIDE_DATA")
  if env and env ~= "" then return env end
  return "./tide-data"
end

local function load_tide(what, name)
  local ok, tide = pcall(require, name or "tide")
  if not ok then fail(what, "cannot load the tide module: " .. util.strip_position(tide)) end
  return tide
end

local COMPAT_MODES = { "none", "backward", "forward", "full", "backward_transitive", "forward_transitive",
  "full_transitive" }

-- A compatibility mode option, or a usage error listing the modes.
local function check_mode(cmd, mode)
  for _, m in ipairs(COMPAT_MODES) do
    if m == mode then return mode end
  end
  usage_error(cmd, format("option '--compatibility' must be one of %s, got '%s'", concat(COMPAT_MODES, ", "), mode))
end

-- Open the store; a missing directory is an error unless `create`.
local function open_store(ctx, what, create)
  local dir = data_dir(ctx)
  if not create and not exists(dir) then
    fail(what, format("no store at '%s' (use --data DIR or set TIDE_DATA)", dir))
  end
  local tide = load_tide(what)
  local ok, db = pcall(tide.open, dir, { sync = true })
  if not ok then fail(what, M.clean_message(db)) end
  ctx.db = db
  return db
end

local function get_topic(db, what, name)
  local ok, t = pcall(db.topic, db, name)
  if not ok then fail(what, M.clean_message(t)) end
  return t
end

-- Run fn(...) and turn an API error into a runtime failure of `what`.
local function api(what, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then fail(what, M.clean_message(r[2])) end
  return table.unpack(r, 2, r.n)
end

--- Format rows as an aligned text table: columns two spaces apart, numbers
-- right-aligned, text left-aligned, nil as "-".
-- @tab headers column titles
-- @tab rows array of arrays of cell values
-- @treturn string the table, a line per row, each ending in "\n"
function M.format_table(headers, rows)
  local ncol, cells, numeric = #headers, {}, {}
  for c = 1, ncol do numeric[c] = #rows > 0 end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c = 1, ncol do
      local v = row[c]
      cells[r][c] = v == nil and "-" or tostring(v)
      if v ~= nil and type(v) ~= "number" then numeric[c] = false end
    end
  end
  -- numbers right-aligned, and a header over a column of numbers (or "-")
  local lines = util.text_table(headers, cells, { right = function(c, r)
    if r == 0 then return numeric[c] end
    return type(rows[r][c]) == "number"
  end })
  return concat(lines, "\n") .. "\n"
end

local function iso_or_dash(ms)
  if ms == nil then return nil end
  return util.iso8601(ms)
end

-- ------------------------------------------------------------------------
-- tide topic ...
-- ------------------------------------------------------------------------

local topic_cmds = {}

-- A schema argument (--schema of topic create, FILE|DDL of schema put and
-- check): when v names a readable file, its text is the JSON form if it
-- starts with '{' (returned as the array form), else DDL (comment lines
-- starting with '#' or '--' dropped); otherwise v is DDL text itself.
-- A JSON form that does not decode fails `what`, naming the file.
local function schema_arg(what, v)
  local f, open_why = io.open(v, "r")
  -- DDL has a space between a name and its type: a single word, or text
  -- with a '/' or ending in an extension, is a path that does not open
  if not f and (not v:find("%s") or v:find("/", 1, true) or v:match("%.%a+$")) then
    fail(what, format("schema file '%s' cannot be read: %s", v, open_why:match(": ([^:]*)$") or open_why))
  end
  if f then
    local text = f:read("a")
    f:close()
    if text then
      if text:match("^%s*{") then
        local fields, why = load_tide(what, "tide.schema").from_json(text)
        if not fields then fail(what, format("%s: %s", v, why)) end
        return fields
      end
      local keep = {}
      for l in text:gmatch("[^\n]+") do
        if not l:match("^%s*#") and not l:match("^%s*%-%-") then keep[#keep + 1] = l end
      end
      return (concat(keep, " "):gsub("^%s+", ""):gsub("%s+$", ""))
    end
  end
  return v
end

topic_cmds.create = {
  spec = {
    ["--partitions"] = "value", ["--schema"] = "value", ["--retention"] = "value",
    ["--retention-bytes"] = "value", ["--segment-bytes"] = "value", ["--segment-ms"] = "value",
    ["--time-column"] = "value", ["--unknown-fields"] = "value", ["--compatibility"] = "value",
  },
  run = function(ctx, opts, pos)
    local cmd = "topic create"
    local name = positionals(cmd, pos, { "NAME" })
    local o = {
      partitions = int_option(cmd, opts, "partitions", 1),
      retention = convert_option(cmd, opts, "retention", util.duration),
      retention_bytes = convert_option(cmd, opts, "retention_bytes", util.size),
      segment_bytes = convert_option(cmd, opts, "segment_bytes", util.size),
      segment_ms = convert_option(cmd, opts, "segment_ms", util.duration),
      time_column = opts.time_column,
      unknown_fields = opts.unknown_fields,
      compatibility = opts.compatibility,
    }
    if o.unknown_fields and o.unknown_fields ~= "reject" and o.unknown_fields ~= "ignore" then
      usage_error(cmd, format("option '--unknown-fields' must be reject or ignore, got '%s'", o.unknown_fields))
    end
    if o.compatibility then check_mode(cmd, o.compatibility) end
    if opts.schema then o.schema = schema_arg(cmd, opts.schema) end
    local db = open_store(ctx, cmd, true)
    local t = api(cmd, db.create_topic, db, name, o)
    local n = t:info().partitions
    note(format("created topic '%s' (%d partition%s)", name, n, n == 1 and "" or "s"))
    return 0
  end,
}

topic_cmds.list = {
  spec = {},
  run = function(ctx, _, pos)
    local cmd = "topic list"
    positionals(cmd, pos, {})
    local db = open_store(ctx, cmd)
    for _, name in ipairs(api(cmd, db.topics, db)) do out(name .. "\n") end
    return 0
  end,
}

topic_cmds.describe = {
  spec = { ["--json"] = "flag" },
  run = function(ctx, opts, pos)
    local cmd = "topic describe"
    local name = positionals(cmd, pos, { "NAME" })
    local db = open_store(ctx, cmd)
    local t = get_topic(db, cmd, name)
    local info = api(cmd, t.info, t)
    local offsets = api(cmd, t.offsets, t)
    local segments = api(cmd, t.segments, t)
    local per = {}
    for _, o in ipairs(offsets) do
      per[o.partition] = { o.partition, o.earliest, o.latest, o.latest - o.earliest, 0, 0 }
    end
    local records, bytes = 0, 0
    for _, s in ipairs(segments) do
      local p = per[s.partition]
      if p then
        p[5], p[6] = p[5] + s.bytes, p[6] + 1
      end
      bytes = bytes + s.bytes
    end
    for _, o in ipairs(offsets) do records = records + (o.latest - o.earliest) end
    if opts.json then
      local list = {}
      for k, o in ipairs(offsets) do
        local p = per[o.partition]
        list[k] = { partition = p[1], earliest = p[2], latest = p[3], records = p[4], bytes = p[5], segments = p[6] }
      end
      out(util.json_encode {
        name = info.name, partitions = info.partitions, schemaless = info.schemaless == true,
        ddl = info.ddl, time_column = info.time_column, retention_ms = info.retention_ms,
        retention_bytes = info.retention_bytes, segment_bytes = info.segment_bytes, segment_ms = info.segment_ms,
        unknown_fields = info.unknown_fields, compatibility = info.compatibility,
        schema_version = info.schema_version, created = info.created, records = records, bytes = bytes,
        segments = #segments, partition_stats = list,
      } .. "\n")
      return 0
    end
    local function none(v, f) return v == nil and "none" or f(v) end
    local fields = {
      { "name", info.name },
      { "partitions", info.partitions },
      { "schema", info.schemaless and "schemaless (value json)" or info.ddl },
      { "time column", info.time_column or "none" },
      { "retention", none(info.retention_ms, util.format_duration) },
      { "retention bytes", none(info.retention_bytes, util.format_size) },
      { "segment bytes", none(info.segment_bytes, util.format_size) },
      { "segment ms", none(info.segment_ms, util.format_duration) },
      { "unknown fields", info.unknown_fields },
      { "compatibility", info.compatibility },
      { "schema version", info.schema_version },
      { "created", info.created and util.iso8601(info.created) },
      { "records", records },
      { "bytes", format("%d (%s)", bytes, util.format_size(bytes)) },
      { "segments", #segments },
    }
    local lines = {}
    for _, f in ipairs(fields) do
      if f[2] ~= nil then lines[#lines + 1] = format("%-16s %s", f[1], tostring(f[2])) end
    end
    out(concat(lines, "\n") .. "\n\n")
    local rows = {}
    for _, o in ipairs(offsets) do rows[#rows + 1] = per[o.partition] end
    out(M.format_table({ "partition", "earliest", "latest", "records", "bytes", "segments" }, rows))
    return 0
  end,
}

topic_cmds.segments = {
  spec = {},
  run = function(ctx, _, pos)
    local cmd = "topic segments"
    local name = positionals(cmd, pos, { "NAME" })
    local db = open_store(ctx, cmd)
    local t = get_topic(db, cmd, name)
    local rows = {}
    for _, s in ipairs(api(cmd, t.segments, t)) do
      rows[#rows + 1] = { s.partition, s.base_offset, s.end_offset, s.records, s.bytes,
        iso_or_dash(s.min_ts), iso_or_dash(s.max_ts), s.state }
    end
    out(M.format_table({ "partition", "base", "end", "records", "bytes", "min_ts", "max_ts", "state" }, rows))
    return 0
  end,
}

topic_cmds.delete = {
  spec = {},
  run = function(ctx, _, pos)
    local cmd = "topic delete"
    local name = positionals(cmd, pos, { "NAME" })
    local db = open_store(ctx, cmd)
    api(cmd, db.delete_topic, db, name)
    note(format("deleted topic '%s'", name))
    return 0
  end,
}

-- Run `tide <group> <sub> ...`: find the subcommand in cmds (names lists
-- them for messages), allowing --data and --help before it.
local function run_group(group, cmds, names, ctx, argv, i)
  local j = i
  while argv[j] and argv[j]:sub(1, 1) == "-" do
    local a = argv[j]
    if a == "--help" or a == "-h" then
      out(HELP[group])
      return 0
    elseif a == "--data" then
      if argv[j + 1] == nil then usage_error(group, "option '--data' needs a value") end
      ctx.data, j = argv[j + 1], j + 1
    elseif a:match("^%-%-data=") then
      ctx.data = a:sub(8)
    else
      usage_error(group, format("unknown option '%s'", a))
    end
    j = j + 1
  end
  local sub = argv[j]
  if sub == nil then usage_error(group, format("missing subcommand (%s)", names)) end
  local c = cmds[sub]
  if not c then usage_error(group, format("unknown subcommand '%s' (%s)", sub, names)) end
  local cmd = group .. " " .. sub
  local opts, pos = parse_args(argv, j + 1, c.spec, cmd, ctx)
  if opts.help then
    out(HELP[cmd])
    return 0
  end
  return c.run(ctx, opts, pos)
end

local function cmd_topic(ctx, argv, i)
  return run_group("topic", topic_cmds, "create, list, describe, segments, delete", ctx, argv, i)
end

-- ------------------------------------------------------------------------
-- tide schema
-- ------------------------------------------------------------------------

local schema_cmds = {}

schema_cmds.put = {
  spec = { ["--compatibility"] = "value" },
  run = function(ctx, opts, pos)
    local cmd = "schema put"
    local name, arg = positionals(cmd, pos, { "TOPIC", "FILE|DDL" })
    local mode = opts.compatibility and check_mode(cmd, opts.compatibility)
    local what = format("schema put '%s'", name)
    local schema = schema_arg(what, arg)
    local db = open_store(ctx, what)
    local before = #api(what, db.schema_versions, db, name)
    local v = api(what, db.register_schema, db, name, schema, { compatibility = mode })
    if v > before then
      note(format("registered version %d of '%s'", v, name))
    elseif v == before then
      note(format("schema of '%s' unchanged (version %d)", name, v))
    else
      note(format("schema of '%s' unchanged: identical to version %d (latest: %d)", name, v, before))
    end
    return 0
  end,
}

schema_cmds.get = {
  spec = { ["--version"] = "value" },
  run = function(ctx, opts, pos)
    local cmd = "schema get"
    local name = positionals(cmd, pos, { "TOPIC" })
    local version = int_option(cmd, opts, "version", 1)
    local what = format("schema get '%s'", name)
    local tschema = load_tide(what, "tide.schema")
    local db = open_store(ctx, what)
    local sc = api(what, db.schema, db, name, version)
    out(api(what, tschema.to_json, sc.fields, { version = sc.version, compatibility = sc.compatibility }) .. "\n")
    return 0
  end,
}

schema_cmds.versions = {
  spec = {},
  run = function(ctx, _, pos)
    local cmd = "schema versions"
    local name = positionals(cmd, pos, { "TOPIC" })
    local what = format("schema versions '%s'", name)
    local db = open_store(ctx, what)
    for _, v in ipairs(api(what, db.schema_versions, db, name)) do out(v .. "\n") end
    return 0
  end,
}

schema_cmds.check = {
  spec = {},
  run = function(ctx, _, pos)
    local cmd = "schema check"
    local name, arg = positionals(cmd, pos, { "TOPIC", "FILE|DDL" })
    local what = format("schema check '%s'", name)
    local schema = schema_arg(what, arg)
    local db = open_store(ctx, what)
    local ok, why = api(what, db.check_schema, db, name, schema)
    if not ok then fail(what, why) end
    local t = get_topic(db, what, name)
    note(format("compatible with '%s' (%s)", name, api(what, t.info, t).compatibility))
    return 0
  end,
}

local function cmd_schema(ctx, argv, i)
  return run_group("schema", schema_cmds, "put, get, versions, check", ctx, argv, i)
end

-- ------------------------------------------------------------------------
-- tide checkpoint
-- ------------------------------------------------------------------------

local checkpoint_cmds = {}

-- A log entry's JSON text decoded, or nil and a line saying why not.
local function decode_entry(kind, id, text)
  if text == nil then return nil, format("%s entry %d is missing", kind, id) end
  local v, why = util.json_decode(text)
  if type(v) ~= "table" then
    return nil, format("%s entry %d is not a JSON object (%s): %s", kind, id, why or type(v), text:sub(1, 200))
  end
  return v
end

-- A watermark or batch time (ms) for people: ISO-8601, or "none".
local function time_text(ms)
  if math.type(ms) ~= "integer" then return "none" end
  return format("%s (%d)", util.iso8601(ms), ms)
end

-- An offset for people: its canonical JSON, "-" when there is none.
local function offset_text(v)
  if v == nil then return "-" end
  local ok, s = pcall(util.json_encode, v)
  return ok and s or tostring(v)
end

checkpoint_cmds.show = {
  spec = {},
  run = function(ctx, _, pos)
    local cmd = "checkpoint show"
    local dir = positionals(cmd, pos, { "DIR" })
    local core = load_tide(cmd, "tide.core")
    local ck, msg = core.checkpoint(dir, { read_only = true })
    if not ck then fail(cmd, msg) end
    ctx.ckpt = ck
    local st = api(cmd, ck.stats, ck)
    local last_o, last_c = st.last_offset_id, st.last_commit_id
    local function log_line(n, last)
      if n == 0 then return "empty" end
      return format("%d %s, last batch %d", n, n == 1 and "entry" or "entries", last)
    end
    local fields = {
      { "checkpoint", dir },
      { "query id", api(cmd, ck.get_meta, ck, "query_id") or "-" },
      { "name", api(cmd, ck.get_meta, ck, "name") or "-" },
      { "offset log", log_line(st.offsets, last_o) },
      { "commit log", log_line(st.commits, last_c) },
    }
    local problems, sources = {}, nil
    if last_o == nil and last_c == nil then
      fields[#fields + 1] = { "last batch", "none (no batch has run)" }
    else
      local last = math.max(last_o or -1, last_c or -1)
      local committed = last_c ~= nil and last_c >= last
      fields[#fields + 1] = { "last batch", committed and format("%d, committed", last)
        or format("%d, not committed (the next start runs it again)", last) }
      local entry, why = decode_entry("offset log", last, api(cmd, ck.offsets, ck, last))
      if entry then
        fields[#fields + 1] = { "batch time", time_text(entry.timestamp) }
        fields[#fields + 1] = { "watermark", time_text(entry.watermark) }
        sources = entry.sources
      else
        problems[#problems + 1] = why
      end
      if last_c then
        local c, cwhy = decode_entry("commit log", last_c, api(cmd, ck.commit_entry, ck, last_c))
        if c then fields[#fields + 1] = { "next watermark", time_text(c.next_watermark) }
        else problems[#problems + 1] = cwhy end
      end
    end
    local names = {}
    for name in pairs(st.states) do names[#names + 1] = name end
    table.sort(names)
    if #names == 0 then fields[#fields + 1] = { "state", "none" } end
    fields[#fields + 1] = { "size", format("%s on disk, %s mapped", util.format_size(st.file_bytes),
      util.format_size(st.map_bytes)) }
    local lines = {}
    for _, f in ipairs(fields) do lines[#lines + 1] = format("%-16s %s", f[1], tostring(f[2])) end
    out(concat(lines, "\n") .. "\n")
    if type(sources) == "table" and #sources > 0 then
      local rows = {}
      for k, src in ipairs(sources) do
        rows[k] = { type(src) == "table" and src.description or "?", offset_text(type(src) == "table" and src.start),
          offset_text(type(src) == "table" and src["end"]) }
      end
      out("\n" .. M.format_table({ "source", "start", "end" }, rows))
    end
    if #names > 0 then
      local rows = {}
      for k, name in ipairs(names) do rows[k] = { name, st.states[name].entries, st.states[name].bytes } end
      out("\n" .. M.format_table({ "state", "entries", "bytes" }, rows))
    end
    for _, p in ipairs(problems) do note(format("checkpoint show: %s", p)) end
    return #problems > 0 and 1 or 0
  end,
}

local function cmd_checkpoint(ctx, argv, i)
  return run_group("checkpoint", checkpoint_cmds, "show", ctx, argv, i)
end

-- ------------------------------------------------------------------------
-- tide produce
-- ------------------------------------------------------------------------

local function plural(n, word) return format("%d %s%s", n, word, n == 1 and "" or "s") end

--- The summary line of a produce: "produced 1000 records to 'events'
-- (offsets 0..999)", with partitions named when the topic has several, and
-- "; skipped 2 bad lines (first: 3, 17)" after --skip-bad, followed by a
-- line "tide: line 3: <reason>" for each of the first bad lines.
-- @string topic the topic's name
-- @int partitions its number of partitions
-- @tab r what `topic:produce` returned
-- @treturn string
function M.produce_summary(topic, partitions, r)
  local s = format("produced %s to '%s'", plural(r.appended or 0, "record"), topic)
  local ranges = {}
  for _, rg in ipairs(r.ranges or {}) do
    if partitions > 1 then
      ranges[#ranges + 1] = format("partition %d: offsets %d..%d", rg.partition, rg.first, rg.last)
    else
      ranges[#ranges + 1] = format("offsets %d..%d", rg.first, rg.last)
    end
  end
  if #ranges > 0 then s = s .. " (" .. concat(ranges, "; ") .. ")" end
  if (r.skipped or 0) > 0 then
    local first = {}
    for k, line in ipairs(r.bad_lines or {}) do first[k] = tostring(line) end
    if #first < r.skipped then first[#first + 1] = "..." end
    s = s .. format("; skipped %s", plural(r.skipped, "bad line"))
    if #first > 0 then s = s .. " (first: " .. concat(first, ", ") .. ")" end
    -- the reasons of the first bad lines, one line each
    for k, why in ipairs(r.bad_reasons or {}) do
      if r.bad_lines and r.bad_lines[k] then s = s .. format("\ntide: line %d: %s", r.bad_lines[k], why) end
    end
  end
  return s
end

local function cmd_produce(ctx, argv, i)
  local cmd = "produce"
  local opts, pos = parse_args(argv, i, { ["--key"] = "value", ["--skip-bad"] = "flag" }, cmd, ctx)
  if opts.help then
    out(HELP.produce)
    return 0
  end
  local name, file = positionals(cmd, pos, { "TOPIC", "FILE" }, { FILE = true })
  if file == "-" then file = nil end
  local what = format("produce '%s'", name)
  local db = open_store(ctx, what)
  local t = get_topic(db, what, name)
  local r = api(what, t.produce, t, file, { key = opts.key, skip_bad = opts.skip_bad == true })
  note(M.produce_summary(name, t:info().partitions, r))
  return 0
end

-- ------------------------------------------------------------------------
-- tide consume
-- ------------------------------------------------------------------------

-- The fields of consume --format, as kcat's -f.
local FORMAT_FIELDS = {
  t = "the topic", p = "the partition", o = "the offset", k = "the key (the column of --key)",
  T = "the event time (ms, or ISO-8601 with --timestamp-format iso8601)", s = "the record as JSON",
  S = "the size of %s in bytes", ["%"] = "a %",
}
local FORMAT_ESCAPES = { n = "\n", t = "\t", r = "\r", ["\\"] = "\\" }

--- Parse a consume --format string: kcat's fields (%t topic, %p partition,
-- %o offset, %k key, %T timestamp, %s record, %S its size, %% a percent
-- sign) and escapes (\n, \t, \r, \\).
-- @string fmt
-- @return an array of literal strings and one-letter field names ({ f = "o" }),
-- or nil and why not
function M.parse_format(fmt)
  local parts, lit, i = {}, {}, 1
  while i <= #fmt do
    local c = fmt:sub(i, i)
    if c == "%" or c == "\\" then
      local n = fmt:sub(i + 1, i + 1)
      if c == "\\" then
        if not FORMAT_ESCAPES[n] then return nil, format("unknown escape '\\%s' (allowed: \\n, \\t, \\r, \\\\)", n) end
        lit[#lit + 1] = FORMAT_ESCAPES[n]
      elseif n == "%" then
        lit[#lit + 1] = "%"
      elseif FORMAT_FIELDS[n] then
        if #lit > 0 then parts[#parts + 1], lit = concat(lit), {} end
        parts[#parts + 1] = { f = n }
      else
        return nil, format("unknown field '%%%s' (allowed: %%t, %%p, %%o, %%k, %%T, %%s, %%S, %%%%)", n)
      end
      i = i + 2
    else
      lit[#lit + 1] = c
      i = i + 1
    end
  end
  if #lit > 0 then parts[#parts + 1] = concat(lit) end
  return parts
end

-- Where consume starts in partition p (offsets: { earliest, latest }):
-- `from` is nil (the earliest), "beginning", "end", N, or -N (the last N).
local function start_offset(from, o)
  if from == nil or from == "beginning" then return o.earliest end
  if from == "end" then return o.latest end
  if from < 0 then return math.max(o.earliest, o.latest + from) end
  return from
end

local function cmd_consume(ctx, argv, i)
  local cmd = "consume"
  local opts, pos = parse_args(argv, i, {
    ["--from"] = "value", ["--from-time"] = "value", ["--partition"] = "value", ["--follow"] = "flag",
    ["--timestamp-format"] = "value", ["--max"] = "value", ["--format"] = "value", ["--key"] = "value",
  }, cmd, ctx)
  if opts.help then
    out(HELP.consume)
    return 0
  end
  local name = positionals(cmd, pos, { "TOPIC" })
  local from = opts.from
  if from ~= nil and from ~= "beginning" and from ~= "end" then
    from = tointeger(tonumber(from))
    if not from then
      usage_error(cmd, format("option '--from' must be an offset, -N (the last N records), beginning or end, got '%s'",
        opts.from))
    end
  end
  local max = int_option(cmd, opts, "max", 1)
  local partition = int_option(cmd, opts, "partition")
  local tf = opts.timestamp_format or "ms"
  if tf ~= "ms" and tf ~= "iso8601" then
    usage_error(cmd, format("option '--timestamp-format' must be ms or iso8601, got '%s'", tf))
  end
  local iso = tf == "iso8601"
  local from_time
  if opts.from_time then
    from_time = tointeger(tonumber(opts.from_time)) or require("tide.core").ts_parse(opts.from_time)
    if not from_time then
      usage_error(cmd, format("option '--from-time' must be a timestamp (ISO-8601 or ms), got '%s'", opts.from_time))
    end
  end
  local fields
  if opts.format then
    local why
    fields, why = M.parse_format(opts.format)
    if not fields then usage_error(cmd, "option '--format': " .. why) end
  end
  local what = format("consume '%s'", name)
  local db = open_store(ctx, what)
  local t = get_topic(db, what, name)
  local info = api(what, t.info, t)
  local needs = {}
  for _, f in ipairs(fields or {}) do
    if type(f) == "table" then needs[f.f] = true end
  end
  if needs.k and not opts.key then
    usage_error(cmd, "option '--format': %k needs --key COL (a record's key is one of its columns)")
  end
  if needs.T and not info.time_column then
    fail(what, format("%%T: topic '%s' has no time column", name))
  end
  if opts.key then
    local found = false
    for _, f in ipairs(info.schema) do found = found or f[1] == opts.key end
    if not found then
      fail(what, format("--key: no column '%s' in topic '%s' (columns: %s)", opts.key, name, info.ddl))
    end
  end

  -- The partitions and where each starts.
  local offsets = {}
  for _, o in ipairs(api(what, t.offsets, t)) do offsets[o.partition] = o end
  local parts = {}
  if partition then
    if not offsets[partition] then
      fail(what, format("no partition %d (topic '%s' has %d partition%s: 0..%d)", partition, name, info.partitions,
        info.partitions == 1 and "" or "s", info.partitions - 1))
    end
    parts[1] = partition
  else
    for p = 0, info.partitions - 1 do parts[#parts + 1] = p end
  end
  local next_offset = {}
  for _, p in ipairs(parts) do next_offset[p] = start_offset(from, offsets[p]) end
  if not opts.follow and math.type(from) == "integer" and from > 0 then
    local past = {}
    for _, p in ipairs(parts) do
      if from > offsets[p].latest then
        past[#past + 1] = format("partition %d ends at offset %d", p, offsets[p].latest)
      end
    end
    if #past == #parts then
      fail(what, format("--from %d is past the end (%s)", from, concat(past, ", ")))
    end
  end

  -- One record: its JSON text (without "\n"), partition and offset.
  local schemaless, time_col, key_col = info.schemaless, info.time_column, opts.key
  local count = 0
  local function emit(text, p, off)
    -- a schemaless topic gives back the JSON value it was given
    if schemaless then text = text:sub(10, -2) end
    if not fields then
      io.stdout:write(text, "\n")
    else
      local rec
      local buf = {}
      for k, f in ipairs(fields) do
        if type(f) == "string" then
          buf[k] = f
        else
          local c = f.f
          if (c == "T" or c == "k") and not rec then rec = util.json_decode(text) or {} end
          if c == "t" then buf[k] = name
          elseif c == "p" then buf[k] = tostring(p)
          elseif c == "o" then buf[k] = tostring(off)
          elseif c == "s" then buf[k] = text
          elseif c == "S" then buf[k] = tostring(#text)
          elseif c == "T" then buf[k] = tostring(rec[time_col] or "")
          elseif c == "k" then
            local v = rec[key_col]
            buf[k] = type(v) == "table" and util.json_encode(v) or v == nil and "" or tostring(v)
          end
        end
      end
      io.stdout:write(concat(buf))
    end
    count = count + 1
    return max ~= nil and count >= max
  end

  -- Read every partition from where it stopped; true when --max is reached.
  local function drain()
    for _, p in ipairs(parts) do
      local _, _, _, r = t:read_json { from = next_offset[p], partition = p, iso8601 = iso, from_time = from_time }
      while true do
        local text, part, nxt, offs = r:next_json(iso, true)
        if text == nil then
          if part then fail(what, M.clean_message(part)) end
          break
        end
        local k = 0
        for line in text:gmatch("([^\n]*)\n") do
          k = k + 1
          next_offset[p] = offs[k] + 1
          if emit(line, p, offs[k]) then
            r:close()
            io.stdout:flush()
            return true
          end
        end
        next_offset[p] = nxt
      end
    end
    io.stdout:flush()
    return false
  end

  if not opts.follow then
    api(what, drain)
    return 0
  end

  -- --follow: drain every partition from where it stopped, then wait for
  -- the catalog to change (each commit writes it) and drain again.
  -- The watch starts before the first drain, so that no commit falls
  -- between the two unseen; it drains on each change of the catalog and
  -- once more a moment later (tide.connector.watch_catalog says why).
  local core = require "tide.core"
  local loop = core.loop()
  ctx.loop = loop
  -- --max N: the drain that reaches it ends the loop
  local w, msg = require("tide.connector").watch_catalog(loop, db, function()
    if drain() then loop:stop() end
  end)
  if not w then fail(what, msg) end
  local function stop() loop:stop() end
  loop:signal("SIGINT", stop)
  loop:signal("SIGTERM", stop)
  if api(what, drain) then return 0 end
  api(what, loop.run, loop)
  loop:close()
  return 0
end

-- ------------------------------------------------------------------------
-- tide run
-- ------------------------------------------------------------------------

-- A traceback without the frames below the first xpcall: those of this
-- module (for the script's errors) or of the query's batch machinery (for
-- a batch's error, whose traceback starts in the user's function).
local function cut_traceback(tb)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  if cut then tb = tb:sub(1, cut - 1) end
  return tb
end

-- The user's position and frames only (tide.errors), unless TIDE_DEBUG.
local function script_traceback(msg)
  return cut_traceback(require("tide.errors").traceback(msg, 2))
end

-- Is stdout a terminal that understands ANSI codes? TERM unset or "dumb"
-- means no. Then libuv's guess of fd 1 (core.guess_handle) where the core
-- has it; otherwise a shell's `test -t 1` under os.execute, which inherits
-- our stdout (under io.popen its stdout would be the pipe).
local function stdout_is_terminal()
  local term = os.getenv("TERM")
  if term == nil or term == "" or term == "dumb" then return false end
  local core = require "tide.core"
  if type(core.guess_handle) == "function" then return core.guess_handle(1) == "tty" end
  return os.execute("test -t 1") == true
end

-- The terminal's width, asked once (a line wider than the terminal would
-- wrap and break the cursor arithmetic of the status lines).
local function terminal_columns()
  local n = tointeger(tonumber(os.getenv("COLUMNS") or ""))
  if n and n > 0 then return n end
  local p = io.popen("stty size 2>/dev/null </dev/tty")
  local s = p and p:read("a") or ""
  if p then p:close() end
  n = tointeger(tonumber(s:match("^%s*%d+%s+(%d+)") or ""))
  return (n and n > 0) and n or 80
end

-- A rate for people: "850", "12.3k", "4.56M".
local function rate_text(r)
  if r < 999.5 then return format("%.0f", r) end
  if r < 999500 then return format("%.1fk", r / 1000) end
  return format("%.2fM", r / 1e6)
end

-- A lag for people: "850ms", "4.2s", "3m05s", "2h07m", "3d04h".
local function lag_text(ms)
  if ms < 0 then ms = 0 end
  if ms < 1000 then return format("%dms", ms) end
  local s = ms / 1000
  if s < 60 then return format("%.1fs", s) end
  s = math.floor(s)
  if s < 3600 then return format("%dm%02ds", s // 60, s % 60) end
  if s < 86400 then return format("%dh%02dm", s // 3600, s % 3600 // 60) end
  return format("%dd%02dh", s // 86400, s % 86400 // 3600)
end

-- The offsets a progress report's sources are behind their partitions'
-- ends (a source that reports `lag`, topic -> partition -> offsets: the
-- Kafka source): { total =, worst = "topic/partition", worst_lag = } or nil.
function M.offset_lag(p)
  local total, worst, worst_lag = 0, nil, -1
  local any = false
  for _, src in ipairs(p and p.sources or {}) do
    if type(src.lag) == "table" then
      for t, parts in pairs(src.lag) do
        -- other sources' own counts ({ records = n, ... }) are not per partition
        for part, n in pairs(type(parts) == "table" and parts or {}) do
          any = true
          total = total + n
          local name = t .. "/" .. tostring(part)
          if n > worst_lag or (n == worst_lag and name < worst) then worst, worst_lag = name, n end
        end
      end
    end
  end
  if not any then return nil end
  return { total = total, worst = worst, worst_lag = worst_lag }
end

--- One query's status line, as `tide run` shows it on a terminal:
-- "query NAME: in R rows/s, processed R rows/s, batch N, watermark ISO, lag L",
-- and, for a source with partitions (Kafka), ", behind N offsets (most: topic/p M)";
-- a query of an application (scale-out) starts with "application ID, tasks
-- 0_1 (lag N) 0_3 (lag M); ".
-- @string name the query's name (or the first 8 characters of its id)
-- @tab s { input_rate =, processed_rate = (rows/s), batch_id = (nil before
-- the first batch), watermark = (ms, nil or 0 when there is none), now = ms,
-- behind = M.offset_lag's result or nil, application = id or nil, tasks =
-- q:tasks() or nil }
-- @treturn string
function M.status_line(name, s)
  local wm = s.watermark
  if wm == 0 then wm = nil end -- a watermark's value before any event time
  local app = ""
  if s.application then
    -- scale-out: the application, then this process's tasks and their lag
    local ts = {}
    for _, t in ipairs(s.tasks or {}) do ts[#ts + 1] = format("%s (lag %s)", t.id, rate_text(t.lag or 0)) end
    app = format("application %s, tasks %s; ", s.application, #ts > 0 and concat(ts, " ") or "none")
  end
  return app .. format("query %s: in %s rows/s, processed %s rows/s, batch %s, watermark %s, lag %s", name,
    rate_text(s.input_rate or 0), rate_text(s.processed_rate or 0),
    s.batch_id and tostring(s.batch_id) or "-", wm and util.iso8601(wm) or "-",
    wm and lag_text(s.now - wm) or "-") .. (s.behind and format(", behind %s offsets (most: %s %s)",
    rate_text(s.behind.total), s.behind.worst, rate_text(s.behind.worst_lag)) or "")
end

local STATUS_REFRESH_MS = 250 -- redraws at most four times a second
local RATE_WINDOW_MS = 2000   -- rates over the batches of the last two seconds

-- The status lines at the bottom of the terminal while `tide run` runs:
-- the terminal's owner (runtime.set_terminal_owner), so that what is
-- written through runtime.write (the console sink's tables, the script's
-- print) goes above them. Invariant: `drawn` lines were written, each
-- ending in "\n", and the cursor is at the start of the line below them.
local function status_lines(query_mod, runtime, core)
  local loop = runtime.loop()
  local width = terminal_columns()
  local seen = setmetatable({}, { __mode = "k" }) -- query -> { batches = {{t, rows, ms}}, batch_id, since }
  local drawn = 0

  local function info(q)
    local s = seen[q]
    if not s then
      s = { batches = {}, since = core.time_now() }
      seen[q] = s
    end
    return s
  end

  local function text()
    local now, lines = core.time_now(), {}
    for _, q in ipairs(query_mod.queries()) do
      local s = info(q)
      local b, rows, ms = s.batches, 0, 0
      while b[1] and b[1].t < now - RATE_WINDOW_MS do table.remove(b, 1) end
      for _, e in ipairs(b) do rows, ms = rows + e.rows, ms + e.ms end
      local span = math.max(math.min(RATE_WINDOW_MS, now - s.since), STATUS_REFRESH_MS)
      local line = M.status_line(q:name() or q:id():sub(1, 8), {
        input_rate = rows / span * 1000, processed_rate = ms > 0 and rows / ms * 1000 or 0,
        batch_id = s.batch_id, watermark = q:watermark(), now = now, behind = M.offset_lag(q:last_progress()),
        tasks = q.tasks and q:tasks() or nil, application = q.application_id and q:application_id() or nil })
      if #line >= width then line = line:sub(1, width - 1) end
      lines[#lines + 1] = "\27[2K" .. line .. "\n"
    end
    return lines
  end

  -- The escape codes that erase the drawn lines: cursor up over them, erase
  -- to the end of the screen.
  local function erase()
    local n = drawn
    drawn = 0
    return n > 0 and format("\r\27[%dA\27[J", n) or ""
  end

  local function draw()
    local lines = text()
    drawn = #lines
    return concat(lines)
  end

  local owner = {
    clear = function() io.stdout:write(erase()) end,
    redraw = function() io.stdout:write(draw()) end,
  }
  local function refresh()
    io.stdout:write(erase() .. draw())
    io.stdout:flush()
  end

  local remove = query_mod.on_progress(function(q, p)
    local s = info(q)
    local b = s.batches
    b[#b + 1] = { t = core.time_now(), rows = p.num_input_rows or 0, ms = p.duration_ms and p.duration_ms.total or 0 }
    s.batch_id = p.batch_id
  end)
  local prev_owner = runtime.set_terminal_owner(owner)
  -- Fully buffered, so that each erase-and-redraw (and each write between
  -- them) reaches the terminal in one piece: no flicker of half-drawn lines.
  io.stdout:setvbuf("full")
  local timer = loop:timer(STATUS_REFRESH_MS, STATUS_REFRESH_MS, refresh)

  -- The script's print and io.write go above the lines too.
  local print_, write_ = print, io.write
  print = function(...) -- luacheck: ignore 121
    local t = table.pack(...)
    for k = 1, t.n do t[k] = tostring(t[k]) end
    runtime.write(concat(t, "\t", 1, t.n) .. "\n")
  end
  io.write = function(...) -- luacheck: ignore 122
    local t = table.pack(...)
    for k = 1, t.n do
      local v = t[k]
      if type(v) ~= "string" and type(v) ~= "number" then
        error(format("bad argument #%d to 'write' (string expected, got %s)", k, type(v)), 2)
      end
      t[k] = type(v) == "number" and tostring(v) or v
    end
    runtime.write(concat(t, "", 1, t.n))
    return io.stdout
  end

  -- Stop: erase the lines and give everything back.
  return function()
    print, io.write = print_, write_ -- luacheck: ignore 121 122
    timer:close()
    remove()
    runtime.set_terminal_owner(prev_owner)
    io.stdout:write(erase())
    io.stdout:flush()
    io.stdout:setvbuf("line")
  end
end

-- --log-progress FILE: every progress report as one JSON line. Returns the
-- function that stops logging.
local function progress_log(query_mod, path)
  local f, msg = io.open(path, "a")
  if not f then fail("run", format("cannot open the progress log: %s", msg)) end
  f:setvbuf("line")
  local remove = query_mod.on_progress(function(_, p) f:write(util.json_encode(p), "\n") end)
  return function()
    remove()
    f:close()
  end
end

local function cmd_run(ctx, argv, i)
  local cmd = "run"
  local opts, pos, at = parse_args(argv, i, { ["--quiet"] = "flag", ["--log-progress"] = "value",
    ["--ui"] = "value", ["--application-id"] = "value", ["--state-dir"] = "value" }, cmd, ctx, true)
  if opts.help then
    out(HELP.run)
    return 0
  end
  local script = pos[1]
  if script == nil then usage_error(cmd, "missing SCRIPT") end
  if opts.log_progress == "" then usage_error(cmd, "option '--log-progress' needs a file name") end
  if opts.application_id ~= nil and not opts.application_id:match("^[%w._-]+$") then
    usage_error(cmd, format("option '--application-id' must be a name of letters, digits, '.', '_' and '-', " ..
      "got '%s'", opts.application_id))
  end
  if opts.state_dir ~= nil and opts.application_id == nil then
    usage_error(cmd, "option '--state-dir' needs '--application-id' (it is the application's local state)")
  end
  if opts.state_dir == "" then usage_error(cmd, "option '--state-dir' needs a directory name") end
  local tide = load_tide(cmd)
  if opts.ui then
    local host, msg = require("tide.ui").parse_listen(opts.ui)
    if not host then usage_error(cmd, "option '--ui': " .. msg) end
  end
  if ctx.data then
    -- --data picks the store of tide.default_store() in the script (and
    -- of the connectors' default store).
    require("tide.store").set_default_dir(ctx.data)
  end
  local chunk, lerr = loadfile(script)
  if not chunk then
    ctx.raw = true -- the script's own position is useful here
    fail(cmd, tostring(lerr))
  end
  -- `arg` as lua sets it: the script at 0, its arguments from 1, and what
  -- came before it on the command line (the interpreter, bin/tide, "run",
  -- options) at negative indices.
  local script_arg = {}
  local low = 0
  while argv[low - 1] ~= nil do low = low - 1 end
  for k = low, #argv do script_arg[k - at] = argv[k] end

  local query_mod, runtime, core = require "tide.query", require "tide.runtime", require "tide.core"
  local stops = {}
  if opts.application_id then
    local scaleout = require "tide.scaleout"
    scaleout.defaults = { application_id = opts.application_id, state_dir = opts.state_dir }
    stops[#stops + 1] = function() scaleout.defaults = nil end
  end
  if opts.log_progress then stops[#stops + 1] = progress_log(query_mod, opts.log_progress) end
  if opts.ui then
    local uok, ui = pcall(require("tide.ui").start, { listen = opts.ui })
    if not uok then fail(cmd, (util.strip_position(tostring(ui)):gsub("^tide%.ui: ", ""))) end
    note("ui at " .. ui:url())
    stops[#stops + 1] = function() ui:close() end
  end
  if not opts.quiet and stdout_is_terminal() then stops[#stops + 1] = status_lines(query_mod, runtime, core) end
  local function stop_all()
    for k = #stops, 1, -1 do stops[k]() end
    stops = {}
  end

  rawset(_G, "arg", script_arg)
  local ok, err = xpcall(chunk, script_traceback, table.unpack(script_arg, 1, #script_arg))
  local what = "run"
  if ok then
    -- A failed query's error already carries its batch's traceback.
    what = "query"
    ok, err = xpcall(tide.run, function(e) return e end)
  end
  stop_all()
  if not ok then
    if what == "query" then
      local first, rest = cut_traceback(tostring(err)):match("^([^\n]*)(.*)$")
      io.stderr:write("tide: ", util.strip_position(first), rest, "\n")
    else
      io.stderr:write("tide: run: ", tostring(err), "\n")
    end
    return 1
  end
  return 0
end

-- ------------------------------------------------------------------------
-- main
-- ------------------------------------------------------------------------

local commands = { topic = cmd_topic, schema = cmd_schema, produce = cmd_produce, consume = cmd_consume,
  run = cmd_run, checkpoint = cmd_checkpoint }

local function dispatch(ctx, argv)
  local i = 1
  while argv[i] and argv[i]:sub(1, 1) == "-" do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      out(HELP[""])
      return 0
    elseif a == "--version" then
      out("tide " .. tostring(load_tide("version").version) .. "\n")
      return 0
    elseif a == "--data" then
      if argv[i + 1] == nil then usage_error("", "option '--data' needs a value") end
      ctx.data, i = argv[i + 1], i + 1
    elseif a:match("^%-%-data=") then
      ctx.data = a:sub(8)
    else
      usage_error("", format("unknown option '%s'", a))
    end
    i = i + 1
  end
  local name = argv[i]
  if name == nil then
    -- No command: the REPL, on the store of --data (or the default one).
    ctx.cmd = "repl"
    return load_tide("repl", "tide.repl").main { data = ctx.data }
  end
  local c = commands[name]
  if not c then usage_error("", format("unknown command '%s'", name)) end
  ctx.cmd = name
  return c(ctx, argv, i + 1)
end

--- Run one command line.
-- @tab argv the arguments (as the global `arg`: argv[1] is the command;
-- argv[0], when present, is the program)
-- @treturn int the exit status: 0 ok, 1 runtime failure, 2 bad usage
function M.main(argv)
  argv = argv or {}
  local ctx = {}
  local trace
  local ok, r = xpcall(dispatch, function(e)
    if getmetatable(e) == Usage or getmetatable(e) == Fail then return e end
    trace = debug.traceback(tostring(e), 2)
    return setmetatable({ what = ctx.cmd or "error", msg = M.clean_message(e) }, Fail)
  end, ctx, argv)
  if ctx.loop then pcall(ctx.loop.close, ctx.loop) end
  if ctx.db then pcall(ctx.db.close, ctx.db) end
  if ctx.ckpt then pcall(ctx.ckpt.close, ctx.ckpt) end
  if ok then
    io.stdout:flush()
    return r
  end
  if getmetatable(r) == Usage then
    local see = r.cmd == "" and "tide --help" or "tide " .. r.cmd .. " --help"
    local what = r.cmd == "" and "" or r.cmd .. ": "
    io.stderr:write(format("tide: %s%s (see '%s')\n", what, r.msg, see))
    return 2
  end
  local msg = ctx.raw and tostring(r.msg) or M.clean_message(r.msg)
  io.stderr:write(format("tide: %s: %s\n", r.what, msg))
  if trace and os.getenv("TIDE_DEBUG") then io.stderr:write(trace, "\n") end
  io.stdout:flush()
  return 1
end

return M
