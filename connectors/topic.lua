--- The topic source and sink: streaming queries over the store's topics
-- (API.md sections 3 and 4; the protocol is connectors/README.md).
--
--    local s = db:read_stream("events", { starting_offset = "earliest", max_records_per_trigger = 10000 })
--    local q = s:where("signal > 3"):write_stream("topic", { store = db, topic = "alerts",
--                                                            checkpoint = "ckpt/alerts" })
--
-- Source. Its offset is a JSON array of per-partition next offsets,
-- `[p0, p1, ...]`: batch N holds, per partition, the records in
-- [start[p], stop[p]). A topic's records never change once committed, so
-- the same offsets give the same rows after a restart (replayable), unless
-- retention deleted them in between: that is an error naming the topic,
-- the partition and the first offset still held, never a silent gap. Rows
-- come in the schema version the topic had when the stream was defined
-- (records of other versions are projected into it, as `db:read` does).
-- New data is noticed by watching the store's catalog directory: every
-- append commits there, from this process or another one.
--
-- Sink. Each batch is appended in ONE atomic session as the idempotent
-- writer `<query id>/sink` with sequence = the batch id, so the catalog
-- records the batch id in the same LMDB transaction as the rows; a batch
-- run again after a crash finds its id recorded and writes nothing. The
-- query id is kept in the checkpoint, so it is the same after a restart.
--
-- @module tide.connectors.topic

local util = require "tide.util"
local connector = require "tide.connector"

local M = { sources = {}, sinks = {} }

local format, concat = string.format, table.concat
local error, type, pairs, ipairs, pcall, setmetatable = error, type, pairs, ipairs, pcall, setmetatable
local tointeger, min, max = math.tointeger, math.min, math.max

-- ------------------------------------------------------------------------
-- Shared
-- ------------------------------------------------------------------------

--- The store of option `store`: a tide store, or the default store
-- ($TIDE_DATA, else ./tide-data) shared with the rest of the process.
local resolve_store = connector.store_option

local function need_topic(o)
  if o.topic == nil then error("option 'topic' is required (the topic's name)", 0) end
end

