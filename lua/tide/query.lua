--- Streaming queries: the micro-batch engine (DESIGN.md "Stream execution",
-- after Spark Structured Streaming's MicroBatchExecution).
--
-- A query runs its frame's plan once per micro-batch. Per trigger:
--
--   1. ask each source for its latest offset (from the end of the last
--      batch); nothing new: wait for the next trigger;
--   2. write offset-log entry N (each source's start and end offsets, the
--      watermark in force, the batch timestamp) durably to the checkpoint;
--   3. get the batch's rows from each source for (start, end];
--   4. run the plan over them: the same operators as static frames; a
--      streaming aggregation keeps its groups across batches;
--   5. hand the result to the sink as add_batch(N, ...), which is
--      idempotent per batch id;
--   6. commit: the changed state, commit-log entry N and the next watermark
--      in ONE LMDB transaction; then tell the sources commit(end).
--
-- With workers > 1 a stateful batch's commit is overlapped (Query:_commit
-- and _commit_start): its transaction is filled on a thread while the
-- sink runs, and where the next batch would start at once (trigger 0 or
-- available_now, replayable sources) batch N+1's offset entry goes into
-- commit N's transaction, which completes while N+1 is fetched and
-- executed (fetched only when no source writes in get_batch: pure_fetch);
-- the order in which things become durable is the one above.
--
-- On start, an offset entry without its commit entry is re-run with exactly
-- its logged offsets and timestamp, on the state as of N-1 (the state store
-- only ever holds committed batches); a committed N continues at N+1. So a
-- replayable source and an idempotent sink give exactly-once output
-- whatever instant the process dies at.
--
-- Everything runs on the process's one libuv loop (tide.runtime): a query
-- is a chain of one-shot timers and source wake-ups, each running at most
-- one micro-batch, so several queries (and the REPL) interleave. Queries
-- advance only while the loop runs: in process_all_available, await,
-- tide.run, or the REPL.
--
-- A query compiles its frame into its own plan instance (tide.exec): the
-- frame is never changed, so several queries may run one frame at once.
-- One trigger is a sequence of named phases (Query:_step): plan offsets,
-- fetch, execute, deliver, commit, then the progress report.
--
-- @module tide.query

local core = require "tide.core"
local util = require "tide.util"
local errors = require "tide.errors"
local frame = require "tide.frame"
local plan = require "tide.plan"
local exec = require "tide.exec"
local store = require "tide.store"
local connector = require "tide.connector"
local runtime = require "tide.runtime"
local scaleout = require "tide.scaleout"

local M = {}

local format, concat = string.format, table.concat
local json = util.json_encode
local clock = core.clock_ms

local Query = {}
Query.__index = Query

local LuaSource = {}
LuaSource.__index = LuaSource
local LuaSink = {}
LuaSink.__index = LuaSink

local POLL_MS = 50        -- idle polling of sources that cannot wake the query
local KEEP_LOGS = 100     -- offset/commit entries kept, as Spark's minBatchesToRetain
local KEEP_PROGRESS = 100 -- reports kept for recent_progress

local active = {} -- the running queries, in start order
local listeners = {} -- functions(query, progress) called after every batch
local signals     -- SIGINT/SIGTERM handles while a query runs

-- ------------------------------------------------------------------------
-- Sources
-- ------------------------------------------------------------------------

local source_fields = {
  schema = "any", latest_offset = "function", get_batch = "function", commit = "function", stop = "function",
  lag = "function", description = "string", replayable = "boolean",
}

--- A source written in Lua: `tide.source{ schema =, latest_offset =
-- function(self, start) end, get_batch = function(self, start, stop) return
-- rows end [, commit =] [, stop =] [, lag =] [, description =] [, replayable =] }`
-- (`lag(self, offset)`: connectors/README.md).
-- Other fields are the source's own (its state). Offsets are any JSON
-- values; `start` is nil for the first batch.
function M.source(def)
  if type(def) ~= "table" then error("tide.source: expected a table, got " .. type(def), 2) end
  for name, ty in pairs(source_fields) do
    local v = def[name]
    if v ~= nil and ty ~= "any" and type(v) ~= ty then
      error(format("tide.source: field '%s' must be a %s, got %s", name, ty, type(v)), 2)
    end
  end
  if def.schema == nil then error("tide.source: field 'schema' is required (a DDL string or array form)", 2) end
  if def.latest_offset == nil then error("tide.source: field 'latest_offset' is required (a function)", 2) end
  if def.get_batch == nil then error("tide.source: field 'get_batch' is required (a function)", 2) end
  local s, msg = core.schema(def.schema)
  if not s then error("tide.source: bad schema: " .. msg, 2) end
  return setmetatable({ def = def, schema = s }, LuaSource)
end

-- The engine's view of a Lua source (connectors/README.md's protocol).
local function lua_source_instance(src)
  local def, schema = src.def, src.schema
  local inst = { description = def.description or "LuaSource", replayable = def.replayable ~= false }
  function inst.latest_offset(_, start) return def:latest_offset(start) end
  function inst.get_batch(_, start, stop)
    local rows = def:get_batch(start, stop)
    if rows == nil then return {} end
    if type(rows) ~= "table" then error(format("get_batch returned a %s, expected an array of rows", type(rows)), 0) end
    if #rows == 0 then return {} end
    local b, msg = core.rows_batch(schema, rows)
    if not b then error("get_batch returned a row that does not fit the source's schema: " .. msg, 0) end
    return { b }
  end
  if def.commit then function inst.commit(_, stop) def:commit(stop) end end
  if def.stop then function inst.stop() def:stop() end end
  if def.lag then function inst.lag(_, off) return def:lag(off) end end
  return inst
end

--- A streaming frame over a source: `read_stream("file", opts)` names a
-- connector (connectors/); `read_stream(tide.source{...})` takes a Lua
-- source.
function M.read_stream(kind, opts, level)
  level = (level or 1) + 1
  if getmetatable(kind) == LuaSource then
    if opts ~= nil then error("read_stream: a Lua source takes no options", level) end
    return frame.stream_source("LuaSource", kind.schema, { lua = kind })
  end
  if type(kind) ~= "string" then
    error("read_stream: bad argument #1: expected a source name or a tide.source, got " .. type(kind), level)
  end
  return connector.stream_frame(kind, runtime.connector("source", kind, level), opts, level)
end

