--- The Kafka sink: a streaming query's rows as Kafka messages, exactly-once
-- by default (docs/guide.md, "Kafka"; the progress record: docs/FORMAT.md,
-- "Kafka sink progress").
--
--    q = s:write_stream("kafka", { bootstrap = "localhost:9092", topic = "alerts", key = "user_id",
--                                  checkpoint = "ck/alerts" })
--
-- Messages are made in C from the batch's columns (core/kafka_sink.c): the
-- value is the row as one JSON object (the core's encoder) or a column; the
-- key a column or an expression; headers a json column; the topic fixed or
-- a column per row.
--
-- Exactly-once. The producer's transactional.id is `tide-<query id>`: the
-- query id is kept in the checkpoint, so a restarted query has the same one
-- and its first initialisation fences the crashed run's producer and
-- aborts its open transaction. Batch N's messages and the offset N + 1 of
-- the progress group `tide-<query id>` on partition 0 of the progress topic
-- (the output topic, or option `progress_topic`) are committed in ONE
-- transaction (send_offsets_to_transaction), so a read_committed consumer
-- sees the rows exactly when the offset says they are there. After a
-- restart the sink reads that committed offset once, and a batch the engine
-- runs again (its checkpoint did not advance: the crash came after the
-- Kafka commit) is skipped when its id is not above the recorded one.
-- `exactly_once = false`: the idempotent producer, no transactions, every
-- batch flushed before it counts as written; a batch re-run after a crash
-- is written again (at-least-once).
--
-- @module tide.connectors.kafka.sink

local core = require "tide.core"
local util = require "tide.util"

local format, concat = string.format, table.concat
local error, ipairs, pairs, type, tostring = error, ipairs, pairs, type, tostring

local OPTIONS = {
  bootstrap = "string",
  topic = "string",
  topic_column = "string",
  key = "string",
  value = "string",
  headers = "string",
  partition = "string",
  timestamp = "string",
  exactly_once = { type = "boolean", default = true },
  progress_topic = "string",
  timeout = { type = "duration", default = 30000 },
  kafka = "table",
}

-- Settings the sink owns: the transactional producer is only correct with
-- its own transactional.id (the query's) and with idempotence on.
local OWNED = {
  ["bootstrap.servers"] = "option 'bootstrap'",
  ["transactional.id"] = "the query id (tide-<query id>)",
  ["enable.idempotence"] = "the sink (always on)",
  ["dr_msg_cb"] = "the sink",
}

local function check_opts(o, what)
  if not o.bootstrap then error(format("%s: option 'bootstrap' is required (host:port[,host:port])", what), 0) end
  if (o.topic == nil) == (o.topic_column == nil) then
    error(format("%s: give one of option 'topic' (every row's topic) and 'topic_column' (a string column " ..
      "naming each row's topic)", what), 0)
  end
  if o.topic_column and o.exactly_once and not o.progress_topic then
    error(format("%s: with 'topic_column' and exactly_once, option 'progress_topic' is required: an existing " ..
      "topic on whose partition 0 the sink's group records the last committed batch", what), 0)
  end
  local kv = {}
  for k, v in pairs(o.kafka or {}) do
    if type(k) ~= "string" then error(format("%s: option 'kafka': setting names must be strings", what), 0) end
    if OWNED[k] then error(format("%s: option 'kafka': '%s' is set by %s", what, k, OWNED[k]), 0) end
    if type(v) == "number" or type(v) == "boolean" then v = tostring(v) end
    if type(v) ~= "string" then
      error(format("%s: option 'kafka': setting '%s' must be a string, number or boolean, got %s", what, k,
        type(v)), 0)
    end
    kv[k] = v
  end
  return kv
end

-- The output's columns by name: { name = {index, type} }, and the names.
local function columns(schema)
  local by, names = {}, {}
  for i, f in ipairs(schema:fields()) do
    by[f[1]] = { i, (f[2]:gsub("%?$", "")) }
    names[i] = f[1]
  end
  return by, names
end

-- The column of option `opt` (of one of `types`, when given), 1-based.
local function column(o, opt, by, names, types)
  local name = o[opt]
  if name == nil then return nil end
  local c = by[name]
  if not c then
    error(format("option '%s': '%s' is not a column of the output (columns: %s)", opt, name, concat(names, ", ")), 0)
  end
  if types and not types[c[2]] then
    local t = {}
    for k in pairs(types) do t[#t + 1] = k end
    table.sort(t)
    error(format("option '%s': column '%s' is %s; it must be %s", opt, name, c[2], concat(t, " or ")), 0)
  end
  return c[1]
end

-- How each batch becomes messages, for the output's schema: the map for
-- produce, and the key expression when the key is not a column.
local function plan(o, schema)
  local by, names = columns(schema)
  local map = {
    topic = o.topic,
    topic_col = column(o, "topic_column", by, names, { string = true }),
    value_col = column(o, "value", by, names),
    headers_col = column(o, "headers", by, names, { json = true }),
    partition_col = column(o, "partition", by, names, { int = true }),
    timestamp_col = column(o, "timestamp", by, names, { timestamp = true }),
  }
  local key
  if o.key ~= nil then
    if by[o.key] then
      map.key_col = by[o.key][1]
    else
      local e, msg = core.expr(o.key, schema)
      if not e then
        error(format("option 'key': '%s' is neither a column of the output (columns: %s) nor an expression " ..
          "over it: %s", o.key, concat(names, ", "), msg), 0)
      end
      key = { e = e, schema = core.schema({ { "key", e:type() .. "?" } }) }
      map.key_col = 1
    end
  end
  return map, key
end

local function nrows(batches)
  local n = 0
  for _, b in ipairs(batches) do n = n + b:nrows() end
  return n
end

-- Queue the rows of every batch on producer p.
local function produce_all(p, batches, map, key)
  for _, b in ipairs(batches) do
    local kb
    if key then
      local msg
      kb, msg = core.project(b, { key.e }, key.schema)
      if not kb then error("option 'key': " .. tostring(msg), 0) end
      map.key_batch = kb
    end
    local ok, msg = p:produce(b, map)
    map.key_batch = nil
    if kb then kb:close() end
    if not ok then error(msg, 0) end
  end
end

local function producer(o, kv, eos, id)
  local p, msg = core.kafka_sink(o.bootstrap, {
    exactly_once = eos, txn_id = id, group = id, timeout = o.timeout, kafka = kv,
  })
  if not p then error(msg, 0) end
  return p
end

local M = { options = OPTIONS } -- the sink's descriptor

function M.label(o)
  return format("KafkaSink[%s@%s]", o.topic or ("column " .. tostring(o.topic_column)), tostring(o.bootstrap))
end

function M.new(o, ctx)
  local kv = check_opts(o, "write_stream(kafka)")
  local eos = o.exactly_once
  local id = "tide-" .. tostring(ctx.query_id)
  local progress = o.progress_topic or o.topic
  local map, key
  if ctx.schema then map, key = plan(o, ctx.schema) end
  local p = producer(o, kv, eos, eos and id or nil)
  -- the last batch id committed, read at the first batch: that step also
  -- fences the crashed run's producer and aborts its open transaction (a
  -- crash inside a transaction leaves its batch to run again, first thing)
  local last
  local sink = {
    description = M.label(o),
    needs_checkpoint = eos,
    transactional_id = eos and id or nil,
  }

  --- Write batch `id` in one transaction, unless it committed before.
  -- @return the rows written, or 0 and "skipped"
  function sink.add_batch(_, batch_id, batches, _, schema)
    if not map then map, key = plan(o, schema) end
    if eos and last == nil then
      local l, msg = p:recover(progress, 0)
      if not l then error(msg, 0) end
      last = l
    end
    if eos and batch_id <= last then return 0, "skipped" end
    local n = nrows(batches)
    if n == 0 then return 0 end
    local ok, msg = p:begin()
    if not ok then error(msg, 0) end
    local okp, err = pcall(produce_all, p, batches, map, key)
    if not okp then
      p:abort()
      error(err, 0)
    end
    ok, msg = p:commit(progress, 0, batch_id)
    if not ok then error(msg, 0) end
    if eos then last = batch_id end
    return n
  end

  function sink.stop()
    p:close()
  end

  return sink
end

--- f:write("kafka", opts): a static frame's rows as messages, with the
-- idempotent producer (no query, so no batch to make exactly-once);
-- returns the number of rows written.
function M.write(f, opts, level)
  level = (level or 1) + 1
  local spec = {}
  for k, v in pairs(OPTIONS) do
    if k ~= "exactly_once" and k ~= "progress_topic" then spec[k] = v end
  end
  local ok, o = pcall(util.check_options, opts, spec, "write(kafka)", 1)
  if not ok then error(util.strip_position(o), level) end
  local okc, kv = pcall(check_opts, o, "write(kafka)")
  if not okc then error(kv, level) end
  local schema = core.schema(f:schema())
  local n = 0
  local p
  local okw, err = pcall(function()
    local map, key = plan(o, schema)
    p = producer(o, kv, false, nil)
    local batches = {}
    for b in f:batches() do batches[#batches + 1] = b end
    n = nrows(batches)
    local okb, msg = p:begin()
    if not okb then error(msg, 0) end
    produce_all(p, batches, map, key)
    okb, msg = p:commit()
    if not okb then error(msg, 0) end
  end)
  if p then p:close() end
  if not okw then error("write(kafka): " .. tostring(err), level) end
  return n
end

-- for the scale-out runtime (lua/tide/scaleout.lua), which writes the
-- output of its tasks with the process's one producer
M.check_opts, M.plan, M.produce_all = check_opts, plan, produce_all

return { sinks = { kafka = M } }