-- The topic `name` of db, or raise naming the topics there are.
local function open_topic(db, name)
  if not db:has_topic(name) then
    local names = db:topics()
    error(format("no topic '%s' in store '%s' (topics: %s)", name, db:path(),
      #names > 0 and concat(names, ", ") or "none"), 0)
  end
  return db:topic(name)
end

-- Call t's method `m`, turning "the topic is gone" into one clear error.
local function topic_call(src, m, ...)
  local r = table.pack(pcall(src.t[m], src.t, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  local msg = tostring(r[2])
  if msg:find("was deleted", 1, true) then
    error(format("topic '%s' was deleted from store '%s' while the query ran", src.name, src.db:path()), 0)
  end
  error(msg, 0)
end

-- ------------------------------------------------------------------------
-- Source
-- ------------------------------------------------------------------------

-- The schema version a stream was defined with, by its checked option
-- table (the engine passes that same table to schema() and new()).
local pinned = setmetatable({}, { __mode = "k" })

local STARTING = "option 'starting_offset' must be \"earliest\", \"latest\" or a table { [partition] = offset }"

-- Check starting_offset against the topic's partition count; returns the
-- mode ("earliest", "latest", "offsets") and, for "offsets", the table
-- { [partition + 1] = offset } (partitions left out start at the earliest).
local function starting(v, nparts)
  if v == nil or v == "earliest" then return "earliest" end
  if v == "latest" then return "latest" end
  if type(v) ~= "table" then
    error(format("%s, got %s", STARTING, type(v) == "string" and ("'" .. v .. "'") or type(v)), 0)
  end
  local out = {}
  for p, off in pairs(v) do
    local pi, oi = tointeger(p), tointeger(off)
    if not pi or pi < 0 or pi >= nparts then
      error(format("option 'starting_offset': partition %s does not exist (partitions: 0..%d)", tostring(p),
        nparts - 1), 0)
    end
    if not oi or oi < 0 then
      error(format("option 'starting_offset': the offset of partition %d must be an integer >= 0, got %s", pi,
        tostring(off)), 0)
    end
    out[pi + 1] = oi
  end
  return "offsets", out
end

-- An offset as this source writes it: an array of one integer per
-- partition. Anything else (a checkpoint of another source, a topic made
-- again with other partitions) is refused.
local function decode(src, v, what)
  local ok = type(v) == "table" and #v == src.nparts
  local out = {}
  for i = 1, src.nparts do
    local x = ok and tointeger(v[i])
    if not x or x < 0 then ok = false break end
    out[i] = x
  end
  if not ok then
    error(format("%s offset %s does not fit topic '%s' (%d partitions): expected an array of %d offsets",
      what, util.json_encode(v), src.name, src.nparts, src.nparts), 0)
  end
  return out
end

-- Per partition (index p + 1): the first offset still held and the next
-- offset to be written.
local function positions(src)
  local earliest, ends = {}, {}
  for i, o in ipairs(topic_call(src, "offsets")) do
    earliest[i], ends[i] = o.earliest, o.latest
  end
  return earliest, ends
end

-- Where the first batch starts, per partition, for start = nil.
local function initial(src, earliest, stop)
  local from = {}
  for i = 1, src.nparts do
    if src.mode == "latest" then from[i] = stop[i]
    elseif src.mode == "offsets" and src.offsets[i] then from[i] = src.offsets[i]
    else from[i] = earliest[i] end
  end
  return from
end

local function retention_error(src, p, off, first)
  return format("topic '%s' partition %d: offset %d is no longer held (deleted by retention); " ..
    "the first offset still available is %d", src.name, p, off, first)
end

M.sources.topic = {
  options = {
    store = "any",
    topic = "string",
    starting_offset = "any",
    max_records_per_trigger = { type = "integer", min = 1 },
  },

  -- The topic's latest schema, pinned for the stream's lifetime.
  schema = function(o)
    need_topic(o)
    local db = resolve_store(o.store)
    local t = open_topic(db, o.topic)
    starting(o.starting_offset, t:info().partitions)
    local sc = t:schema()
    pinned[o] = sc.version
    return sc.fields
  end,

  label = function(o) return format("TopicSource[%s]", tostring(o.topic)) end,

  new = function(o, ctx)
    need_topic(o)
    local db = resolve_store(o.store)
    local t = open_topic(db, o.topic)
    local info = t:info()
    local src = {
      description = format("TopicSource[%s]", o.topic),
      replayable = true,
      pure_fetch = true, -- reading a topic writes nothing (connectors/README.md)
      db = db, t = t, name = o.topic, nparts = info.partitions,
      version = pinned[o] or info.schema_version,
      limit = o.max_records_per_trigger,
    }
    src.mode, src.offsets = starting(o.starting_offset, src.nparts)
    local watch

    --- Per partition, the next offset to read up to: everything written,
    -- cut to max_records_per_trigger after `start`. nil while there is
    -- nothing to read before the first batch (starting at "latest" the
    -- first batch is empty and pins where the stream starts).
    function src.latest_offset(_, start)
      local earliest, ends = positions(src)
      local from = start ~= nil and decode(src, start, "start") or initial(src, earliest, ends)
      local stop = {}
      for i = 1, src.nparts do stop[i] = max(from[i], ends[i]) end
      if src.limit then stop = util.fair_limit(from, stop, src.limit) end
      if start == nil and src.mode ~= "latest" then
        local any = false
        for i = 1, src.nparts do any = any or stop[i] > from[i] end
        if not any then return nil end
      end
      return stop
    end

    --- The records of [start, stop) of every partition, as fresh batches.
    function src.get_batch(_, start, stop)
      local earliest = positions(src)
      local to = decode(src, stop, "end")
      local from = start ~= nil and decode(src, start, "start") or initial(src, earliest, to)
      -- Starting from the earliest offset, whatever retention dropped
      -- before the first batch is not a gap; anywhere else it is.
      local lenient = start == nil and src.mode == "earliest"
      local out = {}
      local function close_all()
        for _, b in ipairs(out) do b:close() end
      end
      for i = 1, src.nparts do
        local a, b = from[i], to[i]
        if lenient then a = max(a, min(earliest[i], b)) end
        if b > a then
          if earliest[i] > a then
            close_all()
            error(retention_error(src, i - 1, a, earliest[i]), 0)
          end
          local got = 0
          local ok, err = pcall(function()
            for batch in topic_call(src, "batches", { partition = i - 1, from = a, to = b,
                                                      schema_version = src.version }) do
              out[#out + 1] = batch
              got = got + batch:nrows()
            end
          end)
          if not ok then
            close_all()
            error(err, 0)
          end
          if got ~= b - a then
            -- retention dropped segments after the check above
            close_all()
            local e = positions(src)
            error(retention_error(src, i - 1, a, e[i]), 0)
          end
        end
      end
      return out
    end

    --- Wake the query when the store's catalog changes: each append
    -- commits there, from this process or any other
    -- (tide.connector.watch_catalog, which also looks again a moment later).
    function src.watch(_, fn)
      local w, msg = connector.watch_catalog(ctx.loop, db, fn)
      if not w then error(format("%s for new records of topic '%s'", msg, o.topic), 0) end
      watch = w
    end

    function src.stop()
      if watch then
        watch.close()
        watch = nil
      end
    end

    return src
  end,
}

-- ------------------------------------------------------------------------
-- Sink
-- ------------------------------------------------------------------------

-- A schema as topic:accepts takes it: DDL, array form, or a tide.Schema.
local function schema_arg(s)
  if type(s) == "userdata" and s.fields then return s:fields() end
  return s
end

-- Option `key` names a field of topic t, or raise naming its fields.
local function check_key(t, o)
  if o.key == nil then return end
  local names = {}
  local found = false
  for i, f in ipairs(t:info().schema) do
    names[i] = f[1]
    found = found or f[1] == o.key
  end
  if not found then
    error(format("option 'key': column '%s' is not a field of topic '%s' (fields: %s)", o.key, o.topic,
      concat(names, ", ")), 0)
  end
end

M.sinks.topic = {
  options = { store = "any", topic = "string", key = "string" },

  new = function(o, ctx)
    need_topic(o)
    local db = resolve_store(o.store)
    local t = open_topic(db, o.topic)
    check_key(t, o)
    local writer = tostring(ctx.query_id) .. "/sink"
    local sink = {
      description = format("TopicSink[%s:%s]", db:path(), o.topic),
      needs_checkpoint = true,
      writer = writer,
    }
    local checked -- the schema already found to fit the topic

    local function check_schema(schema)
      if schema ~= nil and checked ~= schema then
        local ok, why = t:accepts(schema_arg(schema))
        if not ok then
          error(format("the query's rows do not fit topic '%s': %s", o.topic, why), 0)
        end
        checked = schema
      end
    end

    local function appended(first, last, ranges)
      if first == nil and last == "skipped" then return 0, "skipped" end
      local n = 0
      for _, r in ipairs(ranges) do n = n + r.count end
      return n
    end

    --- Append batch `id` in one session, unless the topic records it.
    -- @return the number of rows appended, or 0 and "skipped"
    function sink.add_batch(_, id, batches, _, schema)
      check_schema(schema)
      return appended(t:append_batches(batches, { key = o.key, writer = writer, seq = id }))
    end

    --- The same append on a thread of its own (connectors/README.md, the
    -- deferred sink): begun here, the batches taken; add_batch_finish
    -- waits for it. Between the two the loop thread runs the next batch.
    -- Returns the handle the engine's commit of this batch waits on.
    function sink.add_batch_start(_, id, batches, _, schema)
      check_schema(schema)
      return t:append_start(batches, { key = o.key, writer = writer, seq = id })
    end

    --- Wait for the append begun by add_batch_start: as add_batch's result.
    function sink.add_batch_finish()
      return appended(db:append_finish())
    end

    return sink
  end,
}

--- f:write("topic", { topic =, store =, key = }): a static frame's rows
-- appended to a topic in one atomic append (all rows become visible
-- together, or none do), validated as the topic sink's are.
-- @return the number of rows appended
function M.sinks.topic.write(f, opts, level)
  level = (level or 1) + 1
  local o = connector.write_options("topic", opts, M.sinks.topic.options, level)
  local ok, t = pcall(function()
    need_topic(o)
    local topic = open_topic(resolve_store(o.store), o.topic)
    check_key(topic, o)
    return topic
  end)
  if not ok then error("write(topic): " .. t, level) end
  local fits, why = t:accepts(f:schema())
  if not fits then error(format("write(topic): the frame's rows do not fit topic '%s': %s", o.topic, why), level) end
  local batches, rows = connector.frame_batches(f)
  if rows == 0 then return 0 end
  t:append_batches(batches, { key = o.key })
  return rows
end

return M