--- A streaming frame over a topic (the `topic` source of connectors/topic.lua).
-- (A method of tide stores, given here: a stream is this layer's.)
-- @string name the topic
-- @tab[opt] opts `starting_offset` ("earliest", "latest", or `{ [partition] = offset }`),
-- `max_records_per_trigger`
-- @return a streaming frame
local Store = store.Store

function Store:read_stream(name, opts)
  store.check(self, 2)
  if type(name) ~= "string" then error("read_stream: bad argument #1: expected a topic name, got " .. type(name), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("read_stream: bad argument #2: expected an option table, got " .. type(opts), 2)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.store, o.topic = self, name
  return M.read_stream("topic", o, 2)
end

-- ------------------------------------------------------------------------
-- Sinks
-- ------------------------------------------------------------------------

--- A sink written in Lua: `tide.sink{ add_batch = function(self, batch_id,
-- rows, mode) end [, stop =] [, description =] }`; add_batch must be
-- idempotent per batch id (called again with the same id after a crash).
function M.sink(def)
  if type(def) ~= "table" then error("tide.sink: expected a table, got " .. type(def), 2) end
  if type(def.add_batch) ~= "function" then
    error("tide.sink: field 'add_batch' is required (a function(self, batch_id, rows, mode))", 2)
  end
  if def.stop ~= nil and type(def.stop) ~= "function" then error("tide.sink: field 'stop' must be a function", 2) end
  if def.as ~= nil and def.as ~= "rows" and def.as ~= "frame" then
    error(format("tide.sink: field 'as' must be one of rows, frame, got %s", tostring(def.as)), 2)
  end
  return setmetatable({ def = def }, LuaSink)
end

local rows_of = connector.rows_of

local function lua_sink_instance(sink)
  local def = sink.def
  local inst = { description = def.description or "LuaSink" }
  function inst.add_batch(_, id, batches, mode) def:add_batch(id, rows_of(batches), mode) end
  if def.as == "frame" then -- the batch as a static frame
    local batch_frame = connector.batch_frame
    function inst.add_batch(_, id, batches, mode, schema) def:add_batch(id, batch_frame(batches, schema), mode) end
  end
  if def.stop then function inst.stop() def:stop() end end
  if def.lag then function inst.lag(_, off) return def:lag(off) end end
  return inst
end

-- ------------------------------------------------------------------------
-- Options
-- ------------------------------------------------------------------------

local query_spec = {
  mode = { type = "string", values = { "append", "update", "complete" }, default = "append" },
  trigger = "any",
  checkpoint = "string",
  name = "string",
  no_data_batches = { type = "boolean", default = true },
  multiple_watermark_policy = { type = "string", values = { "min", "max" }, default = "min" },
  sync = { type = "boolean", default = true },
  late_rows = "table",
  state_memory_limit = { type = "size", min = 1, default = "256MB" },
  -- the processing-time clock (ms since the epoch) of batch timestamps and
  -- processing-time timeouts; for tests, as Spark's StreamManualClock
  clock = "function",
}

-- trigger -> { kind = "interval", ms = n } | { kind = "once" } | { kind = "available_now" }
local function parse_trigger(t, what, level)
  if t == nil or t == 0 or t == "0" then return { kind = "interval", ms = 0 } end
  if t == "once" or t == "available_now" then return { kind = t } end
  local ok, ms = pcall(util.duration, t, what .. ": option 'trigger'", 1)
  if not ok then
    error(format("%s: option 'trigger' must be a duration (\"1 second\", ms), 0, \"once\" or \"available_now\", got %s",
      what, type(t) == "string" and "'" .. t .. "'" or tostring(t)), level + 1)
  end
  return { kind = "interval", ms = ms }
end

-- Split the user's table into the query's options and the sink's.
local function split_options(opts, sink_spec, what, level)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table, got " .. type(opts), level + 1) end
  local q, s = {}, {}
  for k, v in pairs(opts) do
    if query_spec[k] ~= nil then
      q[k] = v
    elseif sink_spec and sink_spec[k] ~= nil then
      s[k] = v
    else
      local names = {}
      for n in pairs(query_spec) do names[#names + 1] = n end
      for n in pairs(sink_spec or {}) do names[#names + 1] = n end
      table.sort(names)
      error(format("%s: unknown option '%s' (allowed: %s)", what, tostring(k), concat(names, ", ")), level + 1)
    end
  end
  local ok, qo = pcall(util.check_options, q, query_spec, what, 1)
  if not ok then error(util.strip_position(qo), level + 1) end
  local so = s
  if sink_spec then
    local ok2, r = pcall(util.check_options, s, sink_spec, what, 1)
    if not ok2 then error(util.strip_position(r), level + 1) end
    so = r
  end
  return qo, so
end

-- ------------------------------------------------------------------------
-- Plans
-- ------------------------------------------------------------------------

local walk = plan.walk

-- Spark's UnsupportedOperationChecker: what a streaming plan may hold.
-- Returns the sources, the stateful operators and the watermark nodes,
-- each in plan order (sources first).
local function analyze(node, mode, what, level)
  local sources, stateful, marks = {}, {}, {}
  local below = {} -- node -> the streaming aggregation under it, if any
  local below_join = {} -- node -> the stream-stream join with a time range under it, if any
  -- the walk's errors carry no position: analyze raises them at its caller's
  local ok, err = pcall(walk, node, function(n)
    if n.stream then sources[#sources + 1] = n end
    if n.op == "watermark" and not n.static then marks[#marks + 1] = n end
    if (n.op == "sort" or n.op == "limit") and not n.static and mode ~= "complete" then
      error(format("%s: %s on a streaming frame is supported only after an aggregation in complete mode " ..
        "(as in Spark), not in %s mode", what, n.op == "sort" and "order_by" or "limit", mode), 0)
    end
    local under, join
    for _, c in ipairs(n.inputs or { n.input, n.right }) do
      under = under or below[c]
      join = join or below_join[c]
    end
    if n.stateful and not n.static and join then
      -- Spark's checkStreamingQueryGlobalWatermarkLimit (before 3.4)
      error(format("%s: %s after %s is not supported (as in Spark before 3.4): a join with a time range " ..
        "condition can emit rows older than the watermark, which the later stateful operator would drop as late; " ..
        "run it per batch in a foreach_batch sink, or write the join to a topic and read that in a second query",
        what, n.label, join.label), 0)
    end
    if n.stateful == "join" and not n.static and mode ~= "append" then
      error(format("%s: a join between two streams is supported only in append mode (as in Spark), not in %s mode",
        what, mode), 0)
    end
    if n.stateful and not n.static then
      if under and (under.stateful == "process" or n.stateful == "process") then
        error(format("%s: %s after %s is not supported: one of them per query (write the first one's output " ..
          "to a topic and read that in a second query)", what, n.label, under.label), 0)
      elseif under and n.stateful ~= "dedup" and n.stateful ~= "join" then
        error(format("%s: multiple streaming aggregations in one query are not supported (as in Spark): %s " ..
          "comes after %s; to aggregate the result again, do it per batch in a foreach_batch sink, or write the " ..
          "first aggregation to a topic and aggregate that topic in a second query", what, n.label, under.label),
          0)
      elseif under then
        error(format("%s: %s after a streaming aggregation is not supported (as in Spark before 3.4); " ..
          "put it before the aggregation", what, n.label), 0)
      end
      stateful[#stateful + 1] = n
      if n.stateful == "join" then
        if n.join_has_range then join = n end
      elseif n.stateful ~= "dedup" then
        under = n
      end
    end
    below[n] = under
    below_join[n] = join
  end)
  if not ok then error(err, level + 1) end
  local aggs = 0
  for _, n in ipairs(stateful) do
    if n.stateful ~= "dedup" and n.stateful ~= "join" then aggs = aggs + 1 end
  end
  if aggs > 1 then
    error(what .. ": multiple streaming aggregations in one query are not supported (as in Spark)", level + 1)
  end
  if mode == "complete" and aggs == 0 then
    error(what .. ": complete mode needs a streaming aggregation (it outputs the whole result table every batch)",
      level + 1)
  end
  for _, n in ipairs(stateful) do
    local msg = n.check and n.check(mode, #marks > 0)
    if msg then error(what .. ": " .. msg, level + 1) end
  end
  return sources, stateful, marks
end

-- ------------------------------------------------------------------------
-- Stateful operators
-- ------------------------------------------------------------------------
--
-- A plan node with `stateful` set (aggregate, dedup, session, process:
-- frame.lua, session.lua, stateful.lua) keeps state across batches in the
-- checkpoint database `<prefix><k>` (k: its place among the plan's
-- stateful nodes, sources first). The node describes it:
--   due(mode): a moved watermark gives it output or eviction to do (the
--     engine then runs a no-data batch);
--   check(mode, has_watermark): nil, or the analysis error;
--   due_at(state) (optional): the processing time (ms) at which it needs a
--     batch even without data (process's processing-time timeouts);
--   state_layout (optional): what its records depend on, for the
--     checkpoint's fingerprint.
-- Its operator (tide.exec) makes the state this query keeps for it:
--   new_state() -> st: st.restore(key, blob) for each stored record,
--     st.take_changes() -> the changes since the last st.clear_changes():
--     a change set (core.state_changes(), core/l_ckpt.h; aggregations make
--     theirs in C) or puts {{key, blob}...}, dels {key...} (keys: strings,
--     or integers stored as 8 bytes big-endian), st.rows(), st.bytes();
--     a keyed state (aggregate, dedup) also bounds its memory
--     (state_memory_limit): st.attach(ck, name, limit) before the restore,
--     st.full() (stop restoring), st.restored(), st.take_index() -> the
--     name and change set of its index (or nil) for the commit, and
--     st.memory() -> this batch's figures for the progress report;
-- and runs with the context of the micro-batch (exec.lua's header): the
-- state, the mode, this batch's watermark (eviction and emission), the
-- previous batch's (late rows), the metrics and the late-row sink.
-- `node.event_time` (every node) names the output column that carries
-- the watermark.

-- ------------------------------------------------------------------------
-- Checkpoint helpers
-- ------------------------------------------------------------------------

-- The checkpoint's fingerprint of a plan: each source's kind, each
-- stateful operator's kind, label and state layout.
local function fingerprint(sources, stateful)
  local parts = {}
  for _, n in ipairs(sources) do parts[#parts + 1] = "source " .. (n.stream.kind or "lua") end
  for _, n in ipairs(stateful) do
    parts[#parts + 1] = format("%s %s%s", n.stateful, n.label, n.state_layout and (" => " .. n.state_layout) or "")
  end
  return concat(parts, "; ")
end

local function random_id()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16) or tostring(os.time()) .. tostring({}) .. tostring(clock())
  if f then f:close() end
  local hex = bytes:gsub(".", function(c) return format("%02x", c:byte()) end):sub(1, 32)
  return format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16), hex:sub(17, 20), hex:sub(21, 32))
end

local function remove_tree(dir)
  local entries = core.glob(dir .. "/*") or {}
  for _, p in ipairs(core.glob(dir .. "/.*") or {}) do entries[#entries + 1] = p end
  for _, p in ipairs(entries) do
    local base = p:match("([^/]+)/?$")
    if base ~= "." and base ~= ".." then
      if p:sub(-1) == "/" then remove_tree(p:sub(1, -2)) else os.remove(p) end
    end
  end
  os.remove(dir)
end

local TEMP_SUFFIX = "-tide-checkpoint"

-- Remove the temporary checkpoints that processes which ended without
-- removing theirs (SIGKILL, a second Ctrl-C, os.exit) left in `base`: those
-- whose query.lock names a process and is no longer locked (the lock goes
-- with the process that held it). A checkpoint being created (no pid yet)
-- or in use (locked) is left alone.
local function sweep_temp_dirs(base)
  for _, p in ipairs(core.glob(base .. "/*" .. TEMP_SUFFIX) or {}) do
    p = p:gsub("/$", "")
    local f = io.open(p .. "/query.lock", "r")
    local pid = f and math.tointeger(tonumber(f:read("l") or ""))
    if f then f:close() end
    if pid and pid > 0 then
      -- a live query holds the checkpoint's lock: opening it fails (EBUSY)
      local c = core.checkpoint(p)
      if c then
        c:close()
        remove_tree(p)
      end
    end
  end
end

-- A temporary checkpoint directory (for sinks that do not need one).
local function temp_dir()
  local name = os.tmpname()
  os.remove(name)
  sweep_temp_dirs(name:match("^(.*)/[^/]*$") or ".")
  return name .. TEMP_SUFFIX
end

-- The checkpoint database of the k-th stateful operator (FORMAT.md).
local DB_PREFIX = { aggregate = "agg", dedup = "dedup", session = "session", join = "join" }
local function state_name(node, k) return (DB_PREFIX[node.stateful] or node.stateful) .. k end

-- ------------------------------------------------------------------------
-- Signals
-- ------------------------------------------------------------------------

--- Whether running queries handle SIGINT and SIGTERM (below). The REPL
-- sets it to false: there Ctrl-C interrupts the chunk at the prompt, not
-- the queries.
M.handle_signals = true

-- The first SIGINT or SIGTERM stops every query after its batch in
-- flight (committed); a second one, even in the middle of a long batch,
-- exits at once with status 130 (core.escalate_signals, in C: the loop
-- does not run during a batch): what is committed stays, the batch in
-- flight runs again on the next start.
local function install_signals()
  if signals or not M.handle_signals then return end
  local loop = runtime.loop()
  local function stop_all()
    for _, q in ipairs({ table.unpack(active) }) do q:stop() end
  end
  signals = { loop:signal("SIGINT", stop_all), loop:signal("SIGTERM", stop_all) }
  core.escalate_signals(true, 130)
end

local function remove_signals()
  if signals and #active == 0 then
    core.escalate_signals(false)
    for _, h in ipairs(signals) do h:close() end
    signals = nil
  end
end

-- ------------------------------------------------------------------------
-- Starting a query
-- ------------------------------------------------------------------------

--- Start a streaming query (Frame:write_stream).
function M.start(f, sink, opts, level)
  level = (level or 1) + 1
  local root = f._node
  local sink_name = type(sink) == "string" and sink or type(sink) == "function" and "foreach_batch" or
    getmetatable(sink) == LuaSink and "LuaSink" or nil
  if not sink_name then
    error("write_stream: bad argument #1: expected a sink name, a function(batch_id, rows) or a tide.sink, got " ..
      type(sink), level)
  end
  local what = format("write_stream(%s)", sink_name)
  if root.static then
    error(what .. ": a static frame is not a stream (use collect, show or batches; streams come from read_stream)",
      level)
  end
  -- scale-out (issue 15): a query of an application runs as its tasks
  if (type(opts) == "table" and opts.application_id ~= nil) or scaleout.defaults then
    return scaleout.start(f, sink, opts, what, level, M._internals)
  end
  local descriptor = type(sink) == "string" and runtime.connector("sink", sink, level) or nil
  local o, sink_opts = split_options(opts, descriptor and descriptor.options, what, level)
  if type(sink) == "function" then
    descriptor, sink_opts = runtime.connector("sink", "foreach_batch", level), { fn = sink }
  end
  local trigger = parse_trigger(o.trigger, what, level)
  local sources, stateful, marks = analyze(root, o.mode, what, level)
  local late
  if o.late_rows ~= nil then
    local okl, lo = pcall(util.check_options, o.late_rows, { topic = "string", store = "any" },
      what .. ": late_rows", 1)
    if not okl then error(util.strip_position(lo), level) end
    if not lo.topic then
      error(what .. ": late_rows: option 'topic' is required (the dead-letter topic's name)", level)
    end
    for _, n in ipairs(stateful) do
      if n.event_time or (n.input and n.input.event_time) then late = late or { node = n, opts = lo } end
    end
    if late and late.node.stateful == "join" then
      error(what .. ": late_rows: a stream-stream join drops its late rows and counts them, but does not hand " ..
        "them on (its two sides have different columns)", level)
    end
    if not late or #marks == 0 then
      error(what .. ": late_rows: no stateful operator of this query has a watermark, so no row can be late", level)
    end
  end
  if o.name then
    for _, q in ipairs(active) do
      if q._name == o.name then error(format("%s: a query named '%s' is already active", what, o.name), level) end
    end
  end
  if descriptor and descriptor.needs_checkpoint and not o.checkpoint then
    error(format("%s: option 'checkpoint' is required: the %s sink's exactly-once output needs a checkpoint directory",
      what, sink_name), level)
  end

  -- This query's own plan instance: its operators, never the frame's.
  local p = exec.compile(root)
  assert(#p.sources == #sources and #p.stateful == #stateful and #p.marks == #marks, "plan and analysis disagree")
  local q = setmetatable({
    _root = root, _plan = p, _mode = o.mode, _trigger = trigger, _sink_name = sink_name, _opts = o,
    _clock = o.clock and function()
      local t = o.clock()
      if math.type(t) ~= "integer" then error("option 'clock' returned " .. tostring(t) .. ", not integer ms", 0) end
      return t
    end or core.time_now,
    _sources = {}, _ops = {}, _states = {}, _marks = {}, _progress = {}, _idle = 0, _force = 0,
    _active = false, _status = { message = "Initializing", is_data_available = false, is_trigger_active = false },
  }, Query)

  -- The checkpoint: one directory, one LMDB environment.
  local dir, temp = o.checkpoint, false
  if not dir then dir, temp = temp_dir(), true end
  local ck, msg = core.checkpoint(dir, { sync = o.sync })
  if not ck then error(format("%s: %s", what, msg), level) end
  q._ck, q._dir, q._temp = ck, dir, temp
  local ok, err = pcall(function()
    local id = ck:get_meta("query_id")
    if not id then
      id = random_id()
      ck:set_meta("query_id", id)
    end
    q._id = id
    q._name = o.name or ck:get_meta("name")
    if o.name then ck:set_meta("name", o.name) end
    -- What a checkpoint binds a query to: its sources and its stateful
    -- operators with their state layout. Stateless operators may change
    -- between runs (as in Spark: a filter, a projection, a wider input).
    local print_ = fingerprint(sources, stateful)
    local old = ck:get_meta("fingerprint")
    if old and old ~= print_ then
      error(format("checkpoint %s was written by a different query (its sources or stateful operators differ: " ..
        "was [%s], now [%s]); use a new checkpoint directory, or delete this one to start over",
        dir, old, print_), 0)
    end
    if not old then ck:set_meta("fingerprint", print_) end
    ck:set_meta("plan", frame.Frame.explain(f))
  end)
  if not ok then
    ck:close()
    if temp then remove_tree(dir) end
    error(format("%s: %s", what, util.strip_position(err)), level)
  end
  q._sink_opts = sink_opts
  q._late = late

  -- Sources, sink and state; any failure from here closes what was opened.
  ok, err = pcall(q._open, q, sources, stateful, marks, sink, descriptor)
  if not ok then
    q:_close_all()
    err = util.strip_position(err)
    -- a connector that names itself as the call does is not named twice
    if err:sub(1, #what + 2) == what .. ": " then err = err:sub(#what + 3) end
    error(format("%s: %s", what, err), level)
  end
  active[#active + 1] = q
  q._active = true
  install_signals()
  q._status.message = "Waiting for next trigger"
  q:_schedule(0)
  return q
end

-- The output's key columns (an aggregation's groups, window_start for a
-- window), for sinks that upsert on them (postgres); nil without (a global
-- aggregation's one group has no key column).
local function output_keys(node)
  if node.op ~= "aggregate" or node.global then return nil end
  local keys = {}
  for i, f in ipairs(node.key_schema:fields()) do keys[i] = f[1] end
  return keys
end

function Query:_open(sources, stateful, marks, sink, descriptor)
  local ck = self._ck
  local ctx = { loop = runtime.loop(), query_id = self._id, query_name = self._name, checkpoint = self._dir,
    trigger = self._trigger.kind }
  -- the sink's ctx also says what it will get: the output mode, schema and key columns
  local sink_ctx = setmetatable({ mode = self._mode, schema = self._root.schema, keys = output_keys(self._root) },
    { __index = ctx })
  for i, node in ipairs(sources) do
    local c = setmetatable({ index = i }, { __index = ctx })
    local inst
    if node.stream.lua then
      inst = lua_source_instance(node.stream.lua)
    else
      inst = node.stream.descriptor.new(node.stream.opts, c)
    end
    self._sources[i] = { node = node, inst = inst, description = inst.description or node.label }
  end
  if getmetatable(sink) == LuaSink then
    self._sink = lua_sink_instance(sink)
  else
    self._sink = descriptor.new(self._sink_opts, sink_ctx)
  end
  local modes = self._sink.output_modes
  if modes then
    local ok = false
    for _, m in ipairs(modes) do ok = ok or m == self._mode end
    if not ok then
      error(format("%s takes output mode %s, not %s", self._sink.description or self._sink_name,
        concat(modes, " or "), self._mode), 0)
    end
  end
  if self._sink.needs_checkpoint and self._temp then
    error(format("option 'checkpoint' is required: %s needs a checkpoint directory for exactly-once output",
      self._sink.description or self._sink_name), 0)
  end
  for k, node in ipairs(stateful) do
    local st, name = self._plan:new_state(k), state_name(node, k)
    -- bounded memory: a keyed state restores up to its limit, the rest
    -- stays in the checkpoint (st.full)
    if st.attach then st.attach(ck, name, self._opts.state_memory_limit) end
    for key, blob in ck:state(name) do
      local ok, err = pcall(st.restore, key, blob)
      if not ok then
        error(format("checkpoint %s: state of %s (%s): %s", self._dir, node.label, name, util.strip_position(err)), 0)
      end
      if st.full and st.full() then break end
    end
    if st.restored then st.restored() end
    st.clear_changes()
    self._ops[k] = { node = node, state = st, name = state_name(node, k) }
    self._states[k] = st
  end
  -- Late rows to a dead-letter topic: created with the input columns of
  -- the first operator that can drop them, when it does not exist.
  if self._late then
    local lo, input = self._late.opts, self._late.node.input
    local db = lo.store or store.default_store()
    local t = db:has_topic(lo.topic) and db:topic(lo.topic) or
      db:create_topic(lo.topic, { schema = input.fields })
    self._late_topic, self._late_writer = t, format("%s/late_rows", self._id)
  end
  -- Watermarks: one per with_watermark node; the global one (nil without
  -- any) is restored from the logs below; the per-node maxima are not.
  for i, node in ipairs(marks) do self._marks[i] = { node = node } end
  if #marks > 0 then self._watermark, self._late_watermark = 0, 0 end

  -- Where the logs say we are.
  local last_off, last_commit = ck:latest()
  self._next = 0
  self._ends = {}
  if last_off ~= nil then
    local entry = assert(util.json_decode(ck:offsets(last_off)), "bad offset log entry")
    -- SEMANTICS.md s.8: after a committed N, N+1 runs with the larger of
    -- offset N's and commit N's watermarks; an uncommitted N re-runs with
    -- its own. Late rows are judged on the previous batch's watermark.
    local has = self._watermark ~= nil
    -- A logged watermark is an integer in the valid timestamp range (its
    -- JSON number reads back exactly); anything else is a damaged entry.
    local function logged(e, key, log, n)
      local w = e and e[key]
      if w == nil then return 0 end
      if math.type(w) ~= "integer" or w < util.TS_MIN or w > util.TS_MAX then
        error(format("checkpoint %s: %s %d: watermark %s is not a timestamp in the valid range", self._dir, log, n,
          tostring(w)), 0)
      end
      return w
    end
    if last_commit == last_off then
      self._next = last_off + 1
      for i, s in ipairs(entry.sources or {}) do self._ends[i] = s["end"] end
      local c = util.json_decode(ck:commit_entry(last_commit) or "{}") or {}
      if has then
        self._watermark = math.max(logged(entry, "watermark", "offset log", last_off),
          logged(c, "next_watermark", "commit log", last_commit))
        self._late_watermark = logged(entry, "watermark", "offset log", last_off)
        -- A no-data batch that was due when the process stopped runs now
        -- (Spark forgets it until new data comes; running it makes a
        -- restarted query's output that of an uninterrupted one).
        if self._opts.no_data_batches and self._watermark > self._late_watermark then
          for _, op in ipairs(self._ops) do
            if op.node.due(self._mode) then self._no_data_due = true end
          end
        end
      end
    else
      self._next = last_off
      self._pending = entry
      local prev = last_off > 0 and util.json_decode(ck:offsets(last_off - 1) or "null") or nil
      for i, s in ipairs(prev and prev.sources or {}) do self._ends[i] = s["end"] end
      if has then
        self._watermark = logged(entry, "watermark", "offset log", last_off)
        self._late_watermark = prev and prev.watermark ~= nil and logged(prev, "watermark", "offset log", last_off - 1)
          or self._watermark
      end
    end
    -- the watermark policy is the checkpoint's, whatever this run's
    -- option says (Spark: "recovery from checkpoints ignores session conf")
    local policy = entry.conf and entry.conf.multiple_watermark_policy
    if policy == "min" or policy == "max" then self._opts.multiple_watermark_policy = policy end
    if #(entry.sources or {}) ~= #self._sources then
      error(format("checkpoint %s has %d sources, this query %d; use a new checkpoint directory",
        self._dir, #(entry.sources or {}), #self._sources), 0)
    end
  end
  for i, s in ipairs(self._sources) do
    if not s.inst.replayable and (self._ends[i] ~= nil or self._pending) then
      io.stderr:write(format("tide: query %s: %s is not replayable: rows it received before the restart are lost\n",
        self._name or self._id, s.description))
      self._ends[i] = nil
      if self._pending then self._pending.sources[i].start, self._pending.sources[i]["end"] = nil, nil end
    end
    if self._ends[i] ~= nil and s.inst.commit then s.inst:commit(self._ends[i]) end
    if s.inst.watch then
      s.inst:watch(function() self:_wake() end)
      s.watching = true
    end
  end
  if self._pending and #self._pending.sources == 0 then self._pending = nil end
end

-- ------------------------------------------------------------------------
-- Running
-- ------------------------------------------------------------------------

-- Run the next trigger as soon as the loop gets to it (a source has data).
function Query:_wake()
  if self._active and self._waiting then self:_schedule(0) end
end

-- Arm the one-shot timer of the next trigger in ms. A 0 ms timer runs in
-- the loop's next iteration, after a poll (core/loop.h): batches back to
-- back still let signals, await's timeout, sockets and the REPL have their
-- turn between two batches.
function Query:_schedule(ms)
  if self._timer then self._timer:close() end
  self._waiting = false
  self._timer = runtime.loop():timer(ms, 0, function()
    self._timer = nil
    self:_tick()
  end)
end

-- The earliest processing time (ms) at which a stateful operator needs a
-- batch even without data (process() with processing-time timeouts:
-- node.due_at(state)), or nil; never under trigger "once".
function Query:_due_at()
  if self._trigger.kind == "once" then return nil end
  local at
  for _, op in ipairs(self._ops) do
    local t = op.node.due_at and op.node.due_at(op.state)
    if t and (not at or t < at) then at = t end
  end
  return at
end

-- Wait for data: sources that watch wake the query; others are polled; a
-- processing-time timeout due later wakes it then.
function Query:_idle_wait()
  local all_watch = #self._sources > 0
  for _, s in ipairs(self._sources) do all_watch = all_watch and s.watching end
  local wait = not all_watch and POLL_MS or nil
  local at = self:_due_at()
  if at then
    local ms = math.max(0, at - self._clock() + 1) -- a timeout fires once the batch time is past it
    wait = wait and math.min(wait, ms) or ms
  end
  if wait then
    self:_schedule(wait)
  elseif self._timer then
    self._timer:close()
    self._timer = nil
  end
  self._waiting = true
end

local function traceback(e)
  return debug.traceback(tostring(e), 2)
end

function Query:_tick()
  if not self._active then return end
  local t = self._trigger
  local started = clock()
  self._status.is_trigger_active = true
  self._in_batch = true
  local ok, ran = xpcall(self._step, traceback, self)
  self._in_batch = false
  self._status.is_trigger_active = false
  if not ok then return self:_fail(ran) end
  if self._stop_requested then return self:_terminate() end
  if not ran and self:_exhausted() then return self:_terminate("Finished") end
  if t.kind == "once" or (t.kind == "available_now" and not ran) then return self:_terminate("Finished") end
  if self._force > 0 or t.kind == "available_now" then
    if ran then self:_schedule(0) else self:_idle_wait() end
    return
  end
  if t.ms == 0 then
    if ran then self:_schedule(0) else self:_idle_wait() end
  else
    -- Processing-time triggers fire at multiples of the interval; a batch
    -- that overran its interval is followed at once, as in Spark.
    local elapsed = clock() - started
    self:_schedule(math.max(0, math.floor(t.ms - elapsed)))
    self._status.message = "Waiting for next trigger"
  end
end

-- True when every source is finite and has nothing after what this query
-- processed (connectors/README.md: `exhausted`): the query is finished.
function Query:_exhausted()
  if #self._sources == 0 then return false end
  for i, s in ipairs(self._sources) do
    if not (s.inst.exhausted and s.inst:exhausted(self._ends[i])) then return false end
  end
  return true
end

-- Offsets equal when their canonical JSON is.
local function same(a, b) return json(a) == json(b) end

-- The global watermark after a batch: exec.advance_watermark's rule.
function Query:_advance_watermark(stats)
  self._watermark = exec.advance_watermark(self._marks, self._marks, stats, self._opts.multiple_watermark_policy,
    self._watermark)
end

-- Append the late rows of batch N to the late_rows topic, once per batch
-- (the writer's sequence is the batch id: a re-run is skipped).
function Query:_write_late(N, batches)
  self._late_topic:append_batches(batches, { writer = self._late_writer, seq = N })
end

-- ------------------------------------------------------------------------
-- The phases of one micro-batch
-- ------------------------------------------------------------------------
--
-- A batch `b` carries what the phases hand on: its id N, its offset-log
-- entry, per source the start and end offsets, the fetched input batches,
-- the output batches, the late rows, the operators' metrics and event-time
-- figures, and the clock at each phase's end (for the progress report).
-- b:release() closes every batch it still holds, whatever phase failed.

local Batch = {}
Batch.__index = Batch

function Batch:release()
  for _, list in ipairs(self.inputs) do
    for _, x in ipairs(list) do x:close() end
  end
  -- outputs the plan does not own are the inputs' (closed above) or a
  -- static frame's, which later batches read again
  if self.owned then
    for _, x in ipairs(self.outputs) do x:close() end
  end
  for _, x in ipairs(self.late_rows) do x:close() end
  self.inputs, self.outputs, self.late_rows = {}, {}, {}
end

-- The offset-log entry of batch N after `starts` (each source's end of
-- the last batch): each source's latest offset, or nil when there is
-- nothing to run (no new data and no no-data batch due). `ahead`: planned
-- at batch N-1's commit (Query:_commit): nothing is counted as idle, and
-- a source that fails is left for the next trigger to report.
function Query:_plan_entry(N, starts, ahead)
  local ends, any = {}, false
  for i, s in ipairs(self._sources) do
    local ok, e = pcall(s.inst.latest_offset, s.inst, starts[i])
    if not ok then
      if ahead then return nil end
      error(format("source %s: %s", s.description, util.strip_position(e)), 0)
    end
    ends[i] = e
    if e ~= nil and not same(e, starts[i]) then any = true end
  end
  if not ahead then self._status.is_data_available = any end
  -- SEMANTICS.md s.5: without new data, a batch still runs when the
  -- watermark moved and a stateful operator has output or eviction due
  -- (a no-data batch: its own id and log entries, no input), or when a
  -- processing-time timeout has passed (as Spark's flatMapGroupsWithState
  -- runs batches for them); never under trigger "once".
  local at = self:_due_at()
  local timed_out = at ~= nil and at < self._clock()
  if not any and not timed_out and not (self._no_data_due and self._trigger.kind ~= "once") then
    if not ahead then
      self._idle = self._idle + 1
      self._status.message = "Waiting for data to arrive"
    end
    return nil
  end
  local list = {}
  for i, s in ipairs(self._sources) do
    if not any then ends[i] = starts[i] end
    list[i] = { description = s.description, start = starts[i], ["end"] = ends[i] }
  end
  return { v = 1, batch_id = N, timestamp = self._clock(), watermark = self._watermark, sources = list,
    conf = { multiple_watermark_policy = self._opts.multiple_watermark_policy } }
end

-- Phase 1, plan offsets: the logged entry of a batch to re-run (or planned
-- and logged with the last commit), or each source's latest offset after
-- the last batch's end, logged durably as entry N before anything is read.
-- Returns the batch, or nil when there is nothing to run.
function Query:_plan_offsets()
  local N = self._next
  local entry = self._pending
  if not entry then
    entry = self:_plan_entry(N, self._ends, false)
    if not entry then return nil end
    self._ck:write_offsets(N, json(entry))
  end
  local starts, ends = {}, {}
  for i, s in ipairs(entry.sources) do starts[i], ends[i] = s.start, s["end"] end
  self._pending = nil
  self._no_data_due = false
  self._status.message = "Processing new data"
  return setmetatable({ id = N, entry = entry, watermark = entry.watermark, starts = starts, ends = ends,
    inputs = {}, counts = {}, extra = {}, total = 0, outputs = {}, late_rows = {}, t = {} }, Batch)
end

-- Phase 2, fetch: each source's batches for (start, end].
function Query:_fetch(b)
  for i, s in ipairs(self._sources) do
    local list = {}
    if b.ends[i] ~= nil and not same(b.ends[i], b.starts[i]) then
      local ok, got, extra = pcall(s.inst.get_batch, s.inst, b.starts[i], b.ends[i], b.id)
      if not ok then error(format("batch %d: source %s: %s", b.id, s.description, util.strip_position(got)), 0) end
      list = got or {}
      b.extra[i] = extra
    end
    b.inputs[i] = list
    local n = 0
    for _, x in ipairs(list) do n = n + x:nrows() end
    b.counts[i] = n
    b.total = b.total + n
  end
end

-- Phase 3, execute: the plan instance over the inputs. Stateful operators
-- use the query's state, with this batch's watermark for eviction and the
-- previous batch's for late rows (Spark 3.4+, SEMANTICS.md s.2).
function Query:_execute(b)
  local late = b.late_rows
  local ok, outputs, info = pcall(self._plan.execute, self._plan, b.inputs, {
    mode = self._mode, watermark = b.watermark, late_watermark = b.watermark and self._late_watermark,
    timestamp = b.entry.timestamp,
    late = self._late_topic and function(x) late[#late + 1] = x end or nil, states = self._states,
  })
  if not ok then error(format("batch %d: %s", b.id, tostring(outputs)), 0) end
  b.outputs, b.owned, b.metrics, b.stats = outputs, info.owned, info.metrics, info.stats
end

-- Phase 4, deliver: the late rows, then the sink (both idempotent per
-- batch id).
function Query:_deliver(b)
  if #b.late_rows > 0 then
    local ok, err = pcall(self._write_late, self, b.id, b.late_rows)
    if not ok then error(format("batch %d: late rows: %s", b.id, util.strip_position(err)), 0) end
  end
  local outputs = b.outputs
  b.out_rows = 0
  for _, x in ipairs(outputs) do b.out_rows = b.out_rows + x:nrows() end
  local deferred = self:_may_defer(b)
  local ok, err = xpcall(deferred and self._sink.add_batch_start or self._sink.add_batch, debug.traceback,
    self._sink, b.id, outputs, self._mode, self._root.schema)
  if ok and deferred then b.deferred, b.after = true, err end
  if not ok then
    b.outputs = {} -- a sink that failed may hold them: left to the collector
    error(format("batch %d: sink %s: %s", b.id, self._sink.description or self._sink_name, tostring(err)), 0)
  end
end

-- The deferred sink (workers > 1): may batch b's sink write run on a
-- thread of its own while the loop thread goes on with the next batch?
-- Only for a sink that can (add_batch_start and add_batch_finish:
-- connectors/README.md; the topic sink), in the pipeline (its commit
-- overlapped and the next batch planned with it: Query:_may_plan_ahead),
-- and with output batches that are the plan's own (the sink takes them).
-- Commit N's gate opens as before (Query:_commit), but its thread commits
-- only once the write is done and durable (ck:commit_open's third
-- argument, core/ckpt.h tide_ckpt_commit_after), and the loop thread
-- waits for both before the next batch reaches the sink.
function Query:_may_defer(b)
  local sink = self._sink
  return sink.add_batch_start ~= nil and sink.add_batch_finish ~= nil and b.async == true and b.owned == true
    and self:_may_plan_ahead(b)
end

-- Wait for batch b's deferred sink write (Query:_deliver): raises as a
-- failing add_batch does, naming the batch and the sink.
function Query:_sink_finish(b)
  b.deferred = nil
  local ok, err = xpcall(self._sink.add_batch_finish, debug.traceback, self._sink, b.id)
  if not ok then
    error(format("batch %d: sink %s: %s", b.id, self._sink.description or self._sink_name, tostring(err)), 0)
  end
end

-- Each stateful operator's changes of batch b (b.changes, by state name;
-- b.totals: its rows), taken from the operators.
function Query:_take_changes(b)
  local changes = {}
  b.totals = {}
  for k, op in ipairs(self._ops) do
    local puts, dels = op.state.take_changes()
    changes[op.name] = dels == nil and puts or { put = puts, del = dels }
    if op.state.take_index then
      local index, ix = op.state.take_index()
      if ix then changes[index] = ix end
    end
    b.totals[k] = op.state.rows()
  end
  b.changes = changes
end

-- Change sets made in C hold a batch's records: free them now, not when
-- the collector (which does not see that memory) gets to them.
local function free_changes(b)
  for _, cs in pairs(b.changes or {}) do
    if type(cs) == "userdata" then cs:free() end
  end
  b.changes = nil
end

-- Phase 5 begun early (workers > 1, a stateful plan): the checkpoint's
-- write transaction for batch N is begun and its state changes written
-- on a thread of its own (ck:commit_start, core/ckpt.h) while the loop
-- thread delivers batch N to the sink; _commit then opens its gate. What
-- recovery relies on is unchanged: the changes sit in an uncommitted
-- LMDB transaction (a crash or a failed sink leaves nothing of them), and
-- commit entry N with the states becomes durable only after the sink's
-- add_batch returned, as before; offset entry N was durable before. Only
-- the CPU work of the puts overlaps the sink's (and its fsyncs).
function Query:_commit_start(b)
  if #self._ops == 0 or core.workers() < 2 then return end
  self:_take_changes(b)
  self._ck:commit_start(b.id, b.changes)
  b.async = true
end

-- The commit of a batch that failed before it: cancelled (nothing of it
-- written), its change sets freed.
function Query:_drop_commit(b)
  if b.deferred then pcall(self._sink_finish, self, b) end -- its write ends first (durable or not: not committed)
  if b.async then
    b.async = nil
    self._ck:commit_cancel()
  end
  free_changes(b)
end

-- May batch N+1 be planned, and its offsets logged, with batch N's commit
-- (the pipeline, Query:_commit)? Only where the next batch would start at
-- once anyway and could be replayed: workers > 1 and a stateful plan (the
-- overlapped commit), a trigger of 0 or available_now, no stop asked for,
-- and every source replayable (a restart re-runs a logged batch, which a
-- source that cannot replay would lose).
function Query:_may_plan_ahead(b)
  if not b.async or self._stop_requested then return false end
  local t = self._trigger
  if not (t.kind == "available_now" or (t.kind == "interval" and t.ms == 0)) then return false end
  local pure = true
  for _, s in ipairs(self._sources) do
    if not s.inst.replayable then return false end
    pure = pure and s.inst.pure_fetch == true
  end
  self._pure_fetch = pure
  return #self._sources > 0
end

-- Phase 5, commit: state changes, commit entry and next watermark in one
-- transaction; then the sources learn their committed end. A crash before
-- it re-runs the batch on the state as of the last commit (the in-memory
-- state dies with the process).
--
-- The pipeline (workers > 1, Query:_may_plan_ahead): batch N+1's offsets
-- are planned now, from N's ends, and its offset entry is put into N's
-- commit transaction; the gate opens and the commit completes on its
-- thread while the loop thread already fetches (when no source writes in
-- get_batch: pure_fetch; else it waits for the commit first) and executes
-- N+1 (which writes nothing durable), and waits for it
-- (Query:_commit_join) before it delivers N+1 to the sink. What is durable, in order, is what the
-- protocol has without it: offset entry N+1 is durable together with
-- commit N, so never before it (recovery's rule that an offset entry
-- without a commit re-runs on the state of the commit before holds: a
-- crash leaves either both or neither), and before N+1 runs anything with
-- an effect (dead letters of get_batch, the sink); the sink's N+1 comes
-- after both; sources learn N's end and
-- the progress of N is reported once N is durable. A crash at any point is
-- one the protocol already recovers from: after offset N+1 was written
-- (re-run N+1), or before commit N (re-run N).
function Query:_commit(b)
  local ck, N, batch_wm = self._ck, b.id, b.watermark
  if batch_wm then self:_advance_watermark(b.stats) end
  local entry = json { v = 1, batch_id = N, next_watermark = self._watermark }
  if b.async and (b.deferred or self:_may_plan_ahead(b)) then
    self._next, self._pending = N + 1, nil
    if batch_wm then self._late_watermark = batch_wm end
    -- only a batch with new data (or a timeout due) is planned here: a
    -- no-data batch depends on the operators' state (node.due), which
    -- may be read from the checkpoint only once this commit is done
    local nxt = self:_plan_entry(N + 1, b.ends, true)
    -- with the deferred sink, b.after (add_batch_start's result) makes
    -- the commit wait on its thread for the sink's write, and be
    -- cancelled when the write fails
    ck:commit_open(entry, nxt and json(nxt) or nil, b.after)
    b.async = nil
    self._inflight = b
    b:release() -- the commit's thread holds only b.changes
    -- the operators' change tracking restarts now, as N+1 runs before N's
    -- commit is done (N's changes were taken: b.changes); an operator
    -- that reads the checkpoint from here on (state_memory_limit) waits
    -- for that commit first (core/ckpt.h)
    for _, op in ipairs(self._ops) do op.state.clear_changes() end
    if nxt then self._pending = nxt else self:_note_due(batch_wm) end
    -- the report's figures as of now; its commit time is known at the join
    b.t[5] = clock()
    b.progress = self:_make_progress(b)
    b.gate = clock()
    return
  end
  if b.async then
    b.async = nil
    ck:commit_finish(entry)
  else
    self:_take_changes(b)
    ck:commit(N, entry, b.changes)
  end
  for _, op in ipairs(self._ops) do op.state.clear_changes() end
  self._pending = nil
  self._next = N + 1
  if batch_wm then
    self._late_watermark = batch_wm
    self:_note_due(batch_wm)
  end
  self:_committed(b)
end

-- After a batch that ran with watermark batch_wm: a no-data batch is due
-- when the watermark moved and an operator has output or eviction due.
function Query:_note_due(batch_wm)
  if batch_wm and self._opts.no_data_batches and self._watermark > batch_wm then
    for _, op in ipairs(self._ops) do
      if op.node.due(self._mode) then self._no_data_due = true end
    end
  end
end

-- After batch b's commit is durable: its change sets freed, its batches
-- closed, the sources told its ends, the logs purged now and then.
function Query:_committed(b)
  free_changes(b)
  b:release()
  for i, s in ipairs(self._sources) do
    if s.inst.commit and b.ends[i] ~= nil then
      local ok, err = pcall(s.inst.commit, s.inst, b.ends[i])
      if not ok then error(format("source %s: commit: %s", s.description, util.strip_position(err)), 0) end
    end
    self._ends[i] = b.ends[i]
  end
  local N = b.id
  if N % 10 == 0 and N >= KEEP_LOGS then self._ck:purge(N - KEEP_LOGS + 1) end
end

-- Wait for the pipelined commit in flight (Query:_commit) to be durable,
-- then finish its batch: sources, purge, progress report. Its commit
-- phase counts the loop thread's time in it (opening it and this wait).
--
-- With the deferred sink (Query:_may_defer) the commit's thread waited
-- for the batch's sink write before committing (so output N is durable
-- before commit N, as always); a write that failed cancelled the commit
-- (nothing of batch N is committed), and its error is raised here.
function Query:_commit_join()
  local b = self._inflight
  self._inflight = nil
  local t = clock()
  local ok, err = pcall(self._ck.commit_wait, self._ck)
  if b.deferred then
    -- the sink's result; when its write failed, the commit was cancelled
    -- for it and the sink's error is the one to report
    local sok, serr = pcall(self._sink_finish, self, b)
    if not sok then
      free_changes(b)
      error(serr, 0)
    end
  end
  if not ok then
    free_changes(b)
    error(format("batch %d: %s", b.id, util.strip_position(err)), 0)
  end
  local wait = clock() - t
  self:_committed(b)
  local d, p = b.progress.duration_ms, b.progress
  d.commit = math.floor((b.gate - b.t[4] + wait) * 1000 + 0.5) / 1000
  d.total = math.floor((b.gate + wait - b.t[0]) * 1000 + 0.5) / 1000
  p.processed_rows_per_second = d.total > 0 and p.num_input_rows / d.total * 1000 or 0
  self:_emit(p)
end

-- The progress report of a committed batch, to recent_progress and the
-- listeners.
function Query:_report(b)
  self:_emit(self:_make_progress(b))
end

-- The progress report of batch b (its figures as of now).
function Query:_make_progress(b)
  local t = b.t
  local t0, t5 = t[0], t[5]
  local since = self._last_trigger and (t0 - self._last_trigger) or (t5 - t0)
  self._last_trigger = t0
  local srcs = {}
  for i, s in ipairs(self._sources) do
    srcs[i] = { description = s.description, start_offset = b.starts[i], end_offset = b.ends[i],
      num_input_rows = b.counts[i] }
    for k, v in pairs(b.extra[i] or {}) do srcs[i][k] = v end
    -- a source's own lag(offset), else what its batch reported (Kafka: per partition)
    srcs[i].lag = self:_source_lag(i, b.ends[i]) or srcs[i].lag
  end
  local ops = {}
  for k, op in ipairs(self._ops) do
    local m = b.metrics[k]
    ops[k] = { name = op.node.stateful, num_rows_total = b.totals[k], num_rows_updated = m.updated,
      num_rows_dropped_by_watermark = m.dropped_by_watermark, num_dropped_duplicates = m.dropped_duplicates,
      memory_bytes = op.state.bytes() }
    if op.state.memory then -- bounded memory (state_memory_limit)
      local mem = op.state.memory()
      ops[k].memory_limit_bytes = self._opts.state_memory_limit
      ops[k].num_rows_in_memory = mem.groups_in_memory
      ops[k].num_rows_evicted_to_checkpoint = mem.groups_evicted
      ops[k].num_rows_loaded_from_checkpoint = mem.groups_loaded
    end
  end
  local event_time = {}
  if b.watermark then
    event_time.watermark = b.watermark
    local n, sum, lo, hi = 0, 0, nil, nil
    for _, st in ipairs(b.stats) do
      if st.count > 0 then
        n, sum = n + st.count, sum + st.sum
        lo = (lo == nil or st.min < lo) and st.min or lo
        hi = (hi == nil or st.max > hi) and st.max or hi
      end
    end
    if n > 0 then event_time.min, event_time.max, event_time.avg = lo, hi, math.floor(sum / n + 0.5) end
  end
  local function ms(x) return math.floor(x * 1000 + 0.5) / 1000 end
  local total, total_ms = b.total, t5 - t0
  local p = {
    id = self._id, name = self._name, batch_id = b.id, timestamp = b.entry.timestamp, num_input_rows = total,
    num_output_rows = b.out_rows,
    input_rows_per_second = since > 0 and total / since * 1000 or 0,
    processed_rows_per_second = total_ms > 0 and total / total_ms * 1000 or 0,
    duration_ms = { get_offset = ms(t[1] - t0), get_batch = ms(t[2] - t[1]), execution = ms(t[3] - t[2]),
      add_batch = ms(t[4] - t[3]), commit = ms(t5 - t[4]), total = ms(total_ms) },
    event_time = event_time,
    state_operators = ops, sources = srcs, sink = { description = self._sink.description or self._sink_name },
  }
  return p
end

-- Hand report p to recent_progress and the listeners.
function Query:_emit(p)
  local list = self._progress
  list[#list + 1] = p
  if #list > KEEP_PROGRESS then table.remove(list, 1) end
  for _, fn in ipairs(listeners) do
    local lok, lerr = pcall(fn, self, p) -- the batch is committed: a listener cannot fail it
    if not lok then io.stderr:write(format("tide: progress listener: %s\n", tostring(lerr))) end
  end
end

-- Source i's lag past offset `off` (connectors/README.md: lag), or nil
-- when the source cannot tell or fails to (a report never fails a batch).
function Query:_source_lag(i, off)
  local inst = self._sources[i].inst
  if not inst.lag then return nil end
  local ok, lag = pcall(inst.lag, inst, off)
  if ok and type(lag) == "table" then return lag end
  return nil
end

--- Each source's lag now, past the last committed batch (for tide.ui):
-- an array by source index of `{ records = n }` or `{ bytes =, files = }`
-- tables, nil where a source cannot tell.
function Query:_source_lags()
  local out = {}
  for i = 1, #self._sources do out[i] = self:_source_lag(i, self._ends[i]) end
  return out
end

-- One trigger: the phases of one micro-batch; returns true when a batch
-- ran. A phase that fails raises its error (naming the batch and what
-- failed) after the batch's batches are closed; nothing of it is
-- committed.
function Query:_step()
  -- a pipelined commit in flight without a batch planned after it: done
  -- before the next entry is planned and logged
  if self._inflight and not self._pending then self:_commit_join() end
  local t0 = clock()
  local b = self:_plan_offsets()
  if not b then return false end
  b.t[0], b.t[1] = t0, clock()
  local ok, err = pcall(function()
    -- a source whose get_batch writes (dead letters, idempotent per batch
    -- id) needs this batch's offset entry durable first: it is in the
    -- commit in flight
    if self._inflight and not self._pure_fetch then
      self:_commit_join()
      b.t[0], b.t[1] = clock(), clock()
    end
    self:_fetch(b)
    b.t[2] = clock()
    self:_execute(b)
    b.t[3] = clock()
    -- the batch before (pipelined) is durable before this one is delivered;
    -- the wait counts in that batch's commit phase, not in this one's
    if self._inflight then
      self:_commit_join()
      local wait = clock() - b.t[3]
      for k = 0, 3 do b.t[k] = b.t[k] + wait end
    end
    self:_commit_start(b)
    self:_deliver(b)
    b.t[4] = clock()
    self:_commit(b)
    if self._inflight ~= b then b.t[5] = clock() end
  end)
  if not ok then
    -- a commit in flight is finished first: the batch before's (as if
    -- this one had failed after it; its own failure is the one raised),
    -- or this one's, when what failed came after its gate opened
    local inflight = self._inflight
    if inflight then
      local jok, jerr = pcall(self._commit_join, self)
      if not jok and inflight ~= b then err = jerr end
    end
    self:_drop_commit(b)
  end
  b:release()
  if not ok then error(err, 0) end
  if self._inflight ~= b then self:_report(b) end
  self._status.message = "Waiting for next trigger"
  return true
end

-- Stop everything the query holds (sources, sink, timer, checkpoint).
function Query:_close_all()
  if self._timer then self._timer:close() self._timer = nil end
  local first
  if self._inflight then -- a pipelined commit: finished (durable, reported) before anything stops
    local ok, e = pcall(self._commit_join, self)
    if not ok then first = e end
  end
  for _, s in ipairs(self._sources) do
    if s.inst.stop then
      local ok, e = pcall(s.inst.stop, s.inst)
      if not ok then first = first or e end
    end
  end
  if self._sink and self._sink.stop then
    local ok, e = pcall(self._sink.stop, self._sink)
    if not ok then first = first or e end
  end
  if self._ck then
    self._ck:close()
    self._ck = nil
    if self._temp then remove_tree(self._dir) end
  end
  return first
end

function Query:_terminate(message)
  if not self._active then return end
  self._active = false
  for i, q in ipairs(active) do
    if q == self then table.remove(active, i) break end
  end
  local err = self:_close_all()
  if err and not self._exception then self._exception = "stop: " .. tostring(err) end
  self._status.message = message or (self._exception and "Terminated with exception: " .. self._exception or "Stopped")
  self._status.is_trigger_active = false
  remove_signals()
end

function Query:_fail(err)
  self._exception = tostring(err)
  self._unreported = true
  self:_terminate()
end

-- ------------------------------------------------------------------------
-- The public methods (API.md section 4)
-- ------------------------------------------------------------------------

local function check(self, what)
  local mt = getmetatable(self)
  if mt ~= Query and not (type(mt) == "table" and rawget(mt, "_is_query")) then
    error(format("%s: bad self: expected a query (use q:%s(...))", what, what), 3)
  end
end

local function raise(self, level)
  self._unreported = false
  local sources = {}
  for i, s in ipairs(self._sources) do sources[i] = s.description end
  error(errors.query_failed(self._name, self._id, sources,
    self._sink and self._sink.description or self._sink_name, self._exception), level + 1)
end

--- Drive the loop until every source's data available now is processed.
function Query:process_all_available()
  check(self, "process_all_available")
  if self._active then
    local loop = runtime.loop()
    self._force = self._force + 1
    local mark = self._idle
    if self._waiting or self._timer then self:_schedule(0) end
    -- (A Ctrl-C at the REPL raises from loop:run: the query goes on as before.)
    local ok, err = pcall(function()
      while self._active and self._idle == mark do loop:run("once") end
    end)
    self._force = self._force - 1
    if not ok then error(err, 0) end
  end
  if self._exception then raise(self, 2) end
end

--- Wait until the query terminates, or for timeout (a duration).
-- @return true when terminated, false on timeout
function Query:await(timeout)
  check(self, "await")
  local ms = timeout ~= nil and util.duration(timeout, "await: timeout") or nil
  local loop, expired, timer = runtime.loop(), false, nil
  if ms and self._active then timer = loop:timer(ms, 0, function() expired = true end) end
  local ok, err = pcall(function()
    while self._active and not expired do loop:run("once") end
  end)
  if timer then timer:close() end
  if not ok then error(err, 0) end -- a Ctrl-C at the REPL: the wait ends, the query goes on
  if self._exception then raise(self, 2) end
  return not self._active
end

--- Stop after the batch in flight (committed).
function Query:stop()
  check(self, "stop")
  if self._in_batch then
    self._stop_requested = true
  else
    self:_terminate()
  end
end

function Query:status()
  check(self, "status")
  local s = self._status
  return { message = s.message, is_data_available = s.is_data_available, is_trigger_active = s.is_trigger_active }
end

function Query:last_progress()
  check(self, "last_progress")
  return self._progress[#self._progress]
end

function Query:recent_progress()
  check(self, "recent_progress")
  return table.move(self._progress, 1, #self._progress, 1, {})
end

function Query:exception()
  check(self, "exception")
  return self._exception
end

function Query:watermark()
  check(self, "watermark")
  return self._watermark
end

function Query:id() check(self, "id") return self._id end
function Query:name() check(self, "name") return self._name end
function Query:is_active() check(self, "is_active") return self._active end
function Query:explain()
  check(self, "explain")
  return frame.Frame.explain(setmetatable({ _node = self._root }, frame.Frame))
end

function Query:__tostring()
  return format("tide query %s [%s]", self._name or self._id, self._active and "active" or self._status.message)
end

--- Call fn(query, progress) after every batch of every query (tide run's
-- status lines and --log-progress); returns a function that removes it.
function M.on_progress(fn)
  if type(fn) ~= "function" then error("on_progress: expected a function(query, progress)", 2) end
  listeners[#listeners + 1] = fn
  return function()
    for i, f in ipairs(listeners) do
      if f == fn then table.remove(listeners, i) return end
    end
  end
end

--- The active queries.
function M.queries()
  return table.move(active, 1, #active, 1, {})
end

--- Drive the loop until every query has terminated; raise the error of a
-- query that failed.
function M.run()
  local loop = runtime.loop()
  local seen = M.queries()
  while #active > 0 do loop:run("once") end
  for _, q in ipairs(seen) do
    if q._exception and q._unreported then raise(q, 2) end
  end
  return true
end

-- What the scale-out runtime (tide.scaleout) shares with this engine.
M._internals = { Query = Query, active = active, listeners = listeners, analyze = analyze,
  split_options = split_options, parse_trigger = parse_trigger, random_id = random_id, remove_tree = remove_tree,
  install_signals = function() install_signals() end }

-- Frame:write_stream starts a query (frame.lua cannot require this module).
frame.set_engine("start", M.start)

M.Query = Query
return M
