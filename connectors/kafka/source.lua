--- The Kafka source of streaming queries: `tide.read_stream("kafka", opts)`
-- (the protocol is connectors/README.md; the guide's Kafka section has the
-- options table).
--
--    local s = tide.read_stream("kafka", { bootstrap = "localhost:9092", subscribe = "orders",
--                                          format = "json", schema = "ts timestamp, amount double" })
--
-- As Spark's Kafka source. The offsets are tide's: an offset is a table
-- topic -> partition (a string key, as JSON needs) -> the next offset,
-- `{"orders":{"0":42,"1":17}}`, written to the query's offset log before a
-- batch runs; batch N holds, per partition, the messages of
-- [start, stop). Kafka never changes a message once written, so the same
-- offsets give the same rows after a restart (replayable), unless
-- retention deleted them in between (fail_on_data_loss says what then).
-- The C reader (core/kafka.c) assigns the partitions itself and reads
-- exactly those offsets; no consumer group decides anything. `group_id`
-- only commits the processed offsets to that group, after each batch's
-- commit, for monitoring tools (lag dashboards).
--
-- Partitions are listed on every trigger (metadata): a topic or partition
-- that appears starts at its earliest offset, one that disappears follows
-- fail_on_data_loss. `subscribe_pattern` is a POSIX extended regular
-- expression matched against whole topic names (as Spark's Java regex is):
-- "orders-.*" takes orders-eu and orders-us.
--
-- Rows: key, value (strings: tide strings are UTF-8, so a key or value
-- that is not UTF-8 is a bad record), topic, partition, offset, timestamp,
-- timestamp_type (0 create time, 1 log append time), headers (JSON: an
-- array of {"key":..., "value":...}). With format = "json" or "csv" and a
-- schema, each message's value is one record decoded by the core's decoder
-- into the schema's columns; include_metadata = true adds the message
-- columns prefixed kafka_ (kafka_key, kafka_topic, ...).
--
-- Isolation: read_committed by default (kafka = { ["isolation.level"] =
-- "read_uncommitted" } to change it): rows of open and aborted
-- transactions are never read, and the end offset is the last stable one.
--
-- @module tide.connectors.kafka.source

local core = require "tide.core"
local util = require "tide.util"
local connector = require "tide.connector"

local M = { sources = {} }

local format, concat, sort = string.format, table.concat, table.sort
local type, error, ipairs, pairs, tostring, tointeger = type, error, ipairs, pairs, tostring, math.tointeger
local max, next = math.max, next

local WHAT = "read_stream(kafka)"

local OPTIONS = {
  bootstrap = "string",
  subscribe = "string",
  subscribe_pattern = "string",
  assign = "table",
  starting_offsets = "any",
  starting_timestamp = "any",
  max_offsets_per_trigger = { type = "integer", min = 1 },
  fail_on_data_loss = "boolean",
  kafka = "table",
  group_id = "string",
  poll_timeout = { type = "duration", min = 1 },
  format = { type = "string", values = { "json", "csv" } },
  schema = "any",
  sep = "string",
  unknown_fields = { type = "string", values = { "reject", "ignore" } },
  include_metadata = "boolean",
  bad_records = { type = "string", values = { "fail", "drop", "dead_letter" } },
  dead_letter_topic = "string",
  store = "any",
}

-- librdkafka settings the source decides: they carry its correctness.
local OWNED = {
  ["bootstrap.servers"] = "option 'bootstrap'",
  ["group.id"] = "option 'group_id'",
  ["enable.auto.commit"] = "the offset log (offsets are tide's)",
  ["enable.auto.offset.store"] = "the offset log (offsets are tide's)",
  ["auto.offset.reset"] = "options 'starting_offsets' and 'fail_on_data_loss'",
  ["enable.partition.eof"] = "the source (it finds the end of a range with it)",
}

-- (partition and offset name the store topic's own record: the message's are kafka_ columns)
-- text: the message readable (invalid UTF-8 bytes as U+FFFD); raw_base64:
-- its exact bytes (as the file source's dead letters, core/decode.h)
local DEAD_LETTER_SCHEMA = "reason string, kafka_topic string, kafka_partition int, kafka_offset int, text string, " ..
  "raw_base64 string"

local function fail(msg) error(WHAT .. ": " .. msg, 0) end

local function int(v) return type(v) == "number" and tointeger(v) or nil end

-- "a, b" -> { "a", "b" }
local function split_list(s)
  local out = {}
  for t in s:gmatch("[^,]+") do
    t = t:match("^%s*(.-)%s*$")
    if t ~= "" then out[#out + 1] = t end
  end
  return out
end

M.split_list = split_list -- (tide.topology reads 'subscribe' the same way)

-- Check the options that depend on each other. Returns the value's schema
-- (nil: the message columns).
local function check(o)
  if not o.bootstrap then fail("option 'bootstrap' is required (host:port[,host:port])") end
  local ok, msg = core.kafka_check_bootstrap(o.bootstrap)
  if not ok then fail("option 'bootstrap': " .. msg) end
  local n = (o.subscribe and 1 or 0) + (o.subscribe_pattern and 1 or 0) + (o.assign and 1 or 0)
  if n ~= 1 then
    fail("exactly one of the options 'subscribe' (\"a,b\"), 'subscribe_pattern' (a regular expression) and " ..
      "'assign' ({ topic = { 0, 1 } }) is required" .. (n > 1 and ", got " .. n or ""))
  end
  if o.subscribe and #split_list(o.subscribe) == 0 then fail("option 'subscribe' names no topic") end
  if o.subscribe_pattern then
    local okp, perr = core.kafka_match(o.subscribe_pattern, {})
    if not okp then fail("option 'subscribe_pattern': " .. perr) end
  end
  if o.assign then
    local any = false
    for t, parts in pairs(o.assign) do
      if type(t) ~= "string" or type(parts) ~= "table" or #parts == 0 then
        fail("option 'assign' must map topic names to arrays of partitions: { orders = { 0, 1 } }")
      end
      for _, p in ipairs(parts) do
        if not int(p) or p < 0 then fail(format("option 'assign': topic '%s': partition %s is not an integer >= 0", t,
          tostring(p))) end
      end
      any = true
    end
    if not any then fail("option 'assign' names no topic") end
  end
  local so = o.starting_offsets
  if so ~= nil and so ~= "earliest" and so ~= "latest" then
    if type(so) ~= "table" then
      fail("option 'starting_offsets' must be \"earliest\", \"latest\" or a table { topic = { [partition] = offset } }")
    end
    for t, parts in pairs(so) do
      if type(t) ~= "string" or type(parts) ~= "table" then
        fail("option 'starting_offsets' must map topic names to tables { [partition] = offset }")
      end
      for p, off in pairs(parts) do
        local pi = int(p) or int(tonumber(p))
        if not pi or pi < 0 or not int(off) or off < -2 then
          fail(format("option 'starting_offsets': topic '%s': partition %s offset %s (a partition >= 0 and an " ..
            "offset >= 0, -2 for earliest or -1 for latest)", t, tostring(p), tostring(off)))
        end
      end
    end
  end
  if o.starting_timestamp ~= nil and so ~= nil then
    fail("options 'starting_offsets' and 'starting_timestamp' exclude each other")
  end
  for k, v in pairs(o.kafka or {}) do
    if type(k) ~= "string" then fail("option 'kafka' must map librdkafka setting names to values") end
    if OWNED[k] then fail(format("option 'kafka': '%s' is set by %s", k, OWNED[k])) end
    local tv = type(v)
    if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
      fail(format("option 'kafka': '%s' must be a string, number or boolean, got %s", k, tv))
    end
  end
  local schema
  if o.format then
    if o.schema == nil then fail(format("option 'schema' is required for format '%s'", o.format)) end
    local t = type(o.schema)
    if t ~= "string" and t ~= "table" and not (t == "userdata" and o.schema.ddl) then
      fail("option 'schema' must be a DDL string, an array of fields or a tide.Schema, got " .. t)
    end
    schema = o.schema
  else
    for _, k in ipairs { "schema", "sep", "unknown_fields", "include_metadata" } do
      if o[k] ~= nil then fail(format("option '%s' needs option 'format' (json or csv)", k)) end
    end
  end
  if o.sep and (#o.sep ~= 1 or o.format ~= "csv") then fail("option 'sep' is one character, for csv") end
  if o.unknown_fields and o.format ~= "json" then fail("option 'unknown_fields' is for json") end
  connector.check_bad_records(o, fail)
  return schema
end

local function schema_object(s)
  if type(s) == "userdata" then return s end
  local so, msg = core.schema(s)
  if not so then fail("bad schema: " .. tostring(msg)) end
  return so
end

-- The rows' schema, as DDL or a tide.Schema, without connecting.
local function rows_schema(o)
  local s = check(o)
  if not s then return core.kafka_raw_ddl end
  if not o.include_metadata then return s end
  local so = schema_object(s)
  for _, f in ipairs(so:fields()) do
    if f[1]:match("^kafka_") then
      fail(format("the schema has a column '%s', which include_metadata adds", f[1]))
    end
  end
  return so:ddl() .. ", " .. core.kafka_meta_ddl
end

local function label(o)
  local what = o.subscribe and ("subscribe=" .. o.subscribe)
    or o.subscribe_pattern and ("subscribe_pattern=" .. o.subscribe_pattern)
  if not what then
    local names = {}
    for t in pairs(o.assign or {}) do names[#names + 1] = t end
    sort(names)
    what = "assign=" .. concat(names, ",")
  end
  return format("KafkaSource[%s]", what)
end

-- ------------------------------------------------------------------------
-- Offsets: { topic = { ["p"] = next offset } }
-- ------------------------------------------------------------------------

local function pkey(p) return tostring(p) end

-- The (topic, partition) pairs of an offset table, sorted.
local function pairs_of(off)
  local list = {}
  for t, parts in pairs(off) do
    for p in pairs(parts) do list[#list + 1] = { t, tointeger(tonumber(p)) } end
  end
  sort(list, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  return list
end

local function get(off, t, p) return off[t] and off[t][pkey(p)] end

local function put(off, t, p, v)
  off[t] = off[t] or {}
  off[t][pkey(p)] = v
end

-- An offset as this source writes it, or raise naming what is wrong.
local function decode(self, v, what)
  local ok = type(v) == "table"
  local out = {}
  if ok then
    for t, parts in pairs(v) do
      if type(t) ~= "string" or type(parts) ~= "table" then ok = false break end
      for p, off in pairs(parts) do
        local pi, oi = int(tonumber(p)), int(off)
        if not pi or pi < 0 or not oi or oi < 0 then ok = false break end
        put(out, t, pi, oi)
      end
    end
  end
  if not ok then
    error(format("%s: %s offset %s is not a Kafka offset ({\"topic\":{\"partition\":offset}}): was this checkpoint " ..
      "written by another source?", self.description, what, util.json_encode(v)), 0)
  end
  return out
end

-- ------------------------------------------------------------------------
-- The source
-- ------------------------------------------------------------------------

local Source = {}
Source.__index = Source

local function call(self, what, ok, msg, ...)
  if ok == nil then error(format("%s: %s: %s", self.description, what, tostring(msg)), 0) end
  return ok, msg, ...
end

-- The partitions the source reads now: sorted { topic, partition } pairs.
function Source:_partitions()
  local topics = call(self, "metadata", self._reader:metadata())
  local by = {}
  for _, t in ipairs(topics) do by[t.name] = t end
  local names = {}
  if self._subscribe then
    for _, n in ipairs(self._subscribe) do names[#names + 1] = n end
  elseif self._pattern then
    local all = {}
    for _, t in ipairs(topics) do all[#all + 1] = t.name end
    names = core.kafka_match(self._pattern, all)
  end
  local list = {}
  if self._assign then
    for _, a in ipairs(self._assign) do
      local t = by[a[1]]
      if t and a[2] < t.partitions then list[#list + 1] = a end
    end
    return list, by
  end
  for _, n in ipairs(names) do
    local t = by[n]
    if t then
      for p = 0, t.partitions - 1 do list[#list + 1] = { n, p } end
    end
  end
  return list, by
end

-- Per partition of list, its earliest and its end offset (tables keyed as
-- offsets).
function Source:_ends(list)
  local lo = call(self, "offsets", self._reader:offsets(list, "earliest"))
  local hi = call(self, "offsets", self._reader:offsets(list, "latest"))
  local earliest, latest = {}, {}
  for i, tp in ipairs(list) do
    put(earliest, tp[1], tp[2], lo[i])
    put(latest, tp[1], tp[2], hi[i])
  end
  return earliest, latest
end

-- A partition's data is lost (deleted by retention, or the partition is
-- gone): raise, or warn and count it when fail_on_data_loss is false.
function Source:_data_loss(msg, n)
  if self._fail_on_loss then
    error(format("%s: %s (set fail_on_data_loss = false to skip lost offsets and go on)", self.description, msg), 0)
  end
  self._lost = self._lost + (n or 0)
  io.stderr:write(format("tide: warning: %s: %s; skipped (fail_on_data_loss = false)\n", self.description, msg))
end

-- Where the first batch starts (start = nil), per partition of list.
function Source:_initial(list, earliest, latest)
  local from = {}
  local at
  if self._timestamp then
    at = call(self, "offsets", self._reader:offsets(list, self._timestamp))
  end
  for i, tp in ipairs(list) do
    local t, p = tp[1], tp[2]
    local e, l = get(earliest, t, p), get(latest, t, p)
    local v
    if self._starting == "latest" then v = l
    elseif type(self._starting) == "table" then
      local parts = self._starting[t]
      local s = parts and (parts[p] or parts[pkey(p)])
      if s == -1 then v = l elseif s == -2 or s == nil then v = e else v = s end
    elseif at then
      v = at[i] < 0 and l or at[i] -- no message at or after the timestamp: the end
    else v = e end
    put(from, t, p, v)
  end
  return from
end

-- Check starting_offsets against the partitions there are (once).
function Source:_check_starting(by)
  if type(self._starting) ~= "table" or self._checked then return end
  self._checked = true
  for t, parts in pairs(self._starting) do
    local info = by[t]
    for p in pairs(parts) do
      local pi = int(tonumber(p))
      if not info or pi >= info.partitions then
        error(format("%s: option 'starting_offsets': topic '%s' has no partition %d (%s)", self.description, t, pi,
          info and format("partitions: 0..%d", info.partitions - 1) or "no such topic"), 0)
      end
    end
  end
end

-- The batch after `from` (offsets of every partition), given each
-- partition's end: its stop offsets, its ranges { {topic, partition,
-- start, stop}, ... } (the partitions with messages, in pairs_of order: the
-- order get_batch reads them in) and their number of offsets.
local function plan(from, latest, limit)
  local order = pairs_of(from)
  local a, b = {}, {}
  for i, tp in ipairs(order) do
    a[i] = get(from, tp[1], tp[2])
    b[i] = max(a[i], get(latest, tp[1], tp[2]) or a[i])
  end
  if limit then b = util.fair_limit(a, b, limit) end
  local stop, ranges, total = {}, {}, 0
  for i, tp in ipairs(order) do
    put(stop, tp[1], tp[2], b[i])
    if b[i] > a[i] then
      ranges[#ranges + 1] = { tp[1], tp[2], a[i], b[i] }
      total = total + b[i] - a[i]
    end
  end
  return stop, ranges, total
end

--- Per partition, the offset to read up to: everything written (to the
-- last stable offset under read_committed), cut to max_offsets_per_trigger
-- after `start`. nil while there is nothing before the first batch
-- (starting at "latest", the first batch is empty and pins where the
-- stream starts).
function Source:latest_offset(start)
  local list, by = self:_partitions()
  self:_check_starting(by)
  local earliest, latest = self:_ends(list)
  self._latest = latest
  local from
  if start == nil then
    from = self:_initial(list, earliest, latest)
  else
    from = decode(self, start, "start")
    local now = {}
    for _, tp in ipairs(list) do put(now, tp[1], tp[2], true) end
    for _, tp in ipairs(pairs_of(from)) do
      local t, p = tp[1], tp[2]
      if not get(now, t, p) then
        self:_data_loss(format("topic '%s' partition %d no longer exists (offsets from %d on were not read)", t, p,
          get(from, t, p)))
        from[t][pkey(p)] = nil
        if next(from[t]) == nil then from[t] = nil end
      end
    end
    -- new partitions start at their earliest offset
    for _, tp in ipairs(list) do
      if get(from, tp[1], tp[2]) == nil then put(from, tp[1], tp[2], get(earliest, tp[1], tp[2])) end
    end
  end
  local stop, ranges = plan(from, latest, self._limit)
  -- the messages start coming while the engine logs the offsets (unless
  -- they are being read ahead already)
  call(self, "prefetch", self._reader:prefetch(ranges))
  if start == nil and self._starting ~= "latest" and #ranges == 0 then return nil end
  return stop
end

--- The messages of [start, stop) of every partition, as fresh batches, and
-- the counters (bad records, lost offsets, the lag behind each
-- partition's end).
function Source:get_batch(start, stop, batch_id)
  local to = decode(self, stop, "end")
  local from
  if start ~= nil then from = decode(self, start, "start") end
  local order = pairs_of(to)
  local need_earliest = start == nil
  if from then
    for _, tp in ipairs(order) do
      if get(from, tp[1], tp[2]) == nil then need_earliest = true end
    end
  end
  local earliest
  if need_earliest then earliest = self:_ends(order) end
  if start == nil then
    if self._starting == "latest" then from = to
    else
      -- the first batch starts as configured; from the earliest offset,
      -- what retention dropped before it is no gap
      from = {}
      local first = self:_initial(order, earliest, to)
      for _, tp in ipairs(order) do
        local t, p = tp[1], tp[2]
        local f = get(first, t, p)
        if self._starting == "earliest" then f = max(f, get(earliest, t, p)) end
        put(from, t, p, math.min(f, get(to, t, p)))
      end
    end
  end
  local ranges = {}
  for _, tp in ipairs(order) do
    local t, p = tp[1], tp[2]
    local a, b = get(from, t, p), get(to, t, p)
    if a == nil then a = math.min(get(earliest, t, p), b) end -- a new partition
    if b > a then ranges[#ranges + 1] = { t, p, a, b } end
  end
  local batches, info = {}, { dropped = 0, bad = {}, lost = {} }
  if #ranges > 0 then
    local got, extra, code = self._reader:read(ranges)
    if not got and code == "ENOTFOUND" then
      -- offsets deleted by retention (or a partition gone) under fail_on_data_loss
      self:_data_loss(extra)
    end
    batches, info = call(self, "read", got, extra)
  end
  self:_read_ahead(to)
  local counts = {}
  for _, l in ipairs(info.lost) do
    self:_data_loss(format("topic '%s' partition %d: offsets %d..%d were deleted by retention before they were read",
      l[1], l[2], l[3], l[4] - 1), l[4] - l[3])
  end
  if self._lost > 0 then counts.lost_offsets = self._lost end
  self._lost = 0 -- counted in this batch's progress
  if info.dropped > 0 then counts.dropped = info.dropped end
  if #info.bad > 0 then
    local ok, err = pcall(self._dead_letter, self, info.bad, batch_id)
    if not ok then
      for _, x in ipairs(batches) do x:close() end
      error(err, 0)
    end
    counts.dead_letter = #info.bad
  end
  -- the lag: each partition's end (as the last latest_offset saw it) minus the batch's end
  local lag = {}
  for _, tp in ipairs(order) do
    local e = self._latest and get(self._latest, tp[1], tp[2])
    if e then put(lag, tp[1], tp[2], max(0, e - get(to, tp[1], tp[2]))) end
  end
  counts.lag = lag
  return batches, counts
end

-- Read the next batch ahead while the engine executes, delivers and
-- commits this one (core/kafka.c, tide_kafka_read_ahead): the batch that
-- latest_offset will plan from `to` if the partitions and their ends stay
-- as the last latest_offset saw them. Only with workers > 1 (the read
-- ahead decodes on threads of its own) and max_offsets_per_trigger, and
-- only while a full trigger's offsets wait (a backlog): then the plan
-- stays the same when more messages arrive meanwhile, while a batch of
-- everything up to the end would change with every new message and its
-- read ahead be dropped. A read ahead that does not match the next batch
-- is dropped, never used: the offset log says what each batch reads.
function Source:_read_ahead(to)
  local workers = core.workers()
  if workers < 2 or not self._limit or not self._latest then return end
  local _, ranges, total = plan(to, self._latest, self._limit)
  if total < self._limit then return end
  -- an error here only loses the read ahead: the next read reads afresh
  self._reader:read_ahead(ranges, workers)
end

-- Append bad messages to the dead-letter topic: idempotent per batch (a
-- re-run batch, same offsets, same bad messages, is skipped by the store).
function Source:_dead_letter(bad, batch_id)
  local store = connector.store_option(self._store)
  local name = self._dl_name
  local t
  if store:has_topic(name) then
    t = store:topic(name)
  else
    t = store:create_topic(name, { schema = DEAD_LETTER_SCHEMA })
  end
  local rows = {}
  for i, x in ipairs(bad) do
    local text, raw
    if x.text ~= nil then text, raw = core.dead_letter_text(x.text) end
    rows[i] = { reason = x.reason, kafka_topic = x.topic, kafka_partition = x.partition, kafka_offset = x.offset,
      text = text, raw_base64 = raw }
  end
  local ok, err = pcall(t.append, t, rows, batch_id ~= nil and { writer = self._writer, seq = batch_id } or nil)
  if not ok then
    error(format("%s: cannot write %d bad records to dead-letter topic '%s': %s", self.description, #bad, name,
      util.strip_position(err)), 0)
  end
end

--- Commit the processed offsets to group_id (monitoring only).
function Source:commit(stop)
  if not self._group or stop == nil then return end
  local list = {}
  for _, tp in ipairs(pairs_of(decode(self, stop, "end"))) do
    list[#list + 1] = { tp[1], tp[2], get(stop, tp[1], tp[2]) }
  end
  -- a monitoring aid: a failure to commit does not fail the query
  self._reader:commit(list)
end

--- While idle, look for new messages every 200 ms (each look is a
-- metadata and two offsets requests to the cluster; the engine's own idle
-- polling would ask every 50 ms).
function Source:watch(fn)
  if not self._loop then return end
  self._timer = self._loop:timer(200, 200, function() fn() end)
end

function Source:stop()
  if self._timer then
    self._timer:close()
    self._timer = nil
  end
  if self._reader then
    self._reader:close()
    self._reader = nil
  end
end

M.sources.kafka = {
  options = OPTIONS,
  schema = rows_schema,
  label = label,
  new = function(o, ctx)
    local schema = check(o)
    local description = label(o)
    -- queued.min.messages: librdkafka stops prefetching a partition whose
    -- local queue holds this many messages, and then waits
    -- fetch.error.backoff.ms (500 ms) before it looks again; a micro-batch
    -- drains a whole batch's worth at once, so the default (100000) would
    -- stall each batch; the queue stays bounded by queued.max.messages.kbytes
    local settings = { ["isolation.level"] = "read_committed", ["client.id"] = "tide",
      ["queued.min.messages"] = "1000000" }
    for k, v in pairs(o.kafka or {}) do settings[k] = tostring(v) end
    settings["enable.auto.commit"] = "false"
    settings["enable.auto.offset.store"] = "false"
    settings["enable.partition.eof"] = "true"
    settings["auto.offset.reset"] = "error"
    -- librdkafka assigns partitions only in a consumer with a group id; the
    -- source never joins the group nor commits to it (unless group_id asks
    -- for commits): a name of its own by default
    settings["group.id"] = o.group_id or format("tide-%s-%s", tostring(ctx and ctx.query_id or "query"),
      tostring(ctx and ctx.index or 1))
    local reader, msg = core.kafka_reader {
      bootstrap = o.bootstrap, kafka = settings,
      schema = schema and schema_object(schema) or nil, format = o.format, sep = o.sep,
      ignore_unknown = o.unknown_fields == "ignore", bad = o.bad_records or "fail",
      metadata = o.include_metadata, skip_lost = o.fail_on_data_loss == false,
      timeout = o.poll_timeout or 60000,
    }
    if not reader then fail(msg) end
    local assign
    if o.assign then
      assign = {}
      for t, parts in pairs(o.assign) do
        for _, p in ipairs(parts) do assign[#assign + 1] = { t, tointeger(p) } end
      end
      sort(assign, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
    end
    local ts = o.starting_timestamp
    if ts ~= nil then
      local v = int(ts)
      if not v and type(ts) == "string" then v = core.ts_parse(ts) end
      if not v or v < 0 then
        reader:close()
        fail(format("option 'starting_timestamp' must be ms since the epoch or an ISO-8601 time, got %s", tostring(ts)))
      end
      ts = v
    end
    local self = setmetatable({
      description = description, replayable = true,
      -- get_batch writes nothing durable but dead letters (connectors/README.md)
      pure_fetch = o.bad_records ~= "dead_letter",
      _reader = reader, _subscribe = o.subscribe and split_list(o.subscribe), _pattern = o.subscribe_pattern,
      _assign = assign, _starting = o.starting_offsets or (ts == nil and "latest" or nil), _timestamp = ts,
      _limit = o.max_offsets_per_trigger,
      _fail_on_loss = o.fail_on_data_loss ~= false, _group = o.group_id, _lost = 0,
      _dl_name = o.dead_letter_topic, _store = o.store, _loop = ctx and ctx.loop,
      _writer = format("%s/dead_letter/%s", tostring(ctx and ctx.query_id), tostring(ctx and ctx.index or 1)),
    }, Source)
    return self
  end,
}

return M
