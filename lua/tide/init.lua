--- tide: a streaming engine for Lua.
--
-- The entry module. Stores and topics live in `tide.store`; this module
-- gathers the public calls of ../API.md that exist so far.
--
--    local tide = require "tide"
--    local db = tide.open("data")
--    db:create_topic("events", { schema = "ts timestamp, device string, signal int?" })
--    db:topic("events"):append{ { ts = 1700000000000, device = "a", signal = 3 } }
--
-- @module tide

local core = require "tide.core"
local store = require "tide.store"
local schema = require "tide.schema"
local frame = require "tide.frame"
local session = require "tide.session"
local query = require "tide.query"
local memory = require "tide.connectors.memory"
local postgres = require "tide.connectors.postgres"
local runtime = require "tide.runtime"
local ui = require "tide.ui"

local M = {}

--- The version of tide, e.g. `"0.1.0"`.
M.version = core.version

--- Open or create the store in directory `dir`.
-- @function open
-- @see tide.store.open
M.open = store.open

--- The default store: `$TIDE_DATA`, else `./tide-data` (`tide run --data
-- DIR` picks another), the handle this process has open there, or opened
-- now; with `opts`, a new handle opened with them.
-- @tab[opt] opts as for `open`
-- @return a store
-- @function default_store
-- @see tide.store.default_store
M.default_store = store.default_store

--- A static frame over files: `tide.read("file", { path = "in/*.jsonl",
-- format = "json", schema = "..." })`, or over a PostgreSQL query's result:
-- `tide.read("postgres", { conninfo = "...", query = "SELECT ..." [, refresh = "1 minute"] })`.
-- @see tide.frame.read
function M.read(kind, opts)
  -- tail calls: their errors' level 2 is the user's line
  if kind == "postgres" then return postgres.read(opts, 1) end
  return frame.read(kind, opts)
end

-- f:write(sink, opts): a static frame into a sink whose connector takes
-- them (its descriptor's `write`, connectors/README.md)
frame.set_engine("write", function(f, kind, opts, level)
  level = level + 1
  if type(kind) ~= "string" then
    error("write: bad argument #1: expected a sink name, got " .. type(kind), level)
  end
  local d = runtime.connector("sink", kind, level)
  if not d.write then
    local static = {}
    for _, name in ipairs(runtime.SINKS) do
      if runtime.connector("sink", name).write then static[#static + 1] = name end
    end
    error(string.format("write: the %s sink takes streams only (write_stream); static frames go to: %s", kind,
      table.concat(static, ", ")), level)
  end
  local n = d.write(f, opts, level)
  return n
end)

--- A static frame over Lua rows: `tide.from_rows(rows [, schema])`.
-- @function from_rows
M.from_rows = frame.from_rows

--- An event-time window for `group_by` or `select`:
-- `tide.window(col, size [, slide [, start]])`.
-- @function window
M.window = frame.window

--- A session window for `group_by`: `tide.session_window(col, gap)`; rows
-- of a key closer than `gap` in event time form one session.
-- @function session_window
function M.session_window(col, gap)
  return session.session_window(col, gap)
end

--- Infer a schema (DDL) from a sample: a file of JSON lines or a CSV file
-- (its first 1000 lines; `opts`: `format`, `header`, `sep`), or an array
-- of rows. See `tide.schema.infer` for the rules.
-- @function infer_schema
M.infer_schema = schema.infer

--- Parse a timestamp: integer ms pass through; ISO-8601 strings
-- (`2026-11-21T12:00:05Z`, `2026-11-21 12:00:05.250`, with or without a
-- zone) become ms since the epoch, UTC.
-- @return ms
-- @raise on a string that is not a timestamp
function M.parse_time(v)
  if math.type(v) == "integer" then return v end
  if type(v) == "string" then
    local ms = core.ts_parse(v)
    if ms then return ms end
  end
  error("parse_time: not a timestamp: " .. tostring(v), 2)
end

--- Format ms since the epoch as ISO-8601 UTC (`2026-11-21T12:00:05.250Z`).
function M.format_time(ms)
  if math.type(ms) ~= "integer" then error("format_time: expected integer ms, got " .. type(ms), 2) end
  return core.ts_format(ms)
end

--- A streaming frame over a source: `tide.read_stream("file", { path =,
-- format =, schema = })`, `"socket"`, `"rate"`, `"topic"`, or a Lua source
-- made by `tide.source{...}`.
function M.read_stream(kind, opts) return query.read_stream(kind, opts, 2) end

--- A replayable in-memory stream for tests and the REPL:
-- `local ms = tide.memory_stream(schema); ms:add(rows); ms:frame()`.
function M.memory_stream(ddl) return memory.stream(ddl, 2) end

--- A static frame over the rows of a memory sink (the query's name).
function M.table(name) return memory.table(name, 2) end

--- A source written in Lua (see tide.query.source).
M.source = query.source

--- A sink written in Lua (see tide.query.sink).
M.sink = query.sink

--- The active streaming queries.
M.queries = query.queries

--- Drive the event loop until every query has terminated.
M.run = query.run

--- Call `fn(query, progress)` after every batch of every query; returns a
-- function that removes it. A listener's error is reported on stderr and
-- does not fail the batch (it is committed).
-- @function on_progress
M.on_progress = query.on_progress

--- Serve the metrics endpoint, the JSON API and the dashboard:
-- `tide.ui{ listen = "127.0.0.1:4040" }` (see tide.ui.start).
-- @function ui
M.ui = ui.start

--- Engine settings, for the whole process: `tide.config{ workers = N }`
-- sets them, `tide.config()` returns them as a table.
--
-- `workers` (an integer from 1 to 256): the threads that decode text
-- records (the file source, `tide.read` and the Kafka source's values;
-- csv with `multi_line` is decoded on one thread) in parallel parts, the
-- calling thread being one of them. Its default is the `TIDE_WORKERS`
-- environment variable, else the number of CPUs. Results never depend on
-- it: the parts are joined in order into the batch one thread would have
-- made. Everything else (operators, aggregation, state, sinks, Lua
-- functions) runs on the calling thread.
-- @tparam[opt] table opts `{ workers = N }`
-- @treturn table the settings, `{ workers = N }`
function M.config(opts)
  if opts ~= nil then
    if type(opts) ~= "table" then error("tide.config: expected a table of settings, got " .. type(opts), 2) end
    for k in pairs(opts) do
      if k ~= "workers" then
        error(string.format("tide.config: unknown setting '%s' (allowed: workers)", tostring(k)), 2)
      end
    end
    local w = opts.workers
    if w ~= nil then
      if math.type(w) ~= "integer" or w < 1 or w > 256 then
        error(string.format("tide.config: 'workers' must be an integer from 1 to 256, got %s", tostring(w)), 2)
      end
      core.workers(w)
    end
  end
  return { workers = core.workers() }
end

return M
